// Real sidecar processes: `node dist/main.js` with a SIDECACHE_* environment on free ports
// (those of the calling shell are dropped), ready when admin /readyz answers 200. Stopped by PID
// through processes.ts.
import type { ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, freePorts } from './ports.ts';
import { sleep, startProcess, type Placement, type Proc } from './processes.ts';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const SIDECACHE_MAIN = join(REPO_ROOT, 'dist', 'main.js');
/** Test runners' loaders and coverage hooks: a sidecar is plain JavaScript and starts much faster without them. */
const RUNNER_VARS = new Set(['NODE_OPTIONS', 'NODE_V8_COVERAGE']);

export { freePort };

export interface SidecarProcess {
  readonly url: string;
  readonly adminUrl: string;
  readonly peerUrl: string;
  readonly id: string;
  readonly env: Record<string, string>;
  readonly proc: ChildProcess;
  readonly handle: Proc;
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
  /** Write its output to this file (default: keep it in memory). */
  readonly logPath?: string;
  readonly placement?: Placement;
  /** Arguments for node itself, before the entry point (the profiler's `--cpu-prof`). */
  readonly nodeArgs?: readonly string[];
}

async function answersAs(adminUrl: string, id: string): Promise<boolean> {
  const r = await fetch(`${adminUrl}/cluster`, { signal: AbortSignal.timeout(2_000) });
  const body = await r.json().catch(() => undefined) as { node?: unknown } | undefined;
  if (body?.node === id) return true;
  throw new Error(`${adminUrl} is answered by another process (node ${String(body?.node)}), not sidecar ${id}: its port was taken`);
}

/** The environment of the calling process without SIDECACHE_* settings and test runner hooks. */
export function cleanEnv(): Record<string, string> {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SIDECACHE_') && !RUNNER_VARS.has(k) && v !== undefined) clean[k] = v;
  return clean;
}

/** Free ports close before the sidecar binds them, so another process may take one in
 *  between: with ports of our own choosing, try again on other ones. */
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
  const [listen, admin, peer] = opts.ports === undefined ? await freePorts(3) : [opts.ports.listen, opts.ports.admin, opts.ports.peer];
  const env: Record<string, string> = {
    SIDECACHE_LISTEN: `127.0.0.1:${listen}`,
    SIDECACHE_ADMIN_LISTEN: `127.0.0.1:${admin}`,
    SIDECACHE_PEER_LISTEN: `127.0.0.1:${peer}`,
    SIDECACHE_ADMIN_TOKEN: ADMIN_TOKEN,
    SIDECACHE_LOG_LEVEL: 'warn',
    SIDECACHE_NODE_ID: `sc-${listen}`,
    ...opts.env,
  };
  const h = startProcess({
    name: env.SIDECACHE_NODE_ID!, cmd: process.execPath, args: [...(opts.nodeArgs ?? []), opts.main ?? SIDECACHE_MAIN], cwd: REPO_ROOT,
    env: { ...cleanEnv(), ...env }, placement: opts.placement,
    // A sidecar a test forgot must not keep the test process alive: the exit hook kills it.
    unref: true,
    ...(opts.logPath === undefined ? {} : { logPath: opts.logPath, group: true }),
  });
  const exited = h.exited.then((e) => e.code);
  const sc: SidecarProcess = {
    url: `http://127.0.0.1:${listen}`,
    adminUrl: `http://127.0.0.1:${admin}`,
    peerUrl: `http://127.0.0.1:${peer}`,
    id: env.SIDECACHE_NODE_ID!,
    env,
    proc: h.proc,
    handle: h,
    output: () => h.output(),
    exited,
    async stop() {
      return (await h.stop()).code;
    },
    async kill() {
      await h.kill();
    },
  };
  if (opts.waitReady !== false) {
    const timeoutMs = opts.timeoutMs ?? 20_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!h.isAlive()) throw new Error(`sidecar exited with ${await exited}:\n${h.output()}`);
      try {
        const r = await fetch(`${sc.adminUrl}/readyz`, { signal: AbortSignal.timeout(2_000) });
        await r.arrayBuffer();
        // Ready, and ours: a free port can be taken by another process between freePort() and
        // the sidecar's listen (tests of other worktrees run beside us); then our sidecar exits
        // with EADDRINUSE while that process answers. GET /cluster names the node that answers.
        if (r.status === 200 && await answersAs(sc.adminUrl, sc.id)) break;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) {
        await h.kill();
        throw new Error(`sidecar not ready after ${timeoutMs} ms:\n${h.output()}`);
      }
      await sleep(50);
    }
  }
  return sc;
}

/** Runs the sidecar expecting it to refuse to start; resolves with exit code and output. */
export async function runToExit(env: Record<string, string>, args: string[] = [], timeoutMs = 10_000): Promise<{ code: number | null; output: string }> {
  const h = startProcess({ name: 'sidecar', cmd: process.execPath, args: [SIDECACHE_MAIN, ...args], env: { ...cleanEnv(), ...env } });
  const timer = setTimeout(() => h.signal('SIGKILL'), timeoutMs);
  const { code } = await h.exited;
  clearTimeout(timer);
  return { code, output: h.output() };
}

export async function purge(sc: { adminUrl: string }, body: unknown, token = ADMIN_TOKEN): Promise<{ status: number; json: any }> {
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
    await sleep(25);
  }
}
