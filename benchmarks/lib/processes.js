// Starts server processes in their own process groups, stops them by pid, and kills whatever is
// still running when the harness exits (normally, on an error or on Ctrl-C).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { pinned, getNiceness } from './cpu.js';
import { pidTree } from './procstat.js';

const live = new Set();
const tempDirs = new Set();

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

function cleanupSync() {
  for (const h of live) {
    for (const pid of pidTree([h.pid])) killGroup(pid, 'SIGKILL');
    killGroup(h.pid, 'SIGKILL');
  }
  live.clear();
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

process.on('exit', cleanupSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`\n${sig}: stopping the servers this run started`);
    cleanupSync();
    process.exit(130);
  });
}

/**
 * With autogroup scheduling (Linux default) every session is its own group and nice values only
 * rank processes inside it, so a started process (a session of its own) gets the niceness as its
 * group's too.
 */
function applyAutogroupNice(pid) {
  const n = getNiceness();
  if (n === 0 || pid === undefined) return;
  try {
    fs.writeFileSync(`/proc/${pid}/autogroup`, String(n));
  } catch {
    // no autogroup support: plain nice applies
  }
}

/**
 * Spawns a short-lived tool (wrk) in its own session, at the benchmark's priority, killed with the
 * servers if the harness exits first. Returns the ChildProcess.
 */
export function spawnTracked(cmd, args, options) {
  const child = spawn(cmd, args, { ...options, detached: true });
  const h = { pid: child.pid, name: cmd };
  if (child.pid !== undefined) {
    live.add(h);
    applyAutogroupNice(child.pid);
  }
  child.once('exit', () => live.delete(h));
  child.once('error', () => live.delete(h));
  return child;
}

/** A temporary directory removed when the harness exits. `base` defaults to os.tmpdir(). */
export function makeTempDir(prefix, base = os.tmpdir()) {
  const dir = fs.mkdtempSync(path.join(base, `sidecache-bench-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

/**
 * Starts `cmd args` pinned to `cpu` (or unpinned when cpu is null), output to `logPath`.
 * `nice` and `taskset` exec the command, so the pid is the command's own.
 * Returns { name, pid, logPath, exited (promise of { code, signal }), isAlive() }.
 */
export function startProcess({ name, cmd, args, cpu = null, env = process.env, cwd, logPath }) {
  const [c, a] = pinned(cpu, cmd, args);
  const fd = fs.openSync(logPath, 'a');
  const child = spawn(c, a, { cwd, env, detached: true, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  applyAutogroupNice(child.pid);
  let alive = true;
  const h = {
    name,
    pid: child.pid,
    logPath,
    command: [c, ...a].join(' '),
    isAlive: () => alive,
    exited: new Promise((resolve) => {
      child.once('error', (err) => {
        alive = false;
        live.delete(h);
        resolve({ code: null, signal: null, error: err });
      });
      child.once('exit', (code, signal) => {
        alive = false;
        live.delete(h);
        resolve({ code, signal });
      });
    }),
  };
  live.add(h);
  return h;
}

/** Stops a process started by startProcess: SIGTERM to its group, SIGKILL after `graceMs`. */
export async function stopProcess(h, graceMs = 5000) {
  if (!h || !h.isAlive()) return;
  const tree = pidTree([h.pid]);
  killGroup(h.pid, 'SIGTERM');
  const timer = new Promise((resolve) => setTimeout(resolve, graceMs, 'timeout'));
  if ((await Promise.race([h.exited, timer])) === 'timeout') {
    for (const pid of tree) killGroup(pid, 'SIGKILL');
    await h.exited;
  }
  // Children that outlived their parent (none expected) go too.
  for (const pid of tree) killGroup(pid, 'SIGKILL');
}

/** Last `lines` lines of a process log, for error messages. */
export function tailLog(h, lines = 15) {
  try {
    return fs.readFileSync(h.logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
