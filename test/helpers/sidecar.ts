// Real sidecar processes for integration tests: `node dist/main.js` with a SIDECACHE_*
// environment on free ports, ready when /readyz answers 200. Stopped by PID.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'main.js');
const live = new Set<ChildProcess>();
/** tap's loaders and coverage hooks: a sidecar is plain JavaScript and starts much faster without them. */
const TEST_RUNNER_VARS = new Set(['NODE_OPTIONS', 'NODE_V8_COVERAGE']);
process.on('exit', () => { for (const p of live) p.kill('SIGKILL'); });

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface SidecarProcess {
  readonly url: string;
  readonly adminUrl: string;
  readonly peerUrl: string;
  readonly id: string;
  readonly env: Record<string, string>;
  readonly proc: ChildProcess;
  output(): string;
  /** SIGTERM and wait for exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  kill(): Promise<void>;
  exited: Promise<number | null>;
}

export const ADMIN_TOKEN = 'test-admin-token-0123456789';

export interface SidecarOptions {
  readonly env: Record<string, string>;
  /** Wait for /readyz (default true). */
  readonly waitReady?: boolean;
  readonly timeoutMs?: number;
  readonly ports?: { listen: number; admin: number; peer: number };
  /** Another build's entry point (an upgrade test's old build); default this tree's dist/main.js. */
  readonly main?: string;
}

/** freePort() closes the port before the sidecar binds it, so a process of another test file
 *  may take it in between: with ports of our own choosing, try again on other ones. */
export async function startSidecar(opts: SidecarOptions): Promise<SidecarProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startSidecarOnce(opts);
    } catch (err) {
      if (opts.ports !== undefined || attempt >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err;
    }
  }
}

async function startSidecarOnce(opts: SidecarOptions): Promise<SidecarProcess> {
  const listen = opts.ports?.listen ?? await freePort();
  const admin = opts.ports?.admin ?? await freePort();
  const peer = opts.ports?.peer ?? await freePort();
  const env: Record<string, string> = {
    SIDECACHE_LISTEN: `127.0.0.1:${listen}`,
    SIDECACHE_ADMIN_LISTEN: `127.0.0.1:${admin}`,
    SIDECACHE_PEER_LISTEN: `127.0.0.1:${peer}`,
    SIDECACHE_ADMIN_TOKEN: ADMIN_TOKEN,
    SIDECACHE_LOG_LEVEL: 'warn',
    SIDECACHE_NODE_ID: `sc-${listen}`,
    ...opts.env,
  };
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SIDECACHE_') && !TEST_RUNNER_VARS.has(k) && v !== undefined) clean[k] = v;
  const proc = spawn(process.execPath, [opts.main ?? MAIN], { env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  // A sidecar a test forgot must not keep the test process alive: the exit hook kills it.
  proc.unref();
  (proc.stdout as unknown as { unref(): void }).unref();
  (proc.stderr as unknown as { unref(): void }).unref();
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
  proc.stderr!.on('data', (c: Buffer) => { out += c.toString(); });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => { live.delete(proc); resolve(code); }));
  const sc: SidecarProcess = {
    url: `http://127.0.0.1:${listen}`,
    adminUrl: `http://127.0.0.1:${admin}`,
    peerUrl: `http://127.0.0.1:${peer}`,
    id: env.SIDECACHE_NODE_ID!,
    env,
    proc,
    output: () => out,
    exited,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGKILL');
      await exited;
    },
  };
  if (opts.waitReady !== false) {
    const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`sidecar exited with ${proc.exitCode}:\n${out}`);
      try {
        const r = await fetch(`${sc.adminUrl}/readyz`);
        if (r.status === 200) break;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`sidecar not ready after ${opts.timeoutMs ?? 20_000} ms:\n${out}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return sc;
}

/** Runs the sidecar expecting it to refuse to start; resolves with exit code and output. */
export async function runToExit(env: Record<string, string>, args: string[] = [], timeoutMs = 10_000): Promise<{ code: number | null; output: string }> {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SIDECACHE_') && !TEST_RUNNER_VARS.has(k) && v !== undefined) clean[k] = v;
  const proc = spawn(process.execPath, [MAIN, ...args], { env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
  proc.stderr!.on('data', (c: Buffer) => { out += c.toString(); });
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve) => proc.once('exit', (c) => { live.delete(proc); resolve(c); }));
  clearTimeout(timer);
  return { code, output: out };
}

export async function purge(sc: SidecarProcess, body: unknown, token = ADMIN_TOKEN): Promise<{ status: number; json: any }> {
  const r = await fetch(`${sc.adminUrl}/purge`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json: unknown;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: r.status, json };
}

/** Polls `check` until it returns true, or fails after timeoutMs. Conditions, not sleeps. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
