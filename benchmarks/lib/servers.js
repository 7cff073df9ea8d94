// Starts the servers a scenario compares, each pinned to the server core, each with a way to tell
// whether a response was a cache hit. A start function returns a Server, or { skipped, reason }
// when the binary is missing; it throws when the server is there but does not come up.
//
// Server: { name, port, pids (root pids whose trees are measured), version, url(path),
//           isHit(response) -> { hit: boolean, detail }, stop() }
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LOAD_CPU, SERVER_CPU, onCpu } from './cpu.js';
import { freePort } from '../../support/ports.ts';
import { startSidecar, REPO_ROOT, SIDECACHE_MAIN } from '../../support/sidecar.ts';
import { startProcess, stopProcess, makeTempDir, tailLog, sleep } from './processes.js';
import { waitForOk, httpGet } from './http.js';
import { ensureTool, versionOf } from './install.js';
import { makeBody } from './bodies.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export { REPO_ROOT, SIDECACHE_MAIN };
const ORIGIN_SCRIPT = path.join(HERE, 'origin-server.js');
const NODE_PROXY_SCRIPT = path.join(HERE, 'node-proxy.js');

function server(h, fields) {
  return {
    pids: [h.pid],
    url(p) {
      return `http://127.0.0.1:${this.port}${p}`;
    },
    async stop() {
      await stopProcess(h);
    },
    handle: h,
    ...fields,
  };
}

/** The origin: node origin-server.js on the load core (idle while hits are measured). */
export async function startOrigin({ tmpDir, cpu = LOAD_CPU, name = 'origin' }) {
  const port = await freePort();
  const h = startProcess({
    name,
    cmd: process.execPath,
    args: [ORIGIN_SCRIPT, String(port), name],
    cpu,
    logPath: path.join(tmpDir, `${name}.log`),
  });
  await waitForOk(`http://127.0.0.1:${port}/healthz`, { h, timeoutMs: 10_000 });
  return server(h, { name, port, version: `node ${process.version}`, isHit: () => ({ hit: true, detail: 'from memory' }) });
}

/** bare-node: the origin program itself on the server core; the ceiling for a Node server. */
export async function startBareNode({ tmpDir }) {
  const s = await startOrigin({ tmpDir, cpu: SERVER_CPU, name: 'bare-node' });
  return { ...s, isHit: () => ({ hit: true, detail: 'bare node:http, from memory' }) };
}

/** node-proxy: node:http + undici in front of the origin, no cache (lib/node-proxy.js); the
 *  cheapest Node reverse proxy, the miss scenario's baseline. */
export async function startNodeProxy({ tmpDir, originPort }) {
  const port = await freePort();
  const h = startProcess({
    name: 'node-proxy',
    cmd: process.execPath,
    args: [NODE_PROXY_SCRIPT, String(port), String(originPort)],
    cpu: SERVER_CPU,
    logPath: path.join(tmpDir, 'node-proxy.log'),
  });
  try {
    await waitForOk(`http://127.0.0.1:${port}/healthz`, { h, timeoutMs: 10_000 });
  } catch (err) {
    await stopProcess(h);
    throw err;
  }
  return server(h, { name: 'node-proxy', port, version: `node ${process.version}, undici ${undiciVersion()}`, isHit: () => ({ hit: false, detail: 'no cache' }) });
}

function undiciVersion() {
  try {
    return JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'node_modules', 'undici', 'package.json'), 'utf8')).version;
  } catch {
    return 'unknown';
  }
}

/** What a sidecache that refused SIDECACHE_COMPRESS at start-up (an unknown variable) left. */
export const NO_COMPRESS = 'this sidecache does not support SIDECACHE_COMPRESS (start-up refused it as an unknown variable)';

/**
 * sidecache with compression on store (SIDECACHE_COMPRESS=on, `extraEnv` beside it). Skipped,
 * not failed, when the build does not know the variable: its configuration refuses unknown
 * SIDECACHE_* names at start-up (src/core/config.ts).
 */
