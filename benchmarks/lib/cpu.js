// CPU pinning with taskset: servers on one core, the load generator (and this harness) on another,
// so a server never competes with wrk for its core.
import fs from 'node:fs';
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import { which } from '../../support/processes.ts';

export const cpuCount = os.availableParallelism();
/** Core of the server under test. */
export const SERVER_CPU = 0;
/** Core of wrk, the origin and this harness. */
export const LOAD_CPU = cpuCount > 1 ? 1 : 0;

const tasksetPath = which('taskset');
const nicePath = which('nice');
let niceness = 0;

/**
 * Runs every process started from now on (servers, origin, wrk) under `nice -n n`; negative needs
 * root. The same for every server, so the comparison stays fair, while a busy shared machine takes
 * less of the measured cores. (This process keeps its own priority: `nice -n` is relative, and the
 * harness sleeps while it measures.)
 */
export function setNiceness(n) {
  if (n < 0 && process.getuid?.() !== 0) throw new Error('negative nice values need root');
  niceness = n;
}
export function getNiceness() {
  return niceness;
}

export function canPin() {
  return tasksetPath !== null && cpuCount > 1;
}

/**
 * [cmd, args] that run `cmd args` pinned to `cpu` (unpinned when pinning is not possible, or when
 * cpu is null), at the niceness set by setNiceness.
 */
export function pinned(cpu, cmd, args) {
  let c = cmd;
  let a = args;
  if (cpu !== null && canPin()) [c, a] = [tasksetPath, ['-c', String(cpu), c, ...a]];
  if (niceness !== 0 && nicePath) [c, a] = [nicePath, ['-n', String(niceness), c, ...a]];
  return [c, a];
}

/** Pins this process and all its threads to `cpu`; children started later inherit it. */
export function pinSelf(cpu) {
  if (!canPin()) return false;
  try {
    execFileSync(tasksetPath, ['-a', '-p', '-c', String(cpu), String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * With autogroup scheduling (Linux default) every session is its own group and nice values only
 * rank processes inside it, so a started process (a session of its own) gets the niceness as its
 * group's too.
 */
function applyAutogroupNice(pid) {
  if (niceness === 0) return;
  try {
    fs.writeFileSync(`/proc/${pid}/autogroup`, String(niceness));
  } catch {
    // no autogroup support: plain nice applies
  }
}

/** A placement (support/processes.ts) on `cpu` (null: unpinned) at the niceness set above. */
export function onCpu(cpu) {
  return { wrap: (cmd, args) => pinned(cpu, cmd, args), started: applyAutogroupNice };
}
