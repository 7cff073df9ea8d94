// The seeded cluster checker: `npm run check -- --seed=N --duration=60s`. For each seed it
// starts a real cluster (check/system.ts), runs clients and a seeded fault schedule against it
// (check/workload.ts, check/faults.ts), then reads the history for broken promises
// (check/analyse.ts). Exit 0 only when no seed found an anomaly; 1 when one did; 2 when the
// checker itself could not run. See check/README.md.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyseAsync, ANOMALY_KINDS, slice, type Anomaly, type Bounds, type HistoryData } from './analyse.js';
import { FAULT_KINDS, planFaults, runFaults, type FaultKind } from './faults.js';
import { History } from './history.js';
import { startSystem, TIMING, type System } from './system.js';
import { clientLoop, purgerLoop, type WorkloadOptions } from './workload.js';

const USAGE = `usage: npm run check -- [--seed=N | --seeds=N,N,...] [--duration=40s] [--clients=2]
       [--faults=${FAULT_KINDS.join(',')}] [--show=3] [--history-dir=DIR]
  --seed, --seeds  seeds to run, one after another (default 1,2)
  --duration       client traffic per seed (ms, s or m; default 40s); setup and analysis come on top
  --clients        clients per sidecar (default 2)
  --faults         the fault kinds the schedule may use (default all)
  --show           slices printed per kind of anomaly and seed (default 3)
  --history-dir    where each seed's history is saved as JSON (default a new temporary directory)
  --analyse=FILE   analyse a saved history again (no cluster is started)`;

interface Options {
  seeds: number[];
  durationMs: number;
  clients: number;
  faults: FaultKind[];
  show: number;
  historyDir: string | undefined;
  analyse: string | undefined;
}

class UsageError extends Error {}

function parseDuration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v);
  if (m === null) throw new UsageError(`--duration: expected e.g. 60s, 500ms or 30m, got "${v}"`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
}

function parseSeed(v: string): number {
  if (!/^\d{1,10}$/.test(v) || Number(v) > 0xffffffff) throw new UsageError(`seed: expected an integer 0-4294967295, got "${v}"`);
  return Number(v);
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { seeds: [1, 2], durationMs: 40_000, clients: 2, faults: [...FAULT_KINDS], show: 3, historyDir: undefined, analyse: undefined };
  for (const arg of argv) {
    const m = /^--([a-z-]+)=(.*)$/.exec(arg);
    if (arg === '--help' || arg === '-h') throw new UsageError('');
    if (m === null) throw new UsageError(`unknown argument "${arg}"`);
    const [, name, value] = m as unknown as [string, string, string];
    switch (name) {
      case 'seed': o.seeds = [parseSeed(value)]; break;
      case 'seeds': o.seeds = value.split(',').map(parseSeed); break;
      case 'duration': o.durationMs = parseDuration(value); break;
      case 'clients': {
        const n = Number(value);
        if (!Number.isInteger(n) || n < 1 || n > 8) throw new UsageError(`--clients: expected 1-8, got "${value}"`);
        o.clients = n;
        break;
      }
      case 'faults': {
        const kinds = value === '' || value === 'none' ? [] : value.split(',');
        const bad = kinds.filter((k) => !(FAULT_KINDS as readonly string[]).includes(k));
        if (bad.length > 0) throw new UsageError(`--faults: unknown kind ${bad.join(', ')}; expected some of ${FAULT_KINDS.join(',')} or none`);
        o.faults = kinds as FaultKind[];
        break;
      }
      case 'show': o.show = Math.max(0, Math.min(100, Number(value) || 0)); break;
      case 'history-dir': o.historyDir = value; break;
      case 'analyse': o.analyse = value; break;
      default: throw new UsageError(`unknown option --${name}`);
    }
  }
  if (o.durationMs < 10_000 || o.durationMs > 6 * 3600_000) throw new UsageError('--duration: expected between 10s and 6h');
  return o;
}

const BOUNDS: Bounds = {
  missingGraceMs: TIMING.maxStaleDetachedMs + TIMING.heartbeatTtlMs,
  answerWithinMs: TIMING.peerTimeoutMs + TIMING.headersTimeoutMs + 5_000,
};

let current: System | undefined;

