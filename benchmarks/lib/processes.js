// The benchmarks' use of support/processes.ts: every server in a process group of its own,
// pinned to a core (cpu.js), output to a log file; stopped by pid with SIGKILL after 5 s; all of
// it stopped when the harness exits, on an error or on Ctrl-C.
import { startProcess as start, stopAllOnSignals, makeTempDir, sleep } from '../../support/processes.ts';
import { onCpu } from './cpu.js';

stopAllOnSignals();

/**
 * Starts `cmd args` pinned to `cpu` (or unpinned when cpu is null); output to `logPath`, or kept
 * in memory without it. Returns a handle of support/processes.ts (name, pid, exited, isAlive(), ...).
 */
export function startProcess({ name, cmd, args, cpu = null, env = process.env, cwd, logPath }) {
  return start({ name, cmd, args, env, cwd, logPath, group: true, placement: onCpu(cpu) });
}

/** Stops a process started by startProcess: SIGTERM to its group, SIGKILL after `graceMs`. */
export async function stopProcess(h, graceMs = 5000) {
  await h?.stop(graceMs);
}

/** Last `lines` lines of a process log, for error messages. */
export function tailLog(h, lines = 15) {
  return h.tail(lines);
}

export { makeTempDir, sleep };
