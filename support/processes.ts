// Processes the tests, the benchmarks and the checker start: spawned, stopped by PID (the whole
// process group when started in one of its own), and killed however their owner ends: an exit
// hook on a normal exit, a watchdog shell (which outlives even SIGKILL of the owner) otherwise,
// and, for a harness run from a terminal, handlers for SIGINT, SIGTERM and SIGHUP. Temporary
// directories made here go the same way.
//
// Plain TypeScript without enums, parameter properties or namespaces: the benchmarks (plain
// JavaScript) import these files directly, Node stripping the types.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/** Where and how a process runs beyond its command: the benchmarks pin it to a core and renice it. */
export interface Placement {
  /** Wraps the command (`taskset`, `nice`); the wrapper must exec it, so that the PID stays its own. */
  wrap(cmd: string, args: readonly string[]): [string, string[]];
  /** Called once the process exists. */
  started?(pid: number): void;
}

export interface StartOptions {
  readonly name: string;
  readonly cmd: string;
  readonly args?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Append stdout and stderr to this file; without it, both are kept in memory. */
  readonly logPath?: string;
  /** Keep only the last this many characters of output in memory (default: all of it). */
  readonly keepChars?: number;
  /** A process group of its own: a stop takes its children too, and a Ctrl-C meant for the
   *  harness does not reach it before the harness has stopped it. */
  readonly group?: boolean;
  /** Do not keep the owner alive for it (a process a test forgot is killed by the exit hook). */
  readonly unref?: boolean;
  readonly placement?: Placement;
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly error?: Error;
}

export interface Proc {
  readonly name: string;
  /** Undefined only when the command could not be started (then `exited` carries the error). */
  readonly pid: number | undefined;
  readonly proc: ChildProcess;
  /** The command line as run (with its placement wrapper). */
  readonly command: string;
  readonly logPath: string | undefined;
  /** Resolves once the process has exited and, kept in memory, its output has all been read. */
  readonly exited: Promise<Exit>;
  isAlive(): boolean;
  /** What it wrote to stdout and stderr (from its log file, if it has one). */
  output(): string;
  /** The last `lines` lines of output, for error messages. */
  tail(lines?: number): string;
  /** Sends `sig` to the process (to its group when it has one). */
  signal(sig: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL once `graceMs` have passed (default: wait however long it takes). */
  stop(graceMs?: number): Promise<Exit>;
  /** SIGKILL (a crash); resolves once it is gone. */
  kill(): Promise<Exit>;
  /** Resolves once the output contains `text`; rejects if the process exits first or time runs out. */
  waitForOutput(text: string, timeoutMs: number): Promise<void>;
}

const live = new Set<Proc>();
/** Whether a process was started in a group of its own (the watchdog then kills the group). */
const groupOf = new WeakMap<Proc, boolean>();
const tempDirs = new Set<string>();
let watchdog: { pid: number | undefined; pidFile: string; dirFile: string; dir: string } | undefined;

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Absolute path of `bin` on PATH (or in the sbin directories), or null. */
export function which(bin: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const p = join(dir, bin);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // keep looking
    }
  }
  return null;
}

function sendSignal(pid: number | undefined, group: boolean, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(group ? -pid : pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  }
}

/** Kills every process still running and removes the temporary directories, synchronously. */
export function cleanupSync(): void {
  for (const h of live) h.signal('SIGKILL');
  live.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
  if (watchdog !== undefined) {
    sendSignal(watchdog.pid, false, 'SIGKILL');
    rmSync(watchdog.dir, { recursive: true, force: true });
    watchdog = undefined;
  }
}

let signalsHandled = false;
/** For a harness run from a terminal: SIGINT, SIGTERM and SIGHUP stop what it started, then exit. */
export function stopAllOnSignals(): void {
  if (signalsHandled) return;
  signalsHandled = true;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      console.error(`\n${sig}: stopping the processes this run started`);
      cleanupSync();
      process.exit(130);
    });
  }
}