export async function startSidecacheGzip({ tmpDir, originPort, extraEnv = {}, name = 'sidecache-gzip' }) {
  try {
    return await startSidecache({ tmpDir, originPort, name, extraEnv: { SIDECACHE_COMPRESS: 'on', ...extraEnv } });
  } catch (err) {
    if (/SIDECACHE_COMPRESS\w*: unknown variable/.test(err.message)) return { skipped: true, reason: NO_COMPRESS };
    throw err;
  }
}

/** sidecache: node dist/main.js (or `main`, another build) with the fixed env contract; ready when
 *  admin /readyz is 200. `nodeArgs` go to node before the entry point (profile.js: --cpu-prof). */
export async function startSidecache({ tmpDir, originPort, extraEnv = {}, main = SIDECACHE_MAIN, name = 'sidecache', nodeArgs }) {
  if (!fs.existsSync(main)) {
    return { skipped: true, reason: `${path.relative(REPO_ROOT, main)} not found: build it first (npm run build, or npm run bench)` };
  }
  // Settings come only from the contract of support/sidecar.ts: SIDECACHE_* of the calling shell are dropped.
  const sc = await startSidecar({
    env: { SIDECACHE_UPSTREAM: `http://127.0.0.1:${originPort}`, ...extraEnv },
    main, timeoutMs: 30_000, logPath: path.join(tmpDir, `${name}.log`), placement: onCpu(SERVER_CPU), nodeArgs,
  });
  const h = sc.handle;
  const port = Number(new URL(sc.url).port);
  const adminPort = Number(new URL(sc.adminUrl).port);
  let version = 'unknown';
  try {
    version = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')).version;
  } catch {
    // keep unknown
  }
  return server(h, {
    name,
    port,
    adminPort,
    version: `sidecache ${version} (node ${process.version})`,
    isHit(res) {
      const cs = res.headers['cache-status'];
      return { hit: typeof cs === 'string' && /\bhit\b/i.test(cs), detail: `Cache-Status: ${cs ?? '(none)'}` };
    },
  });
}

/**
 * An nginx of our own: prefix and config in a temp dir on tmpfs, one worker, access log off,
 * tcp_nopush off (why: benchmarks/README.md), keep-alive to clients without a request limit.
 * `servers` is the config's server blocks (they listen on `port`); ready when `readyPath` is 200.
 */
async function runNginx({ name, tmpDir, install, sendfile, log, servers, readyPath, isHit, extraFiles = () => {} }) {
  const bin = ensureTool({ bin: 'nginx', packages: ['nginx-light', 'nginx'], install, log });
  if (!bin) return { skipped: true, reason: 'nginx is not installed (apt-get install -y nginx-light)' };
  const base = fs.existsSync('/dev/shm') ? '/dev/shm' : undefined;
  const prefix = makeTempDir(name, base);
  fs.chmodSync(prefix, 0o755);
  extraFiles(prefix);
  const port = await freePort();
  const isRoot = process.getuid?.() === 0;
  const conf = `# generated by benchmarks/lib/servers.js
${isRoot ? 'user root;' : ''}
worker_processes 1;
daemon off;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 4096; multi_accept on; }
http {
  access_log off;
  sendfile ${sendfile ? 'on' : 'off'};
  tcp_nopush off;
  tcp_nodelay on;
  keepalive_timeout 65s;
  keepalive_requests 1000000;
  server_tokens off;
  client_body_temp_path ${prefix}/client_body;
  proxy_temp_path ${prefix}/proxy_temp;
  fastcgi_temp_path ${prefix}/fastcgi_temp;
  uwsgi_temp_path ${prefix}/uwsgi_temp;
  scgi_temp_path ${prefix}/scgi_temp;
${servers({ prefix, port })}
}
`;
  const confPath = path.join(prefix, 'nginx.conf');
  fs.writeFileSync(confPath, conf);
  const h = startProcess({
    name,
    cmd: bin,
    args: ['-p', `${prefix}/`, '-c', confPath, '-e', `${prefix}/error.log`],
    cpu: SERVER_CPU,
    logPath: path.join(tmpDir, `${name}.log`),
  });
  try {
    await waitForOk(`http://127.0.0.1:${port}${readyPath}`, { h, timeoutMs: 10_000 });
  } catch (err) {
    await stopProcess(h);
    throw new Error(`${err.message}\n${fs.existsSync(`${prefix}/error.log`) ? fs.readFileSync(`${prefix}/error.log`, 'utf8') : ''}`);
  }
  return server(h, {
    name,
    port,
    version: `${versionOf(bin, ['-v']).replace('nginx version: ', '')} (sendfile ${sendfile ? 'on' : 'off'})`,
    isHit,
  });
}

