// The soak's verdict, from its samples alone (pure, so saved samples can be judged again):
// every member's RSS within its idle base plus 1.25 x the byte budget at every sample; each
// compared member's file descriptors and active handles in the last window within 10 % of its
// first window; and, once the traffic has stopped and keep-alive connections have lapsed, both
// back to their count before the traffic. Like is compared with like: the first window of a
// member restarted during the run begins after its (last) restart, and the run's schedule keeps
// membership changes out of every first window and out of the last one.

import type { ResidentMaps } from './soak-procfs.js';

export interface Sample {
  /** Milliseconds since the traffic started. */
  readonly t: number;
  readonly member: string;
  /** 0 for the first process of a member, 1 after its first restart, ... */
  readonly incarnation: number;
  readonly rssBytes: number;
  readonly fds: number;
  readonly handles: number;
  /** Informational: Node's active resources (timers and requests too), the cache's bytes. */
  readonly resources?: number;
  readonly cacheBytes?: number;
  readonly hotBytes?: number;
  readonly historyBytes?: number;
  /** Informational: V8's heap and external memory (bytes), from the sidecar's metrics. */
  readonly memory?: Readonly<Record<string, number>>;
  /** Informational: file descriptors by kind (check/soak-procfs.ts), read from /proc. */
  readonly fdKinds?: Readonly<Record<string, number>>;
  /** Informational: resident bytes by kind of mapping (check/soak-procfs.ts readResidentMaps). */
  readonly maps?: ResidentMaps;
}

export interface JudgeSpec {
  readonly durationMs: number;
  /** Left out at the start of each first window: connection pools open while traffic ramps up. */
  readonly warmMs: number;
  readonly windowMs: number;
  readonly budgetBytes: number;
  readonly rssFactor: number;
  /** Largest relative change of fds and handles between the windows (0.10). */
  readonly tolerance: number;
  /** RSS before any traffic, per member; members without one (joiners) get the largest. */
  readonly idleRss: Readonly<Record<string, number>>;
  /** Members whose fds and handles are compared: those present in the first and the last window. */
  readonly compared: readonly string[];
  /** Per member, when each incarnation was ready (ms since traffic start; negative: before it). */
  readonly readyAt: Readonly<Record<string, readonly number[]>>;
  /** Whether a window comparison beyond the tolerance fails the run (windows of a minute), or
   *  is only noted (shorter windows, where pool sizes that follow concurrency dominate). */
  readonly gateWindows: boolean;
  /** fds and handles of each compared member before the traffic, and once quiet after it. */
  readonly idleCounts: Readonly<Record<string, Counts>>;
  readonly quietCounts: Readonly<Record<string, Counts>>;
}

export interface Counts { readonly fds: number; readonly handles: number }

export interface WindowFigure {
  readonly from: number;
  readonly to: number;
  readonly samples: number;
  readonly mean: number;
}

export interface Comparison {
  readonly first: WindowFigure;
  readonly last: WindowFigure;
  /** (last - first) / first */
  readonly change: number;
  readonly ok: boolean;
}

export interface MemberVerdict {
  readonly member: string;
  readonly idleRss: number;
  readonly rssBound: number;
  readonly rssFirst: number;
  readonly rssMax: number;
  readonly rssMaxAt: number;
  readonly rssLast: number;
  readonly rssOk: boolean;
  readonly incarnations: number;
  readonly fds?: Comparison;
  readonly handles?: Comparison;
  readonly idleCounts?: Counts;
  readonly quietCounts?: Counts;
}

export type FailedCheck = 'rss' | 'fds' | 'handles' | 'quiet' | 'samples';

export interface Verdict {
  readonly ok: boolean;
  /** Which kinds of check failed: rss, fds, handles (windows), quiet, samples (too few or none). */
  readonly failed: ReadonlySet<FailedCheck>;
  /** Window comparisons beyond the tolerance that do not fail the run (spec.gateWindows false). */
  readonly notes: readonly string[];
  readonly members: readonly MemberVerdict[];
  readonly failures: readonly string[];
}

const MIN_WINDOW_SAMPLES = 3;

function windowOf(samples: readonly Sample[], from: number, to: number, pick: (s: Sample) => number): WindowFigure {
  const inside = samples.filter((s) => s.t >= from && s.t < to);
  const mean = inside.length === 0 ? Number.NaN : inside.reduce((a, s) => a + pick(s), 0) / inside.length;
  return { from, to, samples: inside.length, mean };
}