/** Tells the watchdog what to kill and remove should this process die without its exit hook. */
function noteForWatchdog(): void {
  if (watchdog === undefined) {
    process.on('exit', cleanupSync);
    const dir = mkdtempSync(join(tmpdir(), 'sidecache-watchdog-'));
    const pidFile = join(dir, 'pids');
    const dirFile = join(dir, 'dirs');
    writeFileSync(pidFile, '');
    writeFileSync(dirFile, '');
    const sh = spawn('sh', ['-c',
      `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; ` +
      `kill -9 $(cat '${pidFile}') 2>/dev/null; ` +
      `while IFS= read -r d; do rm -rf "$d"; done < '${dirFile}'; rm -rf '${dir}'`,
    ], { detached: true, stdio: 'ignore' });
    sh.unref();
    watchdog = { pid: sh.pid, pidFile, dirFile, dir };
  }
  const targets = [...live].flatMap((h) => (h.pid === undefined || !h.isAlive() ? [] : [groupOf.get(h) === true ? `-${h.pid}` : String(h.pid)]));
  writeFileSync(watchdog.pidFile, targets.join(' '));
  writeFileSync(watchdog.dirFile, [...tempDirs].map((d) => `${d}\n`).join(''));
}
/** A temporary directory removed when this process ends, however it ends. */
export function makeTempDir(prefix: string, base: string = tmpdir()): string {
  const dir = mkdtempSync(join(base, `sidecache-${prefix}-`));
  tempDirs.add(dir);
  noteForWatchdog();
  return dir;
}

/** Removes a directory made by makeTempDir now. */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
  noteForWatchdog();
}

export function startProcess(o: StartOptions): Proc {
  const group = o.group === true;
  const [cmd, args] = o.placement?.wrap(o.cmd, o.args ?? []) ?? [o.cmd, [...(o.args ?? [])]];
  let fd: number | undefined;
  if (o.logPath !== undefined) fd = openSync(o.logPath, 'a');
  const child = spawn(cmd, args, {
    cwd: o.cwd, env: o.env ?? process.env, detached: group,
    stdio: ['ignore', fd ?? 'pipe', fd ?? 'pipe'],
  });
  if (fd !== undefined) closeSync(fd);
  if (child.pid !== undefined) o.placement?.started?.(child.pid);
  let out = '';
  const keep = (c: Buffer) => {
    out += c.toString();
    if (o.keepChars !== undefined && out.length > o.keepChars) out = out.slice(-o.keepChars);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  if (o.unref === true) {
    child.unref();
    (child.stdout as unknown as { unref?(): void } | null)?.unref?.();
    (child.stderr as unknown as { unref?(): void } | null)?.unref?.();
  }
  let alive = child.pid !== undefined;
  const exited = new Promise<Exit>((resolve) => {
    const gone = (e: Exit) => {
      alive = false;
      live.delete(h);
      if (watchdog !== undefined) noteForWatchdog();
      resolve(e);
    };
    child.once('error', (error) => gone({ code: null, signal: null, error }));
    // Piped output: 'close', as 'exit' can come before the last of it has been read.
    child.once(fd === undefined ? 'close' : 'exit', (code, signal) => gone({ code, signal }));
    // Dead is dead, even while the last of its output is still on the way.
    child.once('exit', () => { alive = false; });
  });
  const output = () => {
    if (o.logPath === undefined) return out;
    try {
      return readFileSync(o.logPath, 'utf8');
    } catch {
      return '';
    }
  };
  const h: Proc = {
    name: o.name,
    pid: child.pid,
    proc: child,
    command: [cmd, ...args].join(' '),
    logPath: o.logPath,
    exited,
    isAlive: () => alive,
    output,
    tail: (lines = 15) => output().trimEnd().split('\n').slice(-lines).join('\n') || '(no output)',
    signal: (sig) => { if (alive) sendSignal(child.pid, group, sig); },
    async stop(graceMs = Infinity) {
      if (!alive) return exited;
      h.signal('SIGTERM');
      const killer = Number.isFinite(graceMs) ? setTimeout(() => h.signal('SIGKILL'), graceMs) : undefined;
      const e = await exited;
      clearTimeout(killer);
      // Children that outlived their parent (none expected) go too.
      if (group) sendSignal(child.pid, true, 'SIGKILL');
      return e;
    },
    async kill() {
      h.signal('SIGKILL');
      return exited;
    },
    async waitForOutput(text, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (!output().includes(text)) {
        if (!alive) {
          const e = await exited;
          throw new Error(`${o.name} exited (code ${e.code}, signal ${e.signal}${e.error ? `, ${e.error.message}` : ''}) before "${text}":\n${h.tail(30)}`);
        }
        if (Date.now() > deadline) throw new Error(`${o.name}: no "${text}" within ${timeoutMs} ms:\n${h.tail(30)}`);
        await sleep(25);
      }
    },
  };
  groupOf.set(h, group);
  if (alive) {
    live.add(h);
    noteForWatchdog();
  }
  return h;
}
