// The log seams, one job each: the invalidation log (INVAL: append, apply in order, acknowledge),
// the fill log (FILLS: replicate and replay entries) and membership (the agreed view). MemoryLog
// (standalone) is an invalidation log only; NatsLog (JetStream) is all three.

import type { Invalidation, MemberState, PurgeAcks, View } from '../core/types.js';

/** One replicable cache entry on FILLS. The log does not look inside `meta` or `body`:
 *  it only routes by partition and compacts by subjectKey. */
export interface FillRecord {
  readonly partition: number;
  /** Stable hash of key + variant (hex); one subject per variant, MaxMsgsPerSubject=1. */
  readonly subjectKey: string;
  /** JSON-encoded entry metadata (status, headers, policy, fence, times, tags). */
  readonly meta: Uint8Array;
  readonly body: Uint8Array;
  /** A tombstone removes the variant from the compacted log; meta/body are empty. */
  readonly tombstone?: boolean;
}

/** What an invalidation log calls back. */
export interface InvalidationHandlers {
  /** Called once per INVAL message, in strictly increasing seq order, synchronously
   *  applied by the cache before the log counts `seq` as applied. Also called for the
   *  sidecar's own invalidations. */
  invalidation(seq: number, inval: Invalidation): void;
  /** Called once at start, before any invalidation: the log delivers the invalidations after
   *  `seq` and no earlier ones, so a fill whose fence is below `seq` cannot be checked against
   *  what it missed and must not be trusted (DESIGN invariant 2). */
  horizon(seq: number): void;
  /** The INVAL messages after appliedSeq are no longer in the stream (or the stream was
   *  reset): the cache must flush what it cannot prove fresh. `appliedSeq` then jumps to
   *  toSeq; after a stream reset the numbering restarts, so toSeq < fromSeq and later
   *  invalidations (and fences) count from the new stream's first seq. */
  gap(reason: string, fromSeq: number, toSeq: number): void;
  /** Connection to the log lost (false) or regained (true). */
  attached(attached: boolean): void;
}

/** What a fill log calls back. */
export interface FillHandlers {
  /** A fill (or tombstone) from FILLS. May arrive more than once and in any order
   *  relative to INVAL; the cache applies it idempotently. `seq` is the FILLS seq; `replay`:
   *  it comes from replayFills (handoff), not from the live consumer. */
  fill(record: FillRecord, seq: number, replay: boolean): void;
}

/** What membership calls back. */
export interface MembershipHandlers {
  /** The view changed (new epoch). */
  view(view: View): void;
}

/** Every handler of a log that is all three (NatsLog). The fill and view handlers may be left
 *  out by a caller that uses it as an invalidation log only (the contract test). */
export type LogHandlers = InvalidationHandlers & Partial<FillHandlers & MembershipHandlers>;

/** INVAL: append invalidations, apply every one in order, and know who applied what. */
export interface InvalidationLog {
  /** Connect, check the server, create or verify streams, start consuming INVAL from
   *  appliedSeq+1. Throws SidecacheError(SC_ERR_LOG). */
  start(handlers: InvalidationHandlers): Promise<void>;
  /** Last INVAL seq applied by this sidecar. */
  readonly appliedSeq: number;
  /** The highest INVAL seq this sidecar knows the log holds (>= appliedSeq): how far behind
   *  it is, as far as it can tell (sidecache status shows the lag). */
  readonly knownSeq: number;
  /** Incarnation of the INVAL stream appliedSeq counts in (see codec.ts); fences of another
   *  incarnation cannot be checked against the invalidations applied here. */
  readonly incarnation: string;
  readonly attached: boolean;
  /** Append an invalidation; resolves with its seq once the log stored it. Rejects with
   *  SC_ERR_LOG when the log is unreachable. */
  invalidate(inval: Invalidation): Promise<number>;
  /** Reads the log's last INVAL seq and resolves with it once this sidecar has applied it
   *  (or a reset of the log made it meaningless). A joining member awaits it before it
   *  replays and serves fills: they are checked against every retained invalidation. */
  catchUp(): Promise<number>;
  /** Resolves once every active or warming member (and this sidecar) has applied `seq`,
   *  or when timeoutMs passes. */
  waitApplied(seq: number, timeoutMs: number): Promise<PurgeAcks>;
  /** For how long (ms) this sidecar has known that the log holds invalidations it has not
   *  applied; 0 when it knows of none. Past SIDECACHE_MAX_STALE_DETACHED nothing is served
   *  as fresh, as when NATS is unreachable: its deliveries may have stalled. */
  behindMs(): number;
  close(): Promise<void>;
}

/** FILLS: replicate stored entries to the members that hold their partitions. */
export interface FillLog {
  /** Fire-and-forget, bounded: may drop under pressure (counted), never awaits. */
  publishFill(record: FillRecord): void;
  /** Replays the last fill of every subject in these partitions through handlers.fill;
   *  resolves with the number of records replayed. */
  replayFills(partitions: ReadonlySet<number>): Promise<number>;
}

/** The agreed view of the members, and this sidecar's place in it. */
export interface Membership {
  /** The current view. */
  readonly view: View;
  /** Register or update this sidecar in the view (compare-and-set; epoch+1 on change). */
  setState(state: MemberState): Promise<void>;
  /** Remove this sidecar from the view and stop heartbeats. */
  leave(): Promise<void>;
  /** True while peers may have dropped this member (its heartbeats lapsed), or did (a view
   *  without it), until it is listed again and has caught up: nothing may be served as fresh. */
  mustRevalidate(): boolean;
}
