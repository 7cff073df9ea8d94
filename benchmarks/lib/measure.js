// One measured load run: CPU of the server's process trees, per-core busy time, and the CPU that
// processes outside this harness (other people's builds and tests on a shared machine) used
// meanwhile. A run spoiled by such background load waits for quiet and is run again once.
import { cpuSnapshot, cpuMsBetween, coreTimes, coreBusyPct, machineBusy, ownTicks } from './procstat.js';
import { runWrk } from './wrk.js';
import { SERVER_CPU, LOAD_CPU, canPin } from './cpu.js';
import { sleep } from './processes.js';

/** Background CPU above this share of one core marks a run as disturbed. */
export const MAX_OTHER_PCT = 10;
let quietWaitMs = 20_000;

/** How long waitForQuiet waits at most (run.js --quiet-wait). */
export function setQuietWaitSec(sec) {
  quietWaitMs = sec * 1000;
}

/** CPU used by processes we did not start, as % of one core, over `fn`'s duration. */
async function foreignPct(fn) {
  const t0 = machineBusy(coreTimes());
  const own0 = ownTicks();
  const value = await fn();
  const own1 = ownTicks();
  const t1 = machineBusy(coreTimes());
  const elapsed = t1.total - t0.total;
  const pct = elapsed > 0 ? (100 * Math.max(0, t1.busy - t0.busy - (own1 - own0))) / elapsed : 0;
  return { pct, value };
}

/** Waits (at most --quiet-wait, default 20 s) until background CPU stays under MAX_OTHER_PCT over half a second. */
export async function waitForQuiet(log) {
  const deadline = Date.now() + quietWaitMs;
  let said = false;
  for (;;) {
    const { pct } = await foreignPct(() => sleep(500));
    if (pct <= MAX_OTHER_PCT) return pct;
    if (Date.now() > deadline) {
      log(`    background load still ${Math.round(pct)}% of a core after ${quietWaitMs / 1000} s; measuring anyway`);
      return pct;
    }
    if (!said) log(`    waiting for background load (${Math.round(pct)}% of a core, not ours) to settle`);
    said = true;
  }
}

async function measureOnce({ url, pidGroups, wrk }) {
  const names = Object.keys(pidGroups);
  const before = names.map((n) => cpuSnapshot(pidGroups[n]));
  const coresBefore = coreTimes();
  const { pct: otherPct, value: r } = await foreignPct(() => runWrk({ url, ...wrk }));
  const coresAfter = coreTimes();
  const after = names.map((n) => cpuSnapshot(pidGroups[n]));
  const cpuUsPerReq = {};
  names.forEach((n, i) => {
    cpuUsPerReq[n] = r.requests > 0 ? (cpuMsBetween(before[i], after[i]) * 1000) / r.requests : null;
  });
  return {
    ...r,
    cpuUsPerReq,
    serverCorePct: canPin() ? coreBusyPct(coresBefore, coresAfter, SERVER_CPU) : null,
    loadCorePct: canPin() ? coreBusyPct(coresBefore, coresAfter, LOAD_CPU) : null,
    otherPct,
  };
}

/**
 * Runs wrk against `url` (options `wrk`, see runWrk) and returns the wrk result plus
 *   cpuUsPerReq[group]  CPU µs per request of each pid group in `pidGroups` ({ name: [pids] })
 *   serverCorePct, loadCorePct  busy % of the server and load cores during the run
 *   otherPct  CPU of processes this harness did not start, % of one core
 *   attempts  1, or 2 when the first run was disturbed by background load (the quieter is kept)
 *   totalRequests  requests sent over all attempts.
 * `quiet: false` skips the waiting and the retry (warm-ups), as does --quiet-wait=0 (dry runs).
 */
export async function measure({ url, pidGroups = {}, wrk, log = () => {}, quiet = true }) {
  if (!quiet || quietWaitMs === 0) {
    const only = await measureOnce({ url, pidGroups, wrk });
    return { ...only, attempts: 1, totalRequests: only.requests };
  }
  await waitForQuiet(log);
  const first = await measureOnce({ url, pidGroups, wrk });
  if (first.otherPct <= MAX_OTHER_PCT) return { ...first, attempts: 1, totalRequests: first.requests };
  log(`    background load was ${Math.round(first.otherPct)}% of a core during the run: running it again`);
  await waitForQuiet(log);
  const second = await measureOnce({ url, pidGroups, wrk });
  return { ...(second.otherPct < first.otherPct ? second : first), attempts: 2, totalRequests: first.requests + second.requests };
}
