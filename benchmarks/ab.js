#!/usr/bin/env node
// Paired comparison of two servers: CPU per request of A and of B, both pinned to the server core
// and loaded at the same time by two wrk processes on the load core. On a shared VM the machine's
// speed drifts by tens of percent within a minute; one after the other, such a drift lands on one
// side of a pair, while here it lands on both. Same build on both sides (A/A): pairs within ±4 %;
// pairs of two builds 3 % apart, run one after the other: 0.72-1.26.
//
// The two servers share one core, so each also pays for the other's cache and TLB misses: the
// ratio is the CPU per request of each under co-scheduling, which is right for comparing two
// builds of sidecache and pessimistic for sidecache against a much smaller program (bare-node).
// The rounds themselves are lib/paired.js, which the hit scenario also runs (sidecache against
// bare-node, a short pass per size and connection count) for its "CPU x bare (paired)" column.
//
//   node benchmarks/ab.js --b=/path/to/other/dist               this build (dist/) vs another build
//   node benchmarks/ab.js --a=dist --b=bare-node --path=/obj/1024/ab
//   node benchmarks/ab.js --b=... --path=/nostore/1024/ab         the miss (pass) path
// Options: --a, --b (a dist directory holding main.js, or bare-node; default a = dist), --path
// (default /obj/1024/ab: hits after the first request), --rounds=8, --duration=4 (s), --conns=8 (per
// side), --dry-run (1 round of 1 s, results in results/tmp/). Another commit's build:
//   git worktree add /tmp/old <rev> && (cd /tmp/old && npm ci && npm run build)  ->  --b=/tmp/old/dist
import fs from 'node:fs';
import path from 'node:path';
import { pinSelf, canPin, LOAD_CPU } from './lib/cpu.js';
import { ensureWrk } from './lib/wrk.js';
import { startOrigin, startBareNode, startSidecache, REPO_ROOT } from './lib/servers.js';
import { pairedCpu } from './lib/paired.js';
import { makeTempDir } from './lib/processes.js';
import { httpGet } from './lib/http.js';
import { machineInfo, resultsDir } from './lib/results.js';

class UsageError extends Error {}

function parseArgs(argv) {
  const o = { a: 'dist', b: null, path: '/obj/1024/ab', rounds: 8, duration: 4, conns: 8, dry: false };
  for (const arg of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m) throw new UsageError(`unexpected argument "${arg}"`);
    const [, k, v] = m;
    if (k === 'dry-run' && v === undefined) o.dry = true;
    else if ((k === 'a' || k === 'b') && v) o[k] = v;
    else if (k === 'path' && v?.startsWith('/')) o.path = v;
    else if (['rounds', 'duration', 'conns'].includes(k) && /^[1-9]\d*$/.test(v ?? '')) o[k] = Number(v);
    else throw new UsageError(`bad option "${arg}"`);
  }
  if (o.b === null) throw new UsageError('--b is required: a dist directory holding main.js, or bare-node');
  if (o.dry) Object.assign(o, { rounds: 1, duration: 1 });
  return o;
}

async function startSide(spec, label, { tmpDir, originPort }) {
  if (spec === 'bare-node') return { ...(await startBareNode({ tmpDir })), spec };
  const main = path.resolve(REPO_ROOT, spec, 'main.js');
  if (!fs.existsSync(main)) throw new UsageError(`--${label.toLowerCase()}=${spec}: ${main} not found (build it first)`);
  const s = await startSidecache({ tmpDir, originPort, main, name: `sidecache-${label}` });
  if (s.skipped) throw new UsageError(s.reason);
  return { ...s, spec };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const log = (line) => console.log(line);
  if (!ensureWrk({ install: !o.dry, log })) throw new UsageError('wrk is not installed (apt-get install wrk)');
  if (!canPin()) log('warning: no taskset or one core only: servers and wrk are not pinned');
  pinSelf(LOAD_CPU);
  const tmpDir = makeTempDir('ab');
  const origin = await startOrigin({ tmpDir });
  const sides = [];
  let paired;
  try {
    sides.push(await startSide(o.a, 'A', { tmpDir, originPort: origin.port }));
    sides.push(await startSide(o.b, 'B', { tmpDir, originPort: origin.port }));
    for (const s of sides) await httpGet(s.url(o.path)); // the first request of a hit path is its miss
    paired = await pairedCpu({ a: sides[0], b: sides[1], urlPath: o.path, rounds: o.rounds, durationSec: o.duration, conns: o.conns, warmSec: o.dry ? 0 : 2, tmpDir, log });
  } finally {
    for (const s of sides) await s.stop();
    await origin.stop();
  }
  const { rounds, summary } = paired;
  const errors = summary.errors;
  log(`A = ${o.a}, B = ${o.b}, path ${o.path}: CPU µs/req median A ${summary.medianA?.toFixed(2)}, B ${summary.medianB?.toFixed(2)}; ` +
    `B/A median ${summary.medianRatio?.toFixed(3)} (rounds ${summary.minRatio?.toFixed(3)}-${summary.maxRatio?.toFixed(3)}, B lower in ${summary.roundsBLower} of ${summary.ratioCount})` +
    (errors ? `; ${errors} wrk errors` : '') + (summary.roundsFailed ? `; ${summary.roundsFailed} rounds failed` : ''));
  const dir = resultsDir(o.dry);
  fs.mkdirSync(dir, { recursive: true });
  const startedAt = new Date().toISOString();
  const file = path.join(dir, `ab-${startedAt.replace(/[:]/g, '-').replace(/\.\d+Z$/, 'Z')}.json`);
  fs.writeFileSync(file, `${JSON.stringify({ scenario: 'ab', startedAt, options: o, machine: machineInfo(), rounds, summary }, null, 2)}\n`);
  log(`wrote ${path.relative(process.cwd(), file)}`);
  if (summary.ratioCount !== rounds.length || errors > 0) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err instanceof UsageError ? `ab: ${err.message}` : err);
  process.exit(2);
});