/** nginx with proxy_cache, its cache on tmpfs (in memory like the others'). */
export async function startNginx({ tmpDir, originPort, install, sendfile = true, log }) {
  return runNginx({
    name: 'nginx', tmpDir, install, sendfile, log, readyPath: '/obj/1/ready',
    servers: ({ prefix, port }) => `  proxy_cache_path ${prefix}/cache levels=1:2 keys_zone=bench:16m max_size=1g inactive=1h use_temp_path=off;
  upstream origin {
    server 127.0.0.1:${originPort};
    keepalive 32;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache bench;
      # Off: with it on, requests waiting for an uncacheable (no-store) response poll every
      # 500 ms. Hits never take the lock.
      proxy_cache_lock off;
      add_header X-Cache-Status $upstream_cache_status;
    }
  }`,
    isHit(res) {
      const s = res.headers['x-cache-status'];
      return { hit: s === 'HIT', detail: `X-Cache-Status: ${s ?? '(none)'}` };
    },
  });
}

/** Longest body nginx-static puts in its config: nginx's config reader refuses a parameter that
 *  does not fit its 4 KiB buffer. Larger bodies are files on tmpfs. */
const NGINX_INLINE_MAX_BYTES = 3072;

/**
 * nginx-static: the ceiling of the hit table, a C server answering the same bytes from memory
 * with no cache logic at all. /obj/<size>/... is `return 200 "<body>"` for bodies up to
 * NGINX_INLINE_MAX_BYTES (the body is in the config, so in memory), and for larger ones the
 * static file <size>.bin on tmpfs (the page cache, so memory too) with open_file_cache (no
 * open or stat per request) and sendfile as --nginx-sendfile says. The bytes are the origin's
 * (lib/bodies.js).
 */
export async function startNginxStatic({ tmpDir, sizes = [], install, sendfile = true, log }) {
  const all = [...new Set([1, ...sizes])].sort((a, b) => a - b);
  return runNginx({
    name: 'nginx-static', tmpDir, install, sendfile, log, readyPath: '/obj/1/ready',
    extraFiles(prefix) {
      fs.mkdirSync(path.join(prefix, 'www'));
      for (const n of all) if (n > NGINX_INLINE_MAX_BYTES) fs.writeFileSync(path.join(prefix, 'www', `${n}.bin`), makeBody(n));
    },
    servers: ({ prefix, port }) => `  default_type application/octet-stream;
  open_file_cache max=64 inactive=1h;
  open_file_cache_valid 1h;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    root ${prefix}/www;
${all.map((n) => n <= NGINX_INLINE_MAX_BYTES
    ? `    location /obj/${n}/ {\n      return 200 "${makeBody(n).toString('latin1')}";\n    }`
    : `    location /obj/${n}/ {\n      try_files /${n}.bin =404;\n    }`).join('\n')}
  }`,
    isHit: () => ({ hit: true, detail: `nginx static, from memory` }),
  });
}

/**
 * varnishd in the foreground with its own -n work dir, malloc storage and one thread pool (one
 * core: a second pool only adds contention). All its processes and threads inherit the pin.
 */
