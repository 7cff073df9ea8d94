// Reads a history and finds where the cluster broke a promise (the promises and how a read is
// judged against a purge: verdict.ts).
//
// Pure: the history in, the anomalies out (so a saved history can be analysed again). Purges,
// versions and origin responses are indexed by key and time, so each read looks only at the
// purges that could have removed what it got (a 30-minute history holds some 100,000 reads and
// 3,000 purges); analyseAsync hands the event loop back as it goes.
import type { Bump, ClientOp, OriginResponse, PurgeOp, ReadOp } from './history.js';
import { keysOfPurge } from './origin.js';
import { judge, judging, overlaps, type Anomaly, type Bounds, type HistoryData, type Lookups } from './verdict.js';

export { ANOMALY_KINDS, type Anomaly, type AnomalyKind, type Bounds, type HistoryData } from './verdict.js';

/** The index of the first of `n` items for which `pred` holds, when it holds for a suffix; `n` if for none. */
function firstWhere(n: number, pred: (i: number) => boolean): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (pred(mid)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Purges latest end first (the order the analysis tries them in), with the latest start from
 *  each position on: a scan down from some end stops once no purge left began late enough. */
class PurgeLine {
  readonly #purges: PurgeOp[] = [];
  readonly #latestStartFrom: number[] = [];

  /** Purges must come latest end first. */
  add(p: PurgeOp): void {
    this.#purges.push(p);
  }

  seal(): void {
    let latest = -Infinity;
    for (let i = this.#purges.length - 1; i >= 0; i--) this.#latestStartFrom[i] = latest = Math.max(latest, this.#purges[i]!.start);
  }

  get length(): number {
    return this.#purges.length;
  }

  at(i: number): PurgeOp {
    return this.#purges[i]!;
  }

  latestStartFrom(i: number): number {
    return this.#latestStartFrom[i]!;
  }

  /** The first position of a purge that returned before `t` (at `t` too, when `orAt`). */
  endingBefore(t: number, orAt: boolean): number {
    return firstWhere(this.#purges.length, (i) => (orAt ? this.#purges[i]!.end! <= t : this.#purges[i]!.end! < t));
  }

  /** The first purge, latest end first, that returned before `t` (or at it, when `orAt`) and began after `after`. */
  find(t: number, orAt: boolean, after: number): PurgeOp | undefined {
    for (let i = this.endingBefore(t, orAt); i < this.#purges.length && this.#latestStartFrom[i]! > after; i++) {
      if (this.#purges[i]!.start > after) return this.#purges[i];
    }
    return undefined;
  }
}

/** A key's versions at the origin over time: bumps in time order with the highest version so far. */
class VersionLine {
  readonly #at: number[] = [];
  readonly #highest: number[] = [];

  constructor(bumps: Bump[]) {
    bumps.sort((x, y) => x.at - y.at);
    let highest = -Infinity;
    for (const x of bumps) {
      this.#at.push(x.at);
      this.#highest.push((highest = Math.max(highest, x.version)));
    }
  }

  /** The version the origin held at `t` (1 before any bump). */
  at(t: number): number {
    const i = firstWhere(this.#at.length, (j) => this.#at[j]! > t) - 1;
    return i < 0 ? 1 : Math.max(1, this.#highest[i]!);
  }

  /** From when on the origin held a version newer than `v`: at(t) > v exactly when t >= this. */
  newerThan(v: number): number {
    if (1 > v) return -Infinity;
    const j = firstWhere(this.#highest.length, (i) => this.#highest[i]! > v);
    return j < this.#at.length ? this.#at[j]! : Infinity;
  }
}

/** Origin responses in the order they were received, with the earliest answer from each on. */
class OriginLine {
  readonly responses: OriginResponse[];
  readonly #earliestSentFrom: number[] = [];

  constructor(responses: OriginResponse[]) {
    this.responses = responses.sort((x, y) => x.receivedAt - y.receivedAt);
    let earliest = Infinity;
    for (let i = responses.length - 1; i >= 0; i--) this.#earliestSentFrom[i] = earliest = Math.min(earliest, responses[i]!.sentAt ?? Infinity);
  }

  /** The first position of a response received at or after `t`. */
  receivedFrom(t: number): number {
    return firstWhere(this.responses.length, (i) => this.responses[i]!.receivedAt >= t);
  }

  /** Was some response received at or after `from` and sent by `to`? */
  sentWithin(from: number, to: number): boolean {
    const i = this.receivedFrom(from);
    return i < this.responses.length && this.#earliestSentFrom[i]! <= to;
  }

  /** The responses received within [from, to]. */
  *receivedWithin(from: number, to: number): Generator<OriginResponse> {
    for (let i = this.receivedFrom(from); i < this.responses.length && this.responses[i]!.receivedAt <= to; i++) yield this.responses[i]!;
  }
}

function groupBy<T, K>(items: Iterable<T>, key: (t: T) => K): Map<K, T[]> {
  const m = new Map<K, T[]>();
  for (const x of items) {
    const k = key(x);
    const list = m.get(k);
    if (list === undefined) m.set(k, [x]);
    else list.push(x);
  }
  return m;
}

/** The Lookups of a history, answered from indexes built once. */
function indexOf(h: HistoryData): Lookups {
  // Purges that returned, latest end first, for each key they cover (prefixes, tags and all
  // resolved) and for each member a purge lists as acknowledged.
  const purges = h.ops.filter((o): o is PurgeOp => o.type === 'purge' && o.status === 200 && o.end !== undefined && o.seq !== undefined)
    .sort((x, y) => y.end! - x.end!);
  const purgesOf = new Map<string, PurgeLine>();
  const ackedBy = new Map<string, PurgeLine>();
  const line = (m: Map<string, PurgeLine>, k: string): PurgeLine => m.get(k) ?? m.set(k, new PurgeLine()).get(k)!;
  for (const p of purges) {
    for (const key of new Set(keysOfPurge(p.body as Parameters<typeof keysOfPurge>[0]))) line(purgesOf, key).add(p);
    for (const m of p.acknowledged ?? []) line(ackedBy, m).add(p);
  }
  for (const l of [...purgesOf.values(), ...ackedBy.values()]) l.seal();
  const versions = new Map([...groupBy(h.bumps, (x) => x.key)].map(([k, list]) => [k, new VersionLine(list)]));
  const originOf = new Map([...groupBy(h.origin, (r) => r.key)].map(([k, list]) => [k, new OriginLine(list)]));
  // The origin's 200s and 304s, by key and version: what vouches for a version.
  const good = h.origin.filter((r) => r.version !== undefined && (r.status === 200 || r.status === 304));
  const vouched = new Map([...groupBy(good, (r) => r.key)].map(([k, list]) =>
    [k, new Map([...groupBy(list, (r) => r.version!)].map(([v, rs]) => [v, new OriginLine(rs)]))]));
  return {
    *purgesBefore(op, fetch) {
      const covering = purgesOf.get(op.key);
      if (covering === undefined) return;
      // A verdict needs a purge that removed a version newer than the one read (one that began
      // once the origin held it) or that began after the fetch behind the body: from the
      // latest, until none older can be either.
      const newerFrom = versions.get(op.key)?.newerThan(op.version) ?? (1 > op.version ? -Infinity : Infinity);
      const fetchedAt = fetch?.receivedAt ?? Infinity;
      const matters = (start: number): boolean => start >= newerFrom || start > fetchedAt;
      for (let j = covering.endingBefore(op.start, false); j < covering.length && matters(covering.latestStartFrom(j)); j++) {
        if (matters(covering.at(j).start)) yield covering.at(j);
      }
    },
    acknowledged: (member, by, orAt, after) => ackedBy.get(member)?.find(by, orAt, after),
    versionAt: (key, t) => versions.get(key)?.at(t) ?? 1,
    confirmed: (key, version, from, to) => vouched.get(key)?.get(version)?.sentWithin(from, to) ?? false,
    receivedWithin: (key, from, to) => originOf.get(key)?.receivedWithin(from, to) ?? [],
  };
}

export function analyse(h: HistoryData, b: Bounds): Anomaly[] {
  return judge(h, b, indexOf(h));
}

/** analyse, handing the event loop back every few thousand operations: the checker's watchdog
 *  must be able to fire while a long history is read. */
export async function analyseAsync(h: HistoryData, b: Bounds): Promise<Anomaly[]> {
  const run = judging(h, b, indexOf(h));
  for (;;) {
    const step = run.next();
    if (step.done === true) return step.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

const at = (t: number): string => `+${(t / 1000).toFixed(3)}s`;

function describeOp(op: ClientOp): string {
  if (op.type === 'purge') {
    const res = op.status === 200 ? `200 seq=${op.seq} acknowledged=[${op.acknowledged?.join(',')}] missing=[${op.missing?.join(',')}]` : `${op.status ?? '-'} ${op.error ?? ''}`;
    return `purge #${op.id} at ${op.member} ${JSON.stringify(op.body)} -> ${res}`;
  }
  if (op.type === 'write') return `${op.client}: ${op.method} ${op.key} at ${op.member} -> ${op.status ?? op.error} v=${op.version ?? '-'}`;
  const cond = op.ifNoneMatch !== undefined ? ` If-None-Match: ${op.ifNoneMatch}` : op.ifModifiedSince !== undefined ? ` If-Modified-Since: ${op.ifModifiedSince}` : '';
  const got = op.error !== undefined ? `error ${op.error}` : `${op.status} v=${op.version ?? '-'} f=${op.fetchId ?? '-'} Cache-Status: ${op.cacheStatus ?? '-'}`;
  return `${op.client}: ${op.method} ${op.key} (${op.lang})${cond} at ${op.member} -> ${got}`;
}

/** The smallest slice of the history that shows one anomaly: time-ordered lines. */
export function slice(h: HistoryData, a: Anomaly): string[] {
  const lines: Array<[number, string]> = [];
  const op = a.op;
  const from = a.fetch?.receivedAt ?? a.purge?.start ?? op.start;
  const to = op.end ?? op.start;
  if (a.fetch !== undefined) {
    const f = a.fetch;
    lines.push([f.receivedAt, `origin: ${f.method} ${f.key} received (f=${f.id}${f.conditional ? ', conditional' : ''}${f.via ? `, Via: ${f.via}` : ''})`]);
    if (f.sentAt !== undefined) lines.push([f.sentAt, `origin: f=${f.id} answered ${f.status} v=${f.version}`]);
  }
  // What the origin answered for this key while the read was in flight (a failure behind a stale serve).
  for (const r of h.origin) {
    if (r.key === op.key && r !== a.fetch && r.receivedAt >= op.start && r.receivedAt <= to) {
      lines.push([r.receivedAt, `origin: ${r.method} ${r.key} answered ${r.status ?? '-'}${r.version !== undefined ? ` v=${r.version}` : ''} (f=${r.id}${r.conditional ? ', conditional' : ''})`]);
    }
  }
  for (const x of h.bumps) if (x.key === op.key && x.at >= from - 1 && x.at <= to) lines.push([x.at, `origin: ${x.key} is now v${x.version} (${x.by})`]);
  if (a.purge !== undefined) {
    lines.push([a.purge.start, `purge #${a.purge.id} sent`]);
    lines.push([a.purge.end!, describeOp(a.purge)]);
  }
  for (const f of h.faults) {
    if (!overlaps(f, from, to)) continue;
    lines.push([f.start, `fault #${f.id} ${f.kind} ${f.target} begins: ${f.note}`]);
    if (f.end !== undefined && f.end <= to) lines.push([f.end, `fault #${f.id} ${f.kind} ${f.target} ends`]);
  }
  for (const o of h.outages) {
    if (!overlaps(o, from, to)) continue;
    lines.push([o.start, `${o.member} ${o.kind}`]);
    if (o.end !== undefined && o.end <= to) lines.push([o.end, `${o.member} ${o.kind === 'paused' ? 'resumed' : 'ready again'}`]);
  }
  // Where the member got the copy again after the purge began: the first read there that served it.
  if (a.purge !== undefined && op.type === 'read' && op.fetchId !== undefined) {
    const first = h.ops.find((x): x is ReadOp => x.type === 'read' && x !== op && x.member === op.member &&
      x.fetchId === op.fetchId && x.start >= a.purge!.start && x.start < op.start);
    if (first !== undefined) {
      lines.push([first.start, `${first.type} #${first.id} sent (the first read at ${op.member} after the purge began to get f=${op.fetchId})`]);
      lines.push([first.end!, describeOp(first)]);
    }
  }
  lines.push([op.start, `${op.type} #${op.id} sent`]);
  lines.push([to, describeOp(op)]);
  return lines.sort((x, y) => x[0] - y[0]).map(([t, s]) => `${at(t).padStart(10)}  ${s}`);
}