interface SeedResult {
  seed: number;
  anomalies: Anomaly[];
  seconds: number;
}

async function runSeed(seed: number, o: Options, historyDir: string): Promise<SeedResult> {
  const began = performance.now();
  const history = new History();
  const sys = await startSystem(history, seed, 3);
  current = sys;
  try {
    const startAt = history.now();
    history.trafficStart = startAt;
    const until = startAt + o.durationMs;
    const plan = planFaults({ seed, startMs: startAt + 3_000, endMs: until - 8_000, sidecars: 3, kinds: o.faults });
    const w: WorkloadOptions = { history, members: sys.members, origin: sys.origin, seed, until, requestTimeoutMs: BOUNDS.answerWithinMs + 5_000 };
    const loops: Array<Promise<void>> = [];
    const startClients = (slot: number) => {
      for (let c = 0; c < o.clients; c++) loops.push(clientLoop(w, sys.members[slot]!, `c${slot}.${c}`));
    };
    sys.members.forEach((_, i) => startClients(i));
    loops.push(purgerLoop(w));
    await runFaults(sys, history, plan, until, startClients);
    // Loops end at `until`; each request within its timeout. Loops started by a join are in `loops` too.
    for (let i = 0; i < loops.length; i++) await loops[i];
    sys.healAll();
    history.closeAll();
    const anomalies = await analyseAsync(history, BOUNDS);
    const file = join(historyDir, `seed-${seed}.json`);
    writeFileSync(file, JSON.stringify({ seed, durationMs: o.durationMs, plan, bounds: BOUNDS, ...history.toJSON() }));
    writeAnomalies(join(historyDir, `seed-${seed}.anomalies.jsonl`), anomalies, history.trafficStart);
    // The sidecars' own lines (membership, log, drain), to read an anomaly against: their
    // times are wall-clock, the history's `wallT0` says where its time 0 falls.
    const logs = sys.members.map((m) => m.output()).join('\n');
    writeFileSync(join(historyDir, `seed-${seed}.sidecars.log`), logs);
    // Not an anomaly (a flush is never a stale read), but a flush without a reset, retention or
    // a long outage behind it is a member emptying its cache for nothing: worth a look.
    const count = (msg: string) => logs.split('\n').filter((l) => l.includes(`"msg":"${msg}`)).length;
    const logLine = `sidecar logs: ${count('log gap:')} flushes on a log gap (${history.faults.filter((f) => f.kind === 'inval-reset').length} INVAL resets in the schedule), ` +
      `${count('INVAL consumer made no progress')} stalled INVAL consumers restarted`;
    report(seed, history, anomalies, o, file, (performance.now() - began) / 1000, logLine);
    return { seed, anomalies, seconds: (performance.now() - began) / 1000 };
  } finally {
    current = undefined;
    sys.healAll();
    await sys.shutdown();
  }
}

/** One line per anomaly, for tools: kind, when it was seen, where, and the hints. */
function writeAnomalies(file: string, anomalies: readonly Anomaly[], trafficStart: number): void {
  writeFileSync(file, anomalies.map((a) => JSON.stringify({
    kind: a.kind, at: a.op.end, afterTrafficStartMs: a.op.end! - trafficStart, op: a.op.id, member: a.op.member, key: a.op.key, purge: a.purge?.id, message: a.message, hints: a.hints,
  })).join('\n') + (anomalies.length > 0 ? '\n' : ''));
}

function count<T>(items: readonly T[], key: (t: T) => string): string {
  const m = new Map<string, number>();
  for (const i of items) m.set(key(i), (m.get(key(i)) ?? 0) + 1);
  return [...m].map(([k, n]) => `${k} ${n}`).join(', ');
}