export async function startVarnish({ tmpDir, originPort, install, log }) {
  const bin = ensureTool({ bin: 'varnishd', packages: ['varnish'], install, log });
  if (!bin) return { skipped: true, reason: 'varnish is not installed (apt-get install -y varnish)' };
  const port = await freePort();
  const workDir = path.join(makeTempDir('varnish'), 'n');
  const h = startProcess({
    name: 'varnish',
    cmd: bin,
    args: [
      '-F',
      '-a', `127.0.0.1:${port}`,
      '-b', `127.0.0.1:${originPort}`,
      '-s', 'malloc,256m',
      '-n', workDir,
      '-T', 'none',
      '-p', 'thread_pools=1',
    ],
    cpu: SERVER_CPU,
    logPath: path.join(tmpDir, 'varnish.log'),
  });
  try {
    await waitForOk(`http://127.0.0.1:${port}/obj/1/ready`, { h, timeoutMs: 30_000 });
  } catch (err) {
    await stopProcess(h);
    throw err;
  }
  return server(h, {
    name: 'varnish',
    port,
    version: versionOf(bin, ['-V']).replace(/^varnishd \(([^ ]+) .*$/, '$1'),
    isHit(res) {
      const xv = String(res.headers['x-varnish'] ?? '');
      const ids = xv.trim().split(/\s+/).filter(Boolean);
      return { hit: ids.length === 2 && res.headers.age !== undefined, detail: `X-Varnish: ${xv || '(none)'}, Age: ${res.headers.age ?? '(none)'}` };
    },
  });
}

/**
 * Warms `path` on `srv` (a few GETs) and checks the last answer is a 200 hit of `bytes` bytes.
 * Returns { ok, detail }.
 */
export async function warmAndCheckHit(srv, urlPath, bytes, attempts = 5) {
  let last = { ok: false, detail: 'no answer' };
  for (let i = 0; i < attempts; i++) {
    const res = await httpGet(srv.url(urlPath));
    const { hit, detail } = srv.isHit(res);
    const ok = res.status === 200 && res.bodyBytes === bytes && hit;
    last = { ok, detail: `status ${res.status}, ${res.bodyBytes} bytes, ${detail}` };
    if (ok && i >= 1) return last;
    await sleep(20);
  }
  return last;
}

export { tailLog };

export const SERVER_NAMES = ['bare-node', 'nginx-static', 'sidecache', 'sidecache-gzip', 'node-proxy', 'nginx', 'varnish'];

/**
 * Starts the server called `name` in front of `origin` for scenario `tag`, with progress lines.
 * Records { name, status: ran | skipped | failed, version?, reason? } in `servers` (and a note
 * when it did not run). Returns the Server, or null when it was skipped or failed.
 */
export async function startNamed(name, { tag, origin, tmpDir, install, nginxSendfile, sizes, log, servers, notes }) {
  log(`[${tag}] ${name}: starting`);
  let srv;
  try {
    if (name === 'bare-node') srv = await startBareNode({ tmpDir });
    else if (name === 'sidecache') srv = await startSidecache({ tmpDir, originPort: origin.port });
    else if (name === 'sidecache-gzip') srv = await startSidecacheGzip({ tmpDir, originPort: origin.port });
    else if (name === 'node-proxy') srv = await startNodeProxy({ tmpDir, originPort: origin.port });
    else if (name === 'nginx-static') srv = await startNginxStatic({ tmpDir, sizes, install, sendfile: nginxSendfile, log });
    else if (name === 'nginx') srv = await startNginx({ tmpDir, originPort: origin.port, install, sendfile: nginxSendfile, log });
    else if (name === 'varnish') srv = await startVarnish({ tmpDir, originPort: origin.port, install, log });
    else throw new Error(`unknown server "${name}"`);
  } catch (err) {
    const reason = err.message.split('\n')[0];
    log(`[${tag}] ${name}: FAILED to start: ${err.message}`);
    servers.push({ name, status: 'failed', reason });
    notes.push(`${name} failed to start: ${reason}`);
    return null;
  }
  if (srv.skipped) {
    log(`[${tag}] ${name}: skipped: ${srv.reason}`);
    servers.push({ name, status: 'skipped', reason: srv.reason });
    notes.push(`${name} skipped: ${srv.reason}`);
    return null;
  }
  servers.push({ name, status: 'ran', version: srv.version });
  log(`[${tag}] ${name}: up on port ${srv.port} (${srv.version})`);
  return srv;
}
