// The promises a history is judged by, one client operation at a time, with the hints that go
// with each verdict:
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
// What a verdict needs from the rest of the history (the purges before a read, the origin's
// versions and answers) it asks a Lookups for: analyse.ts answers from indexes, the unit tests'
// reference by scanning everything, so that the two can differ only in what they look up.
import type { Bump, ClientOp, FaultEvent, OriginResponse, Outage, PurgeOp, ReadOp, WriteOp } from './history.js';
import { profile } from './origin.js';

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

/** A read that returned a version: one judged against the purges before it. */
export type JudgedRead = ReadOp & { readonly end: number; readonly version: number };

/** What judging a history looks up in it. */
export interface Lookups {
  /** The purges that returned 200 with a seq before `op` began and cover its key, latest end
   *  first (the most recent one a read breaks makes the smallest slice). May leave out those
   *  that no verdict can come from: ones that began before the origin held a version newer
   *  than the one read and no later than `fetch` (the origin response behind the body) was received. */
  purgesBefore(op: JudgedRead, fetch: OriginResponse | undefined): Iterable<PurgeOp>;
  /** The first of those purges, latest end first, that `member` acknowledged, that returned
   *  before `by` (or at it, when `orAt`) and began after `after`; any key. */
  acknowledged(member: string, by: number, orAt: boolean, after: number): PurgeOp | undefined;
  /** The version of `key` the origin held at `t` (1 before any bump). */
  versionAt(key: string, t: number): number;
  /** Did the origin vouch for `version` of `key` (a 200 carrying it or a 304 confirming it),
   *  received at or after `from` and answered by `to`? */
  confirmed(key: string, version: number, from: number, to: number): boolean;
  /** The origin's responses for `key` received within [from, to], in any order. */
  receivedWithin(key: string, from: number, to: number): Iterable<OriginResponse>;
}

/** Judges a whole history at once. */
export function judge(h: HistoryData, b: Bounds, look: Lookups): Anomaly[] {
  const run = judging(h, b, look);
  for (;;) {
    const step = run.next();
    if (step.done === true) return step.value;
  }
}

const OPS_PER_STEP = 5_000;

/** Judges each client operation in turn; yields every OPS_PER_STEP operations (a point where it may pause). */
export function* judging(h: HistoryData, b: Bounds, look: Lookups): Generator<void, Anomaly[]> {
  const cx: Context = { h, b, look, fetches: new Map(h.origin.map((r) => [r.id, r])), resets: h.faults.filter((f) => f.kind === 'inval-reset') };
  const anomalies: Anomaly[] = [];
  for (let i = 0; i < h.ops.length; i++) {
    if (i > 0 && i % OPS_PER_STEP === 0) yield;
    const anomaly = verdictOn(cx, h.ops[i]!);
    if (anomaly !== undefined) anomalies.push(anomaly);
  }
  return anomalies;
}

interface Context {
  readonly h: HistoryData;
  readonly b: Bounds;
  readonly look: Lookups;
  readonly fetches: ReadonlyMap<number, OriginResponse>;
  readonly resets: readonly FaultEvent[];
}

type Membership = 'acknowledged' | 'missing' | 'not listed';

function membership(p: PurgeOp, member: string): Membership {
  if (p.acknowledged?.includes(member)) return 'acknowledged';
  if (p.missing?.includes(member)) return 'missing';
  return 'not listed';
}

const STALE_SERVE = /stale-while-revalidate|stale-if-error|detail="stale/;

function isJudged(op: ReadOp): op is JudgedRead {
  return op.end !== undefined && op.version !== undefined;
}

function verdictOn(cx: Context, op: ClientOp): Anomaly | undefined {
  if (op.type === 'purge' || op.end === undefined) return undefined;
  const unavailable = availability(op, cx.h.outages, cx.b);
  if (unavailable !== undefined) return { kind: 'unavailable', op, message: unavailable, hints: hintsAround(cx.h, op.member, op.start, op.end) };
  if (op.type !== 'read' || !isJudged(op) || (op.status !== 200 && op.status !== 304)) return undefined;
  if (op.bodyKey !== undefined && op.bodyKey !== op.key) {
    return { kind: 'wrong-body', op, message: `asked for ${op.key}, got the body of ${op.bodyKey}`, hints: [] };
  }
  if (profile(op.key)?.vary === true && op.bodyLang !== undefined && op.bodyLang !== op.lang) {
    return { kind: 'wrong-body', op, message: `asked for ${op.key} in ${op.lang} (Vary: Accept-Language), got the ${op.bodyLang} variant`, hints: [] };
  }
  const fetch = op.fetchId === undefined ? undefined : cx.fetches.get(op.fetchId);
  const staleServe = STALE_SERVE.test(op.cacheStatus ?? '');
  // The origin failed this very read and the member answered from its stale copy: what the
  // README allows a member that revalidates every hit (dropped, joining, cut off or behind).
  const staleOnError = /stale-if-error/.test(op.cacheStatus ?? '') &&
    [...cx.look.receivedWithin(op.key, op.start, op.end)].some((r) => (r.status ?? 0) >= 500);
  const read: Served = { op, fetch, staleServe, staleOnError };
  for (const purge of cx.look.purgesBefore(op, fetch)) {
    const anomaly = purgeVerdict(cx, read, purge);
    if (anomaly !== undefined) return anomaly;
  }
  return undefined;
}

