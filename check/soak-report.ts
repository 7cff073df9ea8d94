// The soak's summary: what ran (operations, purges, membership changes), the figures per member
// (RSS idle, bound, first, peak and last; fds and handles in the first and last windows, by
// kind), the checks that make the figures mean something, and the verdict line CI reads.
import { mib, pct, type JudgeSpec, type Sample, type Verdict } from './soak-judge.js';
import { OP_KINDS, PURGE_KINDS, type LoadStats, type OriginStats } from './soak-load.js';
import type { SoakOptions, Timing } from './soak-plan.js';

export interface SoakEvent {
  kind: 'restart' | 'join' | 'leave' | 'skipped';
  member: string;
  /** When it began and when it was done (ready again, or gone from every ring), ms since the traffic started. */
  at: number;
  doneAt?: number;
  note?: string;
}

export interface ExtraCheck { readonly name: string; readonly ok: boolean; readonly detail: string }

/** What makes the figures mean something: the budget was filled, the traffic was answered, and
 *  no membership change reached into the last window. */
export function extraChecks(o: SoakOptions, base: readonly string[], samples: readonly Sample[], load: LoadStats,
  events: readonly SoakEvent[], lastWindowFrom: number): ExtraCheck[] {
  const filled = base.map((id) => {
    const max = Math.max(0, ...samples.filter((x) => x.member === id).map((x) => x.cacheBytes ?? 0));
    return { id, max, ok: max >= 0.9 * o.maxBytes };
  });
  const c = Object.values(load.byKind);
  const issued = c.reduce((a, k) => a + k.issued, 0);
  const errors = c.reduce((a, k) => a + k.errors, 0);
  const late = events.filter((e) => e.kind !== 'skipped' && (e.doneAt ?? e.at) >= lastWindowFrom);
  return [
    { name: 'budget-filled', ok: filled.every((f) => f.ok), detail: `the store of each first sidecar reached ${filled.map((f) => `${f.id} ${mib(f.max)}`).join(', ')} of ${mib(o.maxBytes)} (90 % needed)` },
    { name: 'answers', ok: issued > 0 && errors <= 0.01 * issued, detail: `${errors} errors from sidecars that stayed up in ${issued} operations (${pct(issued === 0 ? 0 : errors / issued)}; 1 % allowed)` },
    { name: 'windows-clean', ok: late.length === 0, detail: late.length === 0 ? 'every membership change was over before the last window'
      : `ran into the last window (not like with like): ${late.map((e) => `${e.kind} ${e.member}`).join(', ')}` },
  ];
}

export interface SoakRun {
  readonly o: SoakOptions;
  readonly tm: Timing;
  readonly spec: JudgeSpec;
  readonly v: Verdict;
  readonly extra: readonly ExtraCheck[];
  readonly events: readonly SoakEvent[];
  readonly load: LoadStats;
  readonly origin: OriginStats;
  readonly sampleFailures: number;
  readonly samples: readonly Sample[];
  readonly idleDetail: Readonly<Record<string, Sample>>;
  readonly quiet: Readonly<Record<string, Sample>>;
  readonly quietAfterMs: number;
  readonly file: string;
}

/** The names of the checks that failed, for the last line (CI reads it). */
export function failedChecks(r: Pick<SoakRun, 'v' | 'extra'>): string[] {
  return [...r.v.failed, ...r.extra.filter((e) => !e.ok).map((e) => e.name)];
}

const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

function sum(st: LoadStats, field: 'ok' | 'originErrors' | 'errors' | 'errorsAtChange'): number {
  return Object.values(st.byKind).reduce((a, k) => a + k[field], 0);
}

function memorySplit(x: Sample | undefined): string {
  if (x?.memory === undefined) return '-';
  const heap = x.memory.heapTotal!;
  const ext = x.memory.external!;
  const m = x.maps;
  // Where the rest is: the main malloc arena beyond the buffers it holds (freed memory glibc keeps,
  // its high-water mark), anonymous memory beyond V8's heap (other threads' arenas, stacks), code.
  const where = m === undefined ? '' : ` (malloc main arena - external ${mib(m.mallocHeap - ext)}, other anonymous - V8 heap ${mib(m.anon - heap)}, ` +
    `node's own file pages ${mib(m.executable)}, other files ${mib(m.files)})`;
  return `RSS ${mib(x.rssBytes)} = heap ${mib(heap)} + external ${mib(ext)} + rest ${mib(x.rssBytes - heap - ext)}${where}`;
}