function compare(samples: readonly Sample[], firstFrom: number, spec: JudgeSpec, pick: (s: Sample) => number): Comparison {
  const first = windowOf(samples, firstFrom, firstFrom + spec.windowMs, pick);
  const last = windowOf(samples, spec.durationMs - spec.windowMs, spec.durationMs + 1, pick);
  const change = (last.mean - first.mean) / first.mean;
  const ok = first.samples >= MIN_WINDOW_SAMPLES && last.samples >= MIN_WINDOW_SAMPLES && Math.abs(change) <= spec.tolerance;
  return { first, last, change, ok };
}

export function judge(samples: readonly Sample[], spec: JudgeSpec): Verdict {
  const failures: string[] = [];
  const failed = new Set<FailedCheck>();
  const notes: string[] = [];
  const members = [...new Set(samples.map((s) => s.member))].sort();
  for (const m of spec.compared) {
    if (members.includes(m)) continue;
    failures.push(`${m}: no samples`);
    failed.add('samples');
  }
  const idles = Object.values(spec.idleRss);
  const joinerIdle = idles.length > 0 ? Math.max(...idles) : 0;
  const verdicts = members.map((member): MemberVerdict => {
    const mine = samples.filter((s) => s.member === member).sort((a, b) => a.t - b.t);
    const idleRss = spec.idleRss[member] ?? joinerIdle;
    const rssBound = idleRss + spec.rssFactor * spec.budgetBytes;
    const max = mine.reduce((a, s) => (s.rssBytes > a.rssBytes ? s : a), mine[0]!);
    const rssOk = max.rssBytes <= rssBound;
    if (!rssOk) failed.add('rss');
    if (!rssOk) failures.push(`${member}: RSS ${mib(max.rssBytes)} at ${(max.t / 1000).toFixed(0)} s over its bound ${mib(rssBound)} (idle ${mib(idleRss)} + ${spec.rssFactor} x budget ${mib(spec.budgetBytes)})`);
    const incarnations = new Set(mine.map((s) => s.incarnation)).size;
    if (!spec.compared.includes(member)) {
      return { member, idleRss, rssBound, rssFirst: mine[0]!.rssBytes, rssMax: max.rssBytes, rssMaxAt: max.t, rssLast: mine[mine.length - 1]!.rssBytes, rssOk, incarnations };
    }
    // Like with like: only the last incarnation, from its start (the run's, or its restart's).
    const lastIncarnation = Math.max(...mine.map((s) => s.incarnation));
    const current = mine.filter((s) => s.incarnation === lastIncarnation);
    const ready = spec.readyAt[member]?.[lastIncarnation] ?? 0;
    const firstFrom = Math.max(0, ready) + spec.warmMs;
    const fds = compare(current, firstFrom, spec, (s) => s.fds);
    const handles = compare(current, firstFrom, spec, (s) => s.handles);
    for (const [what, c] of [['fds', fds], ['active handles', handles]] as const) {
      if (c.ok) continue;
      if (c.first.samples < MIN_WINDOW_SAMPLES || c.last.samples < MIN_WINDOW_SAMPLES) {
        failed.add('samples');
        failures.push(`${member}: too few samples to compare ${what} (${c.first.samples} in the first window, ${c.last.samples} in the last)`);
      } else {
        const line = `${member}: ${what} ${c.first.mean.toFixed(1)} in the first window, ${c.last.mean.toFixed(1)} in the last (${pct(c.change)}, more than ${pct(spec.tolerance)})`;
        if (spec.gateWindows) {
          failed.add(what === 'fds' ? 'fds' : 'handles');
          failures.push(line);
        } else {
          notes.push(line);
        }
      }
    }
    const idle = spec.idleCounts[member];
    const quiet = spec.quietCounts[member];
    if (idle === undefined || quiet === undefined) {
      failed.add('quiet');
      failures.push(`${member}: no count of fds and handles ${idle === undefined ? 'before' : 'after'} the traffic`);
    } else if (quiet.fds > idle.fds || quiet.handles > idle.handles) {
      failed.add('quiet');
      failures.push(`${member}: once quiet after the traffic, ${quiet.fds} fds and ${quiet.handles} handles against ${idle.fds} and ${idle.handles} before it`);
    }
    return {
      member, idleRss, rssBound, rssFirst: mine[0]!.rssBytes, rssMax: max.rssBytes, rssMaxAt: max.t, rssLast: mine[mine.length - 1]!.rssBytes, rssOk,
      incarnations, fds, handles, idleCounts: idle, quietCounts: quiet,
    };
  });
  return { ok: failures.length === 0, failed, notes, members: verdicts, failures };
}

export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export function pct(x: number): string {
  return `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} %`;
}
