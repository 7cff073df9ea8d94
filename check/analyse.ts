// Reads a history and finds where the cluster broke a promise:
//
// - read-your-purge: a read that starts after a purge returned, at a member the purge listed as
//   acknowledged, gets a version the purge removed. A hard purge removes everything cached
//   before it began; a fetch that began before it is never stored. So after it returns, an
//   acknowledging member serves neither a version older than the one the origin held when the
//   purge began (stale-read) nor a body whose origin request arrived before the purge began
//   (fetched-before-purge: the fetch began no later than that). A soft purge only marks entries
//   stale: after it, a member serves an old body only as stale (stale-while-revalidate,
//   stale-if-error) or after the origin confirmed it again (soft-not-revalidated).
//   Members the purge listed as missing are held to the same rule only from
//   SIDECACHE_MAX_STALE_DETACHED + SIDECACHE_HEARTBEAT_TTL after it returned (a member cut off
//   from NATS trusts its cache that long at most). Members in neither list (dropped from the
//   view, joining, restarted) must revalidate until they have caught up: the strict rule.
// - availability: a request that fails, or is not answered within SIDECACHE_PEER_TIMEOUT +
//   SIDECACHE_HEADERS_TIMEOUT + 5 s, at a sidecar that was neither paused nor down meanwhile
//   (the origin always answers, so something could always have answered).
// - wrong body: a body naming another key, or another variant of a key that Vary's.
//
// Pure: the history in, the anomalies out (so a saved history can be analysed again). Purges,
// versions and origin responses are indexed by key and time, so each read looks only at the
// purges that could have removed what it got (a 30-minute history holds some 100,000 reads and
// 3,000 purges); analyseAsync hands the event loop back as it goes.
import type { Bump, ClientOp, FaultEvent, OriginResponse, Outage, PurgeOp, ReadOp, WriteOp } from './history.js';
import { keysOfPurge, profile } from './origin.js';

export interface HistoryData {
  /** When the clients started; absent in histories saved before it was recorded. */
  readonly trafficStart?: number;
  readonly ops: readonly ClientOp[];
  readonly origin: readonly OriginResponse[];
  readonly bumps: readonly Bump[];
  readonly faults: readonly FaultEvent[];
  readonly outages: readonly Outage[];
}

export interface Bounds {
  /** After a purge returns, how long a member it listed as missing may still serve what it removed. */
  readonly missingGraceMs: number;
  /** Longest a request may take at a sidecar neither paused nor down. */
  readonly answerWithinMs: number;
}

export const ANOMALY_KINDS = ['stale-read', 'fetched-before-purge', 'soft-not-revalidated', 'wrong-body', 'unavailable'] as const;
export type AnomalyKind = (typeof ANOMALY_KINDS)[number];

export interface Anomaly {
  readonly kind: AnomalyKind;
  readonly op: ReadOp | WriteOp;
  readonly purge?: PurgeOp;
  /** The origin response the served body came from. */
  readonly fetch?: OriginResponse;
  readonly message: string;
  /** What else was going on: the faults and states that may explain it. */
  readonly hints: string[];
}

type Membership = 'acknowledged' | 'missing' | 'not listed';

function membership(p: PurgeOp, member: string): Membership {
  if (p.acknowledged?.includes(member)) return 'acknowledged';
  if (p.missing?.includes(member)) return 'missing';
  return 'not listed';
}

const STALE_SERVE = /stale-while-revalidate|stale-if-error|detail="stale/;

/** The INVAL seq `member` had applied when it answered, from its Cache-Status entry. */
function seqAnswered(cacheStatus: string, member: string): number | undefined {
  for (const part of cacheStatus.split(/,\s*(?=sidecache)/)) {
    if (!part.includes(`node="${member}"`)) continue;
    const m = /;\s*seq=(\d+)/.exec(part);
    return m === null ? undefined : Number(m[1]);
  }
  return undefined;
}

/** Had `member`, in neither list of `purge`, applied it when it answered `op`? Its Cache-Status
 *  names the seq it had applied. That seq counts in the purge's numbering only when no INVAL
 *  reset began between the purge and the read, and the member had learnt the numbering the
 *  purge counts in: it became ready again after the last reset before the purge, or it
 *  acknowledged a purge begun after that reset. Anything less: not known, the strict rule. */
