// The checker's analysis as first written (check/analyse.ts before it was indexed): every read
// against every purge, every origin response scanned for each. Quadratic, so only for small
// histories: the oracle analyse-equivalence.test.ts holds the indexed analysis to.
import type { Anomaly, AnomalyKind, Bounds, HistoryData } from '../../../check/analyse.js';
import type { Bump, OriginResponse, Outage, PurgeOp, ReadOp, WriteOp } from '../../../check/history.js';
import { keysOfPurge, profile } from '../../../check/origin.js';

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
function appliedBeforeAnswer(h: HistoryData, purges: readonly PurgeOp[], op: ReadOp, purge: PurgeOp, member: string): boolean {
  const seq = seqAnswered(op.cacheStatus ?? '', member);
  if (seq === undefined || purge.seq === undefined || seq < purge.seq) return false;
  const resets = h.faults.filter((f) => f.kind === 'inval-reset');
  if (resets.some((f) => f.start >= purge.start && f.start <= op.end!)) return false;
  const lastReset = Math.max(-Infinity, ...resets.filter((f) => f.start < purge.start).map((f) => f.start));
  if (lastReset === -Infinity) return true;
  const readyAfter = h.outages.some((o) => o.member === member && (o.kind === 'down' || o.kind === 'stopped') && o.end !== undefined && o.end > lastReset && o.end <= op.start);
  const ackedAfter = purges.some((p) => p.start > lastReset && p.end! <= op.start && (p.acknowledged?.includes(member) ?? false));
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

export function analyseReference(h: HistoryData, b: Bounds): Anomaly[] {
  const anomalies: Anomaly[] = [];
  const fetches = new Map(h.origin.map((r) => [r.id, r]));
  const bumpsByKey = new Map<string, Bump[]>();
  for (const x of h.bumps) {
    const list = bumpsByKey.get(x.key) ?? [];
    list.push(x);
    bumpsByKey.set(x.key, list);
  }
  const versionAt = (key: string, t: number): number => {
    let v = 1;
    for (const x of bumpsByKey.get(key) ?? []) if (x.at <= t) v = Math.max(v, x.version);
    return v;
  };
  // The version each purge removed, per key: asked for every read it covers, computed once.
  const removedCache = new Map<string, number>();
  const removedBy = (p: PurgeOp, key: string): number => {
    const k = `${p.id} ${key}`;
    let v = removedCache.get(k);
    if (v === undefined) removedCache.set(k, (v = versionAt(key, p.start)));
    return v;
  };
  /** Did the origin vouch for `version` of `key` (a 200 carrying it or a 304 confirming it) in [from, to]? */
  const confirmed = (key: string, version: number, from: number, to: number): boolean =>
    h.origin.some((r) => r.key === key && r.version === version && (r.status === 200 || r.status === 304) &&
      r.receivedAt >= from && r.sentAt !== undefined && r.sentAt <= to);

  // Purges that returned, latest first: the most recent one a read breaks makes the smallest slice.
  const purges = h.ops.filter((o): o is PurgeOp => o.type === 'purge' && o.status === 200 && o.end !== undefined && o.seq !== undefined)
    .sort((x, y) => y.end! - x.end!);
  const purgeKeys = new Map(purges.map((p) => [p.id, new Set(keysOfPurge(p.body as Parameters<typeof keysOfPurge>[0]))]));
  // A member that acknowledged a purge which began after another returned has applied that
  // other one too (or flushed everything at an INVAL reset between them): from then on it is
  // held to it as an acknowledging member, whatever that purge listed it as (joining, down).
  const ackedBy = new Map<string, PurgeOp[]>();
  for (const p of purges) for (const m of p.acknowledged ?? []) ackedBy.set(m, [...(ackedBy.get(m) ?? []), p]);
  const appliedLater = (member: string, purge: PurgeOp, by: number): PurgeOp | undefined =>
    ackedBy.get(member)?.find((q) => q.start > purge.end! && q.end! < by);
  const heldAs = (purge: PurgeOp, member: string, by: number): Membership =>
    membership(purge, member) === 'acknowledged' || appliedLater(member, purge, by) !== undefined ? 'acknowledged' : membership(purge, member);

  for (const op of h.ops) {
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
    const fetch = op.fetchId === undefined ? undefined : fetches.get(op.fetchId);
    const staleServe = STALE_SERVE.test(op.cacheStatus ?? '');
    // The origin failed this very read and the member answered from its stale copy: what the
    // README allows a member that revalidates every hit (dropped, joining, cut off or behind).
    const staleOnError = /stale-if-error/.test(op.cacheStatus ?? '') &&
      h.origin.some((r) => r.key === op.key && r.receivedAt >= op.start && r.receivedAt <= op.end! && (r.status ?? 0) >= 500);
    for (const purge of purges) {
      if (purge.end! >= op.start || !purgeKeys.get(purge.id)!.has(op.key)) continue;
      const listed = membership(purge, op.member);
      const later = listed === 'acknowledged' ? undefined : appliedLater(op.member, purge, op.start);
      const mship: Membership = later !== undefined ? 'acknowledged' : listed;
      if (mship === 'missing' && op.start < purge.end! + b.missingGraceMs) continue;
      const as = later === undefined ? `${listed} in` : `${listed} in, then acknowledged #${later.id} after,`;
      const removed = removedBy(purge, op.key);
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
        (serverHeld === 'not listed' && appliedBeforeAnswer(h, purges, op, purge, server)))) ||
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
        anomalies.push({ kind, op, purge, ...(fetch !== undefined ? { fetch } : {}), message, hints: purgeHints(h, op, purge, fetch, mship) });
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

function purgeHints(h: HistoryData, op: ReadOp, purge: PurgeOp, fetch: OriginResponse | undefined, mship: Membership): string[] {
  const hints: string[] = [];
  if (STALE_SERVE.test(op.cacheStatus ?? '')) hints.push('served as stale (stale-while-revalidate or stale-if-error)');
  if (/hot/.test(op.cacheStatus ?? '')) hints.push('served from the hot set (a copy a non-owner keeps)');
  if (/replica/.test(op.cacheStatus ?? '')) hints.push('served from a replica (a copy stored from FILLS)');
  if (/fwd=stale; fwd-status=304/.test(op.cacheStatus ?? '')) {
    const during = h.origin.filter((r) => r.key === op.key && r.receivedAt >= op.start && r.receivedAt <= op.end!);
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
