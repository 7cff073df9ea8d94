// Reads /proc: CPU time (utime + stime) of a process tree, RSS, and per-core busy time.
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';

function clockTicks() {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return n > 0 ? n : 100;
  } catch {
    return 100;
  }
}
/** Kernel clock ticks per second: utime and stime count in these. */
export const CLK_TCK = clockTicks();

/** { pid, ppid, ticks } of one process, or undefined when it is gone. */
export function readStat(pid) {
  let text;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm (field 2) may hold spaces and parentheses: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15, cutime 16, cstime 17.
  return {
    pid,
    ppid: Number(rest[1]),
    ticks: Number(rest[11]) + Number(rest[12]),
    childTicks: Number(rest[13]) + Number(rest[14]),
  };
}

/** The pids of `rootPids` and all their descendants that are alive now. */
export function pidTree(rootPids) {
  const children = new Map();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (!st) continue;
    if (!children.has(st.ppid)) children.set(st.ppid, []);
    children.get(st.ppid).push(st.pid);
  }
  const out = [];
  const queue = [...rootPids];
  const seen = new Set();
  while (queue.length > 0) {
    const pid = queue.shift();
    if (seen.has(pid)) continue;
    seen.add(pid);
    if (readStat(pid)) out.push(pid);
    for (const c of children.get(pid) ?? []) queue.push(c);
  }
  return out;
}

/** CPU ticks per pid of the trees under `rootPids`, at this instant. */
export function cpuSnapshot(rootPids) {
  const snap = new Map();
  for (const pid of pidTree(rootPids)) {
    const st = readStat(pid);
    if (st) snap.set(pid, st.ticks);
  }
  return snap;
}

/**
 * CPU milliseconds spent between two snapshots: pids in both count their difference, pids born
 * in between count all their time. (A pid that died in between is lost; the servers measured
 * here keep their processes.)
 */
export function cpuMsBetween(before, after) {
  let ticks = 0;
  for (const [pid, t] of after) ticks += t - (before.get(pid) ?? 0);
  return (ticks * 1000) / CLK_TCK;
}

/** { rssBytes, hwmBytes } summed over the tree under `rootPid`. */
export function memoryOf(rootPid) {
  let rssBytes = 0;
  let hwmBytes = 0;
  for (const pid of pidTree([rootPid])) {
    let text;
    try {
      text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    } catch {
      continue;
    }
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(text);
    const hwm = /^VmHWM:\s+(\d+) kB/m.exec(text);
    if (rss) rssBytes += Number(rss[1]) * 1024;
    if (hwm) hwmBytes += Number(hwm[1]) * 1024;
  }
  return { rssBytes, hwmBytes };
}

/**
 * CPU ticks of this harness and everything it started: live descendants, plus children already
 * reaped (wrk), which the kernel adds to our cutime/cstime.
 */
export function ownTicks() {
  let ticks = readStat(process.pid).childTicks;
  for (const pid of pidTree([process.pid])) ticks += readStat(pid)?.ticks ?? 0;
  return ticks;
}

/** Per-core { busy, total } jiffies from /proc/stat. */
export function coreTimes() {
  const out = [];
  for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+) (.*)$/.exec(line);
    if (!m) continue;
    const v = m[2].trim().split(/\s+/).map(Number);
    // user nice system idle iowait irq softirq steal (guest is already inside user).
    const idle = v[3] + (v[4] ?? 0);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    // irq + softirq: loopback traffic is processed there and charged to no process.
    out[Number(m[1])] = { busy: total - idle, irq: (v[5] ?? 0) + (v[6] ?? 0), total };
  }
  return out;
}

/** Busy jiffies outside interrupts summed over all cores, and elapsed jiffies of one core. */
export function machineBusy(times) {
  let busy = 0;
  let total = 0;
  for (const t of times) {
    if (!t) continue;
    busy += t.busy - t.irq;
    total = Math.max(total, t.total);
  }
  return { busy, total };
}

/** Busy percentage of core `cpu` between two coreTimes() readings. */
export function coreBusyPct(before, after, cpu) {
  const b = before[cpu];
  const a = after[cpu];
  if (!a || !b || a.total === b.total) return null;
  return (100 * (a.busy - b.busy)) / (a.total - b.total);
}