function appliedBeforeAnswer(h: HistoryData, ix: Index, op: ReadOp, purge: PurgeOp, member: string): boolean {
  const seq = seqAnswered(op.cacheStatus ?? '', member);
  if (seq === undefined || purge.seq === undefined || seq < purge.seq) return false;
  const resets = ix.resets;
  if (resets.some((f) => f.start >= purge.start && f.start <= op.end!)) return false;
  const lastReset = Math.max(-Infinity, ...resets.filter((f) => f.start < purge.start).map((f) => f.start));
  if (lastReset === -Infinity) return true;
  const readyAfter = h.outages.some((o) => o.member === member && (o.kind === 'down' || o.kind === 'stopped') && o.end !== undefined && o.end > lastReset && o.end <= op.start);
  const ackedAfter = ix.ackedBy.get(member)?.find(op.start, true, lastReset) !== undefined;
  return readyAfter || ackedAfter;
}

/** The member that chose to serve stale: the one whose Cache-Status entry carries the stale
 *  detail (an owner's, passed on by the member asked), else the member asked. */
function staleServer(cacheStatus: string, asked: string): string {
  for (const part of cacheStatus.split(/,\s*(?=sidecache)/)) {
    if (STALE_SERVE.test(part)) return /node="([^"]+)"/.exec(part)?.[1] ?? asked;
  }
  return asked;
}

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

/** What the analysis looks things up in, built once per history. */
interface Index {
  /** Purges that returned, latest end first (the most recent one a read breaks makes the
   *  smallest slice), for each key they cover (prefixes, tags and all resolved). */
  readonly purgesOf: ReadonlyMap<string, PurgeLine>;
  /** The same, for each member a purge lists as acknowledged. */
  readonly ackedBy: ReadonlyMap<string, PurgeLine>;
  readonly versions: ReadonlyMap<string, VersionLine>;
  readonly originOf: ReadonlyMap<string, OriginLine>;
  /** The origin's 200s and 304s, by key and version: what vouches for a version. */
  readonly vouched: ReadonlyMap<string, ReadonlyMap<number, OriginLine>>;
  readonly resets: readonly FaultEvent[];
}

function indexOf(h: HistoryData): Index {
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
  const good = h.origin.filter((r) => r.version !== undefined && (r.status === 200 || r.status === 304));
  const vouched = new Map([...groupBy(good, (r) => r.key)].map(([k, list]) =>
    [k, new Map([...groupBy(list, (r) => r.version!)].map(([v, rs]) => [v, new OriginLine(rs)]))]));
  return { purgesOf, ackedBy, versions, originOf, vouched, resets: h.faults.filter((f) => f.kind === 'inval-reset') };
}

export function analyse(h: HistoryData, b: Bounds): Anomaly[] {
  const run = analysis(h, b);
  for (;;) {
    const step = run.next();
    if (step.done === true) return step.value;
  }
}

/** analyse, handing the event loop back every few thousand operations: the checker's watchdog
 *  must be able to fire while a long history is read. */