export function report(r: SoakRun): void {
  const { o, tm, spec, v, extra, events, load: st, origin, samples } = r;
  console.log(`soak: ${sec(o.durationMs)} of traffic at ${o.rate} ops/s (seed ${o.seed}, ${o.nats} nats-server, ${o.groups * 128} keys${o.bodyScale > 1 ? `, bodies x${o.bodyScale}` : ''}, MALLOC_ARENA_MAX ${o.mallocArenaMax > 0 ? o.mallocArenaMax : 'not set by the soak'}), budget ${mib(spec.budgetBytes)} ` +
    `(SIDECACHE_MAX_BYTES ${mib(o.maxBytes)} + HOT_MAX_BYTES ${mib(o.hotBytes)} + INVAL_HISTORY_BYTES ${mib(o.historyBytes)}); windows of ${sec(tm.windowMs)}: ` +
    `the first from ${sec(tm.warmMs)} (a restarted member's from its restart + ${sec(tm.warmMs)}), the last from ${sec(o.durationMs - tm.windowMs)}; a sample every ${sec(tm.sampleEveryMs)}`);
  console.log(`  operations: ${OP_KINDS.map((k) => `${k} ${st.byKind[k].issued}`).join(', ')}; not issued (too many in flight) ${st.skipped}`);
  console.log(`  answers: ok ${sum(st, 'ok')}, origin errors passed on ${sum(st, 'originErrors')}, sidecar errors ${sum(st, 'errors')} (+ ${sum(st, 'errorsAtChange')} at a member being stopped or restarted)`);
  for (const e of st.errorSamples) console.log(`    e.g. ${e}`);
  console.log(`  purges: ${PURGE_KINDS.map((k) => `${k} ${st.purgesByKind[k]}`).join(', ')}; ${st.purgesWithMissing} listed a member as missing`);
  console.log(`  cache-status of reads (owner > sidecar asked): ${Object.entries(st.cacheStatus).sort((a, b) => b[1] - a[1]).slice(0, 8).map(([k, n]) => `${k} ${n}`).join(', ')}`);
  console.log(`  origin: ${origin.requests} requests, ${origin.notModified} answered 304, ${origin.failed} answered 503, ${origin.writes} writes`);
  const count = (k: SoakEvent['kind']) => events.filter((e) => e.kind === k).length;
  console.log(`  membership: ${count('restart')} restarts (SIGKILL, then the same id and ports), ${count('join')} joins, ${count('leave')} leaves (SIGTERM), ${count('skipped')} skipped`);
  for (const e of events) console.log(`    ${sec(e.at).padStart(8)} ${e.kind} ${e.member}${e.doneAt !== undefined ? `, done at ${sec(e.doneAt)}` : ''}${e.note ? `: ${e.note}` : ''}`);
  console.log(`  samples: ${samples.length}, ${r.sampleFailures} readings dropped (a member stopping or restarting meanwhile)`);
  console.log('  member  idle RSS   bound      RSS first  peak (at)            last       fds first -> last (change)   active handles first -> last');
  for (const m of v.members) {
    const cmp = (c: typeof m.fds) => (c === undefined ? '-'.padEnd(28) : `${c.first.mean.toFixed(1)} -> ${c.last.mean.toFixed(1)} (${pct(c.change)})`.padEnd(28));
    console.log(`  ${m.member.padEnd(6)}  ${mib(m.idleRss).padEnd(10)} ${mib(m.rssBound).padEnd(10)} ${mib(m.rssFirst).padEnd(10)} ${`${mib(m.rssMax)} (${sec(m.rssMaxAt)})`.padEnd(20)} ` +
      `${mib(m.rssLast).padEnd(10)} ${cmp(m.fds)} ${cmp(m.handles)}${m.incarnations > 1 ? `  [${m.incarnations} processes: compared from the last start]` : ''}`);
  }
  console.log('  memory, idle and at the RSS peak (V8 heap, external buffers, the rest: code, stacks, malloc arenas):');
  for (const m of v.members) {
    const at = samples.find((x) => x.member === m.member && x.t === m.rssMaxAt);
    const cache = at === undefined ? '' : ` (store ${mib(at.cacheBytes ?? 0)}, hot ${mib(at.hotBytes ?? 0)}, history ${mib(at.historyBytes ?? 0)})`;
    console.log(`    ${m.member.padEnd(6)} idle ${memorySplit(r.idleDetail[m.member])}; peak ${memorySplit(at)}${cache}`);
  }
  console.log('  fds by kind, mean in the first window -> the last:');
  for (const m of v.members) {
    if (m.fds === undefined) continue;
    const lastStart = Math.max(...samples.filter((x) => x.member === m.member).map((x) => x.incarnation));
    const mine = samples.filter((x) => x.member === m.member && x.incarnation === lastStart && x.fdKinds !== undefined);
    const mean = (from: number, to: number) => {
      const inside = mine.filter((x) => x.t >= from && x.t < to);
      const out: Record<string, number> = {};
      for (const x of inside) for (const [k, n] of Object.entries(x.fdKinds!)) out[k] = (out[k] ?? 0) + n / inside.length;
      return out;
    };
    const a = mean(m.fds.first.from, m.fds.first.to);
    const b = mean(m.fds.last.from, m.fds.last.to);
    const kinds = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    console.log(`    ${m.member.padEnd(6)} ${kinds.map((k) => `${k} ${(a[k] ?? 0).toFixed(1)} -> ${(b[k] ?? 0).toFixed(1)}`).join(', ')}`);
  }
  console.log(`  quiet, ${sec(r.quietAfterMs)} after the traffic (idle before it -> now):`);
  for (const m of v.members) {
    if (m.idleCounts === undefined) continue;
    const q = r.quiet[m.member];
    const kinds = q?.fdKinds === undefined ? '' : `; fds by kind now: ${Object.entries(q.fdKinds).map(([k, n]) => `${k} ${n}`).join(', ')}`;
    console.log(`    ${m.member.padEnd(6)} fds ${m.idleCounts.fds} -> ${m.quietCounts?.fds ?? '-'}, handles ${m.idleCounts.handles} -> ${m.quietCounts?.handles ?? '-'}${kinds}`);
  }
  for (const n of v.notes) console.log(`  note (windows under a minute do not fail the run): ${n}`);
  for (const f of v.failures) console.log(`  FAILED: ${f}`);
  for (const e of extra) console.log(`  ${e.ok ? 'ok' : 'FAILED'}: ${e.name}: ${e.detail}`);
  console.log(`  samples saved: ${r.file}`);
  const failed = failedChecks(r);
  console.log(failed.length === 0 ? 'soak: ok' : `soak: FAILED: ${failed.join(', ')}`);
}
