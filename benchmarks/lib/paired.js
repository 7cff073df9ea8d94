// Paired CPU per request of two servers (ab.js, and the hit scenario's CPU ratio): both on the
// server core, loaded at the same time by two wrk processes on the load core, so a drift of the
// machine's speed lands on both sides of a round. Why and how to read it: benchmarks/ab.js.
import fs from 'node:fs';
import path from 'node:path';
import { runWrk } from './wrk.js';
import { cpuSnapshot, cpuMsBetween } from './procstat.js';

export const median = (xs) => {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * `rounds` rounds of `durationSec` with `conns` connections per side against `urlPath` of the two
 * started servers `a` and `b` (after `warmSec` of warm-up when > 0). Each round's ratio is B's CPU
 * per request over A's. Resolves { rounds, summary: { medianA, medianB, medianRatio, minRatio,
 * maxRatio, roundsBLower, roundsFailed, ratioCount, errors } }; a round whose wrk failed is kept as
 * { failed, ratio: null }.
 */
export async function pairedCpu({ a, b, urlPath, rounds, durationSec, conns, warmSec = 0, tmpDir, log = () => {}, tag = '' }) {
  const sides = [a, b];
  // One script directory per side: runWrk rewrites its Lua script on every call.
  const wrkDirs = ['a', 'b'].map((d) => {
    const dir = path.join(tmpDir, `paired-wrk-${d}`);
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  });
  const one = async (sec) => {
    const before = sides.map((s) => cpuSnapshot(s.pids));
    const runs = await Promise.all(sides.map((s, i) => runWrk({ url: s.url(urlPath), connections: conns, durationSec: sec, tmpDir: wrkDirs[i] })));
    const after = sides.map((s) => cpuSnapshot(s.pids));
    return sides.map((s, i) => ({
      requests: runs[i].requests,
      rps: runs[i].rps,
      errors: runs[i].errorCount,
      cpuUsPerReq: runs[i].requests > 0 ? (cpuMsBetween(before[i], after[i]) * 1000) / runs[i].requests : null,
    }));
  };
  if (warmSec > 0) await one(warmSec); // JIT and the young generation settle
  const out = [];
  for (let r = 1; r <= rounds; r++) {
    let ra;
    let rb;
    try {
      [ra, rb] = await one(durationSec);
    } catch (err) {
      // A wrk that failed (its message says why) spoils the round, not the run.
      log(`${tag ? `${tag} ` : ''}round ${r}/${rounds}: failed: ${err.message.split('\n')[0]}`);
      out.push({ failed: err.message, ratio: null });
      continue;
    }
    const ratio = ra.cpuUsPerReq && rb.cpuUsPerReq ? rb.cpuUsPerReq / ra.cpuUsPerReq : null;
    out.push({ a: ra, b: rb, ratio });
    log(`${tag ? `${tag} ` : ''}round ${r}/${rounds}: A ${ra.cpuUsPerReq?.toFixed(2)} µs/req (${ra.requests} req), B ${rb.cpuUsPerReq?.toFixed(2)} µs/req (${rb.requests} req), B/A ${ratio?.toFixed(3)}`);
  }
  const done = out.filter((r) => r.failed === undefined);
  const ratios = done.map((r) => r.ratio).filter((x) => x !== null);
  return {
    rounds: out,
    summary: {
      medianA: done.length ? median(done.map((r) => r.a.cpuUsPerReq)) : null,
      medianB: done.length ? median(done.map((r) => r.b.cpuUsPerReq)) : null,
      medianRatio: ratios.length ? median(ratios) : null,
      minRatio: ratios.length ? Math.min(...ratios) : null,
      maxRatio: ratios.length ? Math.max(...ratios) : null,
      roundsBLower: ratios.filter((x) => x < 1).length,
      roundsFailed: out.length - done.length,
      ratioCount: ratios.length,
      errors: done.reduce((n, r) => n + r.a.errors + r.b.errors, 0),
    },
  };
}