function report(seed: number, h: HistoryData, anomalies: Anomaly[], o: Options, file: string, seconds: number, logLine?: string): void {
  const ops = h.ops;
  const reads = ops.filter((x) => x.type === 'read').length;
  const writes = ops.filter((x) => x.type === 'write').length;
  const purges = ops.filter((x) => x.type === 'purge');
  const okPurges = purges.filter((p) => p.status === 200).length;
  console.log(`seed ${seed}: ${ops.length} operations (${reads} reads, ${writes} writes, ${purges.length} purges, ${okPurges} returned 200), ` +
    `${h.origin.length} origin responses, faults: ${count(h.faults, (f) => f.kind) || 'none'}; ${anomalies.length} anomalies; ${seconds.toFixed(1)} s`);
  for (const kind of ANOMALY_KINDS) {
    const of = anomalies.filter((a) => a.kind === kind).sort((x, y) => x.op.end! - y.op.end!);
    if (of.length === 0) continue;
    const first = of[0]!.op.end! - (h.trafficStart ?? 0);
    console.log(`\n  ${kind}: ${of.length}, the first ${(first / 1000).toFixed(1)} s after the clients started (members: ${count(of, (a) => a.op.member)})`);
    // One slice per distinct (member, purge) first: different causes before repeats of one.
    const shown = new Set<string>();
    const pick = [...of.filter((a) => { const k = `${a.op.member}/${a.purge?.id ?? a.op.id}`; if (shown.has(k)) return false; shown.add(k); return true; })].slice(0, o.show);
    for (const a of pick) {
      console.log(`\n    ${a.message}`);
      for (const hint of a.hints) console.log(`      hint: ${hint}`);
      for (const line of slice(h, a)) console.log(`      ${line}`);
    }
  }
  if (anomalies.length > 0) console.log(`\n  reproduce: npm run check -- --seed=${seed} --duration=${Math.round(o.durationMs / 1000)}s${o.faults.length === FAULT_KINDS.length ? '' : ` --faults=${o.faults.join(',')}`}`);
  if (logLine !== undefined) console.log(`  ${logLine}`);
  console.log(`  history: ${file}\n`);
}

async function main(): Promise<number> {
  let o: Options;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      if (err.message !== '') console.error(`check: ${err.message}`);
      console.error(USAGE);
      return err.message === '' ? 0 : 2;
    }
    throw err;
  }
  if (o.analyse !== undefined) {
    const read = JSON.parse(readFileSync(o.analyse, 'utf8')) as HistoryData & { seed: number; durationMs: number };
    // Histories saved before the clients' start was recorded: their first operation is close.
    const saved = { ...read, trafficStart: read.trafficStart ?? read.ops.reduce((m, x) => Math.min(m, x.start), Infinity) };
    const anomalies = await analyseAsync(saved, BOUNDS);
    writeAnomalies(o.analyse.replace(/(\.json)?$/, '.anomalies.jsonl'), anomalies, saved.trafficStart);
    report(saved.seed, saved, anomalies, { ...o, durationMs: saved.durationMs }, o.analyse, 0);
    return anomalies.length === 0 ? 0 : 1;
  }
  const dir = o.historyDir ?? mkdtempSync(join(tmpdir(), 'sidecache-check-'));
  mkdirSync(dir, { recursive: true });
  console.log(`check: seeds ${o.seeds.join(',')}, ${o.durationMs / 1000} s of traffic each, ${o.clients} clients per sidecar, faults ${o.faults.join(',') || 'none'}`);
  const results: SeedResult[] = [];
  for (const seed of o.seeds) {
    // A run that overruns its budget by far is stuck: stop its processes and give up.
    const budgetMs = o.durationMs + 240_000;
    const watchdog = setTimeout(() => {
      console.error(`check: seed ${seed} overran ${budgetMs / 1000} s; stopping`);
      void (current?.shutdown() ?? Promise.resolve()).finally(() => process.exit(2));
    }, budgetMs);
    try {
      results.push(await runSeed(seed, o, dir));
    } finally {
      clearTimeout(watchdog);
    }
  }
  const bad = results.filter((r) => r.anomalies.length > 0);
  console.log(bad.length === 0
    ? `check: no anomaly in ${results.length} seed(s)`
    : `check: anomalies in seed(s) ${bad.map((r) => `${r.seed} (${count(r.anomalies, (a) => a.kind)})`).join('; ')}`);
  return bad.length === 0 ? 0 : 1;
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`check: ${sig}: stopping the cluster`);
    current?.healAll();
    void (current?.shutdown() ?? Promise.resolve()).finally(() => process.exit(130));
  });
}

main().then((code) => { process.exitCode = code; }, (err: unknown) => {
  console.error('check: could not run:', err);
  process.exitCode = 2;
});