/** A read to judge against the purges before it, with what it served. */
interface Served {
  readonly op: JudgedRead;
  readonly fetch: OriginResponse | undefined;
  readonly staleServe: boolean;
  readonly staleOnError: boolean;
}

// A member that acknowledged a purge which began after another returned has applied that
// other one too (or flushed everything at an INVAL reset between them): from then on it is
// held to it as an acknowledging member, whatever that purge listed it as (joining, down).
function appliedLater(cx: Context, member: string, purge: PurgeOp, by: number): PurgeOp | undefined {
  return cx.look.acknowledged(member, by, false, purge.end!);
}

function heldAs(cx: Context, purge: PurgeOp, member: string, by: number): Membership {
  return membership(purge, member) === 'acknowledged' || appliedLater(cx, member, purge, by) !== undefined ? 'acknowledged' : membership(purge, member);
}

/** Did `read` break `purge`? The anomaly, or undefined. */
function purgeVerdict(cx: Context, read: Served, purge: PurgeOp): Anomaly | undefined {
  const { op, fetch, staleServe, staleOnError } = read;
  const listed = membership(purge, op.member);
  const later = listed === 'acknowledged' ? undefined : appliedLater(cx, op.member, purge, op.start);
  const mship: Membership = later !== undefined ? 'acknowledged' : listed;
  if (mship === 'missing' && op.start < purge.end! + cx.b.missingGraceMs) return undefined;
  const as = later === undefined ? `${listed} in` : `${listed} in, then acknowledged #${later.id} after,`;
  const removed = cx.look.versionAt(op.key, purge.start);
  const soft = purge.body.soft === true;
  const acknowledged = mship === 'acknowledged';
  // Only a member that applied a soft purge may serve what it marked as stale; one that
  // did not apply it is in revalidate-every-hit mode, where a stale serve is no revalidation
  // (but for stale-if-error when the origin fails: the README keeps it in that mode).
  // The member that served stale is judged: an owner's stale answer passed on by the member
  // asked (a miss there, forwarded) is the owner's serve.
  const server = staleServer(op.cacheStatus ?? '', op.member);
  const serverHeld = heldAs(cx, purge, server, op.start);
  const exempt = (soft && staleServe && (acknowledged || serverHeld === 'acknowledged' ||
    (serverHeld === 'not listed' && appliedBeforeAnswer(cx, op, purge, server)))) ||
    (!acknowledged && staleOnError);
  const before = fetch !== undefined && fetch.receivedAt < purge.start;
  const revalidated = !staleServe && cx.look.confirmed(op.key, op.version, purge.start, op.end);
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
    message = `${op.key} at ${op.member} (${as} ${soft ? 'soft ' : ''}purge #${purge.id}) served the body of origin response f=${fetch.id}, ` +
      `requested before the purge began, ${staleServe ? 'as stale' : 'as fresh'}; the origin has not confirmed v${op.version} since the purge began`;
  }
  if (kind === undefined) return undefined;
  return { kind, op, purge, ...(fetch !== undefined ? { fetch } : {}), message, hints: purgeHints(cx, op, purge, fetch, mship) };
}

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
function appliedBeforeAnswer(cx: Context, op: JudgedRead, purge: PurgeOp, member: string): boolean {
  const seq = seqAnswered(op.cacheStatus ?? '', member);
  if (seq === undefined || purge.seq === undefined || seq < purge.seq) return false;
  if (cx.resets.some((f) => f.start >= purge.start && f.start <= op.end)) return false;
  const lastReset = Math.max(-Infinity, ...cx.resets.filter((f) => f.start < purge.start).map((f) => f.start));
  if (lastReset === -Infinity) return true;
  const readyAfter = cx.h.outages.some((o) => o.member === member && (o.kind === 'down' || o.kind === 'stopped') && o.end !== undefined && o.end > lastReset && o.end <= op.start);
  return readyAfter || cx.look.acknowledged(member, op.start, true, lastReset) !== undefined;
}

/** The member that chose to serve stale: the one whose Cache-Status entry carries the stale
 *  detail (an owner's, passed on by the member asked), else the member asked. */
function staleServer(cacheStatus: string, asked: string): string {
  for (const part of cacheStatus.split(/,\s*(?=sidecache)/)) {
    if (STALE_SERVE.test(part)) return /node="([^"]+)"/.exec(part)?.[1] ?? asked;
  }
  return asked;
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

export function overlaps(f: { start: number; end?: number }, from: number, to: number): boolean {
  return f.start <= to && (f.end ?? Infinity) >= from;
}

function purgeHints(cx: Context, op: JudgedRead, purge: PurgeOp, fetch: OriginResponse | undefined, mship: Membership): string[] {
  const h = cx.h;
  const hints: string[] = [];
  if (STALE_SERVE.test(op.cacheStatus ?? '')) hints.push('served as stale (stale-while-revalidate or stale-if-error)');
  if (/hot/.test(op.cacheStatus ?? '')) hints.push('served from the hot set (a copy a non-owner keeps)');
  if (/replica/.test(op.cacheStatus ?? '')) hints.push('served from a replica (a copy stored from FILLS)');
  if (/fwd=stale; fwd-status=304/.test(op.cacheStatus ?? '')) {
    const during = [...cx.look.receivedWithin(op.key, op.start, op.end)];
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