export async function analyseAsync(h: HistoryData, b: Bounds): Promise<Anomaly[]> {
  const run = analysis(h, b);
  for (;;) {
    const step = run.next();
    if (step.done === true) return step.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

const OPS_PER_STEP = 5_000;

/** The analysis; yields every OPS_PER_STEP operations (a point where it may pause). */
function* analysis(h: HistoryData, b: Bounds): Generator<void, Anomaly[]> {
  const anomalies: Anomaly[] = [];
  const ix = indexOf(h);
  const fetches = new Map(h.origin.map((r) => [r.id, r]));
  const versionAt = (key: string, t: number): number => ix.versions.get(key)?.at(t) ?? 1;
  /** Did the origin vouch for `version` of `key` (a 200 carrying it or a 304 confirming it) in [from, to]? */
  const confirmed = (key: string, version: number, from: number, to: number): boolean =>
    ix.vouched.get(key)?.get(version)?.sentWithin(from, to) ?? false;

  // A member that acknowledged a purge which began after another returned has applied that
  // other one too (or flushed everything at an INVAL reset between them): from then on it is
  // held to it as an acknowledging member, whatever that purge listed it as (joining, down).
  const appliedLater = (member: string, purge: PurgeOp, by: number): PurgeOp | undefined =>
    ix.ackedBy.get(member)?.find(by, false, purge.end!);
  const heldAs = (purge: PurgeOp, member: string, by: number): Membership =>
    membership(purge, member) === 'acknowledged' || appliedLater(member, purge, by) !== undefined ? 'acknowledged' : membership(purge, member);

  for (let i = 0; i < h.ops.length; i++) {
    if (i > 0 && i % OPS_PER_STEP === 0) yield;
    const op = h.ops[i]!;
    if (op.type === 'purge' || op.end === undefined) continue;
    const unavailable = availability(op, h.outages, b);
    if (unavailable !== undefined) {
      anomalies.push({ kind: 'unavailable', op, message: unavailable, hints: hintsAround(h, op.member, op.start, op.end) });
      continue;
    }
    if (op.type !== 'read' || op.version === undefined || (op.status !== 200 && op.status !== 304)) continue;
    const p = profile(op.key);
    if (op.bodyKey !== undefined && op.bodyKey !== op.key) {
      anomalies.push({ kind: 'wrong-body', op, message: `asked for ${op.key}, got the body of ${op.bodyKey}`, hints: [] });
      continue;
    }
    if (p?.vary === true && op.bodyLang !== undefined && op.bodyLang !== op.lang) {
      anomalies.push({ kind: 'wrong-body', op, message: `asked for ${op.key} in ${op.lang} (Vary: Accept-Language), got the ${op.bodyLang} variant`, hints: [] });
      continue;
    }
    const covering = ix.purgesOf.get(op.key);
    if (covering === undefined) continue;
    const fetch = op.fetchId === undefined ? undefined : fetches.get(op.fetchId);
    const staleServe = STALE_SERVE.test(op.cacheStatus ?? '');
    // The origin failed this very read and the member answered from its stale copy: what the
    // README allows a member that revalidates every hit (dropped, joining, cut off or behind).
    const staleOnError = /stale-if-error/.test(op.cacheStatus ?? '') &&
      [...(ix.originOf.get(op.key)?.receivedWithin(op.start, op.end) ?? [])].some((r) => (r.status ?? 0) >= 500);
    // Every anomaly below needs a purge that removed a version newer than the one read (one
    // that began once the origin held it) or that began after the fetch behind the body: the
    // purges of the key that returned before the read, from the latest, until none older can be either.
    const newerFrom = ix.versions.get(op.key)?.newerThan(op.version) ?? (1 > op.version ? -Infinity : Infinity);
    const fetchedAt = fetch?.receivedAt ?? Infinity;
    const matters = (start: number): boolean => start >= newerFrom || start > fetchedAt;
    for (let j = covering.endingBefore(op.start, false); j < covering.length && matters(covering.latestStartFrom(j)); j++) {
      const purge = covering.at(j);
      if (!matters(purge.start)) continue;
      const listed = membership(purge, op.member);
      const later = listed === 'acknowledged' ? undefined : appliedLater(op.member, purge, op.start);
      const mship: Membership = later !== undefined ? 'acknowledged' : listed;
      if (mship === 'missing' && op.start < purge.end! + b.missingGraceMs) continue;
      const as = later === undefined ? `${listed} in` : `${listed} in, then acknowledged #${later.id} after,`;
      const removed = versionAt(op.key, purge.start);
      const soft = purge.body.soft === true;
      const acknowledged = mship === 'acknowledged';
      // Only a member that applied a soft purge may serve what it marked as stale; one that
      // did not apply it is in revalidate-every-hit mode, where a stale serve is no revalidation
      // (but for stale-if-error when the origin fails: the README keeps it in that mode).
      // The member that served stale is judged: an owner's stale answer passed on by the member
      // asked (a miss there, forwarded) is the owner's serve.
      const server = staleServer(op.cacheStatus ?? '', op.member);
      const serverHeld = heldAs(purge, server, op.start);
      const exempt = (soft && staleServe && (acknowledged || serverHeld === 'acknowledged' ||
        (serverHeld === 'not listed' && appliedBeforeAnswer(h, ix, op, purge, server)))) ||
        (!acknowledged && staleOnError);
      const before = fetch !== undefined && fetch.receivedAt < purge.start;
      const revalidated = !staleServe && confirmed(op.key, op.version, purge.start, op.end);
      let kind: AnomalyKind | undefined;
      let message = '';
      if (op.version < removed && !exempt) {
        kind = 'stale-read';
        message = `v${op.version} of ${op.key} at ${op.member} (${as} purge #${purge.id}), which began when the origin held v${removed}`;
      } else if (before && !soft && acknowledged) {
        kind = 'fetched-before-purge';
        message = `${op.key} at ${op.member} (${as} purge #${purge.id}) served the body of origin response f=${fetch.id}, requested before the purge began`;
      } else if (before && !exempt && !revalidated) {
        kind = soft ? 'soft-not-revalidated' : 'fetched-before-purge';
        message = `${op.key} at ${op.member} (${as} ${soft ? 'soft ' : ''}purge #${purge.id}) served the body of origin response f=${fetch!.id}, ` +
          `requested before the purge began, ${staleServe ? 'as stale' : 'as fresh'}; the origin has not confirmed v${op.version} since the purge began`;
      }
      if (kind !== undefined) {
        anomalies.push({ kind, op, purge, ...(fetch !== undefined ? { fetch } : {}), message, hints: purgeHints(h, ix, op, purge, fetch, mship) });
        break;
      }
    }
  }
  return anomalies;
}

/** Why a request counts as failed or unanswered, or undefined when it does not. */
function availability(op: ReadOp | WriteOp, outages: readonly Outage[], b: Bounds): string | undefined {
  const took = op.end! - op.start;
  let problem: string | undefined;
  if (op.error !== undefined) problem = `failed after ${took.toFixed(0)} ms: ${op.error}`;
  else if (took > b.answerWithinMs) problem = `answered after ${took.toFixed(0)} ms (bound ${b.answerWithinMs} ms)`;
  else if (op.status !== undefined && !op.fromOrigin && ![200, 204, 206, 304].includes(op.status)) problem = `${op.status} from the sidecar, not from the origin`;
  if (problem === undefined) return undefined;
  // Excused while the sidecar asked could not answer: paused, or down (killed, restarting, joining).
  const to = op.end!;
  const excused = outages.some((o) => o.member === op.member && o.start <= to && (o.end ?? Infinity) >= op.start);
  return excused ? undefined : problem;
}

function overlaps(f: { start: number; end?: number }, from: number, to: number): boolean {
  return f.start <= to && (f.end ?? Infinity) >= from;
}

function purgeHints(h: HistoryData, ix: Index, op: ReadOp, purge: PurgeOp, fetch: OriginResponse | undefined, mship: Membership): string[] {
  const hints: string[] = [];
  if (STALE_SERVE.test(op.cacheStatus ?? '')) hints.push('served as stale (stale-while-revalidate or stale-if-error)');
  if (/hot/.test(op.cacheStatus ?? '')) hints.push('served from the hot set (a copy a non-owner keeps)');
  if (/replica/.test(op.cacheStatus ?? '')) hints.push('served from a replica (a copy stored from FILLS)');
  if (/fwd=stale; fwd-status=304/.test(op.cacheStatus ?? '')) {
    const during = [...(ix.originOf.get(op.key)?.receivedWithin(op.start, op.end!) ?? [])];
    if (during.some((r) => (r.status ?? 0) >= 500) && !during.some((r) => r.status === 304)) {
      hints.push('shown as revalidated (304), but the origin answered 5xx meanwhile: a stale-if-error copy passed on as a 304?');
    } else {
      hints.push('revalidated (304): the version may be current, but the entry outlived the purge');
    }
  }
  if (mship === 'not listed') hints.push(`${op.member} was in neither list of the purge (not an active member of its view)`);
  const from = fetch?.receivedAt ?? purge.start - 10_000;
  for (const f of h.faults) {
    if (f.kind === 'lag' && overlaps(f, purge.start, purge.end!)) hints.push(`${f.target}'s NATS link lagged during the purge (fault #${f.id})`);
    if (f.kind === 'inval-reset' && f.start >= from && f.start <= op.start) hints.push(`the INVAL stream was reset between the fetch and the read (fault #${f.id})`);
    else if (f.kind === 'inval-reset' && f.start < purge.start) {
      hints.push(`the INVAL stream was reset before the purge (fault #${f.id} at +${(f.start / 1000).toFixed(1)} s): the purge's seq ${purge.seq} counts from the new stream`);
    }
  }
  for (const o of h.outages) {
    if (o.member !== op.member || !overlaps(o, from, op.start)) continue;
    if (o.kind === 'paused') hints.push(`${op.member} was paused ${(((o.end ?? op.start) - o.start) / 1000).toFixed(1)} s between the fetch and the read`);
    else if (o.kind === 'stopped') hints.push(`${op.member} was stopped (SIGTERM) and started again (joined again) between the fetch and the read`);
    else hints.push(`${op.member} was restarted (joined again) between the fetch and the read`);
  }
  return [...new Set(hints)];
}

function hintsAround(h: HistoryData, member: string, from: number, to: number): string[] {
  const hints = h.faults.filter((f) => overlaps(f, from - 2000, to)).map((f) => `fault #${f.id} ${f.kind} ${f.target}: ${f.note}`);
  for (const o of h.outages) if (o.member !== member && overlaps(o, from, to)) hints.push(`${o.member} ${o.kind} meanwhile`);
  return hints;
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
