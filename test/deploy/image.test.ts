// The container image, built for real: deploy/Containerfile on a locally built stand-in base
// (deploy/stand-in-base.sh), run with podman on host networking and loopback ports in front of
// a test origin. Slow (a build): runs when DEPLOY_IMAGE_TEST=1, as CI's image step sets it.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { startOrigin } from '../../support/origin.js';
import { ADMIN_TOKEN, freePort, waitFor } from '../../support/sidecar.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const IMAGE = 'localhost/sidecache:image-test';
const env = { ...process.env, CONTAINERS_CONF: process.env.CONTAINERS_CONF ?? join(ROOT, 'deploy', 'podman-containers.conf') };

interface Run { code: number | null; stdout: string; out: string }

/** Runs a command in the repository; resolves with its exit code, stdout, and both streams. */
function run(cmd: string, args: readonly string[], timeoutMs = 600_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stdout = '';
    p.stdout.on('data', (c: Buffer) => { out += c.toString(); stdout += c.toString(); });
    p.stderr.on('data', (c: Buffer) => { out += c.toString(); });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', reject);
    p.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, out }); });
  });
}

async function ok(cmd: string, args: readonly string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.code}\n${r.out.slice(-3000)}`);
  return r.stdout;
}

/** Whether a TCP connection to the port is accepted now. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

if (process.env.DEPLOY_IMAGE_TEST !== '1') {
  t.plan(0, 'the image test builds with podman: set DEPLOY_IMAGE_TEST=1 (CI does)');
} else {
  t.setTimeout(900_000);
  // Durations as comments for CI's log (the step's budget), not assertions.
  let started = Date.now();
  const base = (await ok('deploy/stand-in-base.sh', ['node'])).trim().split('\n').pop()!;
  t.comment(`stand-in base ${base}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  started = Date.now();
  await ok('podman', ['build', '--format', 'docker', '--network', 'host', '--build-arg', `NODE_IMAGE=${base}`,
    '-f', 'deploy/Containerfile', '-t', IMAGE, '.']);
  t.comment(`podman build: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  // Each build that changes the tree leaves the previous image and its build stage untagged;
  // those older than a day go (the last day's stay as the build cache), so the disk of a machine
  // that runs CI after every change does not fill up.
  t.teardown(() => run('podman', ['image', 'prune', '-f', '--filter', 'until=24h']).then(() => {}));

  // /hold answers only when released: a request in flight while the container is stopped.
  let release = (): void => {};
  const released = new Promise<void>((r) => { release = r; });
  const origin = await startOrigin({
    '/hold': (_req, res) => {
      void released.then(() => {
        res.writeHead(200, { 'cache-control': 'no-store', 'content-type': 'text/plain' });
        res.end('held body\n');
      });
    },
  });
  t.teardown(() => origin.close());
  const [listen, admin] = [await freePort(), await freePort()];
  const name = `sidecache-image-test-${process.pid}`;
  t.teardown(() => run('podman', ['rm', '-f', '-t', '0', name]).then(() => {}));
  // Read-only root file system, as the Kubernetes manifests run it (readOnlyRootFilesystem).
  await ok('podman', ['run', '-d', '--name', name, '--network', 'host', '--read-only', '--read-only-tmpfs=false',
    '-e', `SIDECACHE_UPSTREAM=${origin.url}`,
    '-e', `SIDECACHE_LISTEN=127.0.0.1:${listen}`,
    '-e', `SIDECACHE_ADMIN_LISTEN=127.0.0.1:${admin}`,
    '-e', `SIDECACHE_ADMIN_TOKEN=${ADMIN_TOKEN}`,
    IMAGE]);
  const proxyUrl = `http://127.0.0.1:${listen}`;
  const adminUrl = `http://127.0.0.1:${admin}`;
  const status = (url: string) => fetch(url).then((r) => r.status, () => 0);
  await waitFor(async () => (await status(`${adminUrl}/readyz`)) === 200, 60_000, 'the container to be ready');

  t.test('image - serves a miss, then a hit, from the origin', async (t) => {
    const a = await fetch(`${proxyUrl}/page`);
    t.equal(a.status, 200);
    t.match(a.headers.get('cache-status'), /fwd=uri-miss.*stored/);
    t.equal(await a.text(), 'body of /page #1\n');
    const b = await fetch(`${proxyUrl}/page`);
    t.match(b.headers.get('cache-status'), /^sidecache; hit/);
    t.equal(await b.text(), 'body of /page #1\n');
    t.equal(origin.count('/page'), 1, 'one origin request for two client requests');
  });

  t.test('image - answers /healthz and /readyz, and its HEALTHCHECK passes', async (t) => {
    const h = await fetch(`${adminUrl}/healthz`);
    t.equal(h.status, 200);
    t.same(await h.json(), { status: 'ok' });
    const r = await fetch(`${adminUrl}/readyz`);
    t.equal(r.status, 200);
    t.match(await r.json(), { status: 'ready' });
    const healthcheck = JSON.parse(await ok('podman', ['image', 'inspect', '--format', '{{json .Config.Healthcheck}}', IMAGE])) as { Test?: string[] } | null;
    t.same(healthcheck?.Test, ['CMD', 'node', '/app/deploy/healthcheck.js'], 'kept by --format docker');
    const hc = await run('podman', ['healthcheck', 'run', name]);
    t.equal(hc.code, 0, hc.code === 0 ? 'podman healthcheck run' : `podman healthcheck run: ${hc.out}`);
  });

  t.test('image - runs as uid 1000 with production dependencies only and two malloc arenas', async (t) => {
    const pid = (await ok('podman', ['inspect', '--format', '{{.State.Pid}}', name])).trim();
    // The process as the kernel sees it (no user namespace here): real, effective, saved, fs uid.
    const uids = /^Uid:\s+(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]?.split(/\s+/);
    t.same(uids, ['1000', '1000', '1000', '1000']);
    // glibc reads it once, at the process's start: the sidecar's own environment must hold it.
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    t.ok(environ.includes('MALLOC_ARENA_MAX=2'), 'the sidecar runs with at most two malloc arenas');
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: object; devDependencies: object };
    const installed = async (names: string[]) => (await ok('podman', ['exec', name, 'sh', '-c',
      'for p in "$@"; do [ -f "/app/node_modules/$p/package.json" ] && echo "$p"; done; true', 'sh', ...names])).split('\n').filter((l) => l !== '');
    const prod = Object.keys(pkg.dependencies);
    t.same(await installed(prod), prod, 'every production dependency is there');
    t.same(await installed(Object.keys(pkg.devDependencies)), [], 'no development dependency');
  });

  t.test('image - the command line works inside the container, from the container\'s own variables', async (t) => {
    const status = await run('podman', ['exec', name, 'sidecache', 'status', '--json']);
    t.equal(status.code, 0, status.code === 0 ? 'sidecache status' : `sidecache status: ${status.out}`);
    t.match(status.stdout, /"reachable": true/, 'it reached the admin API on SIDECACHE_ADMIN_LISTEN');
    const purge = await run('podman', ['exec', name, 'sidecache', 'purge', '--url', '/page']);
    t.equal(purge.code, 0, purge.code === 0 ? 'sidecache purge' : `sidecache purge: ${purge.out}`);
    t.match(purge.stdout, /acknowledged by 1 of 1/, 'with SIDECACHE_ADMIN_TOKEN');
    const again = await fetch(`${proxyUrl}/page`);
    t.equal(await again.text(), 'body of /page #2\n', 'purged: fetched again');
  });

  t.test('image - podman stop drains: in-flight requests finish, new ones are refused, exit 0', async (t) => {
    const held = fetch(`${proxyUrl}/hold`).then(async (r) => ({ status: r.status, body: await r.text() }));
    await waitFor(() => origin.count('/hold') === 1, 10_000, 'the held request to reach the origin');
    const stopped = run('podman', ['stop', '-t', '30', name]);
    await waitFor(async () => (await status(`${adminUrl}/readyz`)) === 503, 10_000, 'readyz to turn 503 (draining)');
    t.equal(await accepts(listen), false, 'the proxy listener takes no new connection while draining');
    release();
    t.same(await held, { status: 200, body: 'held body\n' }, 'the request in flight got its whole answer');
    const stop = await stopped;
    t.equal(stop.code, 0, stop.code === 0 ? 'podman stop' : `podman stop: ${stop.out}`);
    t.equal((await ok('podman', ['inspect', '--format', '{{.State.ExitCode}}', name])).trim(), '0', 'exit code 0');
    const logs = await ok('podman', ['logs', name]);
    t.match(logs, /"signal":"SIGTERM","msg":"draining"/);
    t.match(logs, /"msg":"stopped"/);
  });
}
