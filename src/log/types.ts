// The log seam: what the cache needs from the replicated log (INVAL, FILLS) and from
// membership. MemoryLog (standalone) and the JetStream implementation both satisfy it.

import type { Fence, Invalidation, MemberState, PurgeAcks, View } from '../core/types.js';

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

export interface LogHandlers {
  /** Called once per INVAL message, in strictly increasing seq order, synchronously
   *  applied by the cache before the log counts `seq` as applied. Also called for the
   *  sidecar's own invalidations. */
  invalidation(seq: number, inval: Invalidation): void;
  /** A fill (or tombstone) from FILLS. May arrive more than once and in any order
   *  relative to INVAL; the cache applies it idempotently. `seq` is the FILLS seq; `replay`:
   *  it comes from replayFills (handoff), not from the live consumer. */
  fill(record: FillRecord, seq: number, replay: boolean): void;
  /** Called once at start, before any invalidation: the log delivers the invalidations after
   *  `seq` and no earlier ones, so a fill whose fence is below `seq` cannot be checked against
   *  what it missed and must not be trusted (DESIGN invariant 2). */
  horizon(seq: number): void;
  /** The INVAL messages after appliedSeq are no longer in the stream (or the stream was
   *  reset): the cache must flush what it cannot prove fresh. `appliedSeq` then jumps to
   *  toSeq; after a stream reset the numbering restarts, so toSeq < fromSeq and later
   *  invalidations (and fences) count from the new stream's first seq. */
  gap(reason: string, fromSeq: number, toSeq: number): void;
  /** The view changed (new epoch). */
  view(view: View): void;
  /** Connection to the log lost (false) or regained (true). */
  attached(attached: boolean): void;
}

export interface ClusterLog {
  /** Connect, check the server, create or verify streams and buckets, start consuming
   *  INVAL from appliedSeq+1 and FILLS from now. Throws SidecacheError(SC_ERR_LOG). */
  start(handlers: LogHandlers): Promise<void>;
  /** Last INVAL seq applied by this sidecar. */
  readonly appliedSeq: number;
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
  /** Fire-and-forget, bounded: may drop under pressure (counted), never awaits. */
  publishFill(record: FillRecord): void;
  /** Replays the last fill of every subject in these partitions through handlers.fill;
   *  resolves with the number of records replayed. */
  replayFills(partitions: ReadonlySet<number>): Promise<number>;
  /** The current view. */
  readonly view: View;
  /** Register or update this sidecar in the view (compare-and-set; epoch+1 on change). */
  setState(state: MemberState): Promise<void>;
  /** Remove this sidecar from the view and stop heartbeats. */
  leave(): Promise<void>;
  /** True while peers may have dropped this member (its heartbeats lapsed), or did (a view
   *  without it), until it is listed again and has caught up: nothing may be served as fresh. */
  mustRevalidate(): boolean;
  /** For how long (ms) this sidecar has known that the log holds invalidations it has not
   *  applied; 0 when it knows of none. Past SIDECACHE_MAX_STALE_DETACHED nothing is served
   *  as fresh, as when NATS is unreachable: its deliveries may have stalled. */
  behindMs(): number;
  close(): Promise<void>;
}
