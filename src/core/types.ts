// The shared words of sidecache (DESIGN: invalidation, fence, member, view), used by every
// layer: the log carries them, the store and the proxy apply them, membership agrees on them.

/** An invalidation as it travels on INVAL. `key` and `prefix` are primary cache keys
 *  (see proxy/key.ts), so every sidecar matches them the same way. */
export type Invalidation =
  | { readonly kind: 'url'; readonly keys: readonly string[]; readonly soft?: boolean }
  | { readonly kind: 'prefix'; readonly prefix: string; readonly soft?: boolean }
  | { readonly kind: 'tags'; readonly tags: readonly string[]; readonly soft?: boolean }
  | { readonly kind: 'all'; readonly soft?: boolean };

export type InvalidationKind = Invalidation['kind'];

/** Where a response's content stands in the log: the INVAL seq its source had applied when
 *  it was fetched (DESIGN: fence), in the numbering of INVAL incarnation `incarnation`. Seqs
 *  restart when the stream is deleted and recreated, so a seq means nothing without it. */
export interface Fence {
  readonly incarnation: string;
  readonly seq: number;
}

export const MemberState = {
  joining: 'joining',
  warming: 'warming',
  active: 'active',
  draining: 'draining',
} as const;
export type MemberState = (typeof MemberState)[keyof typeof MemberState];

export interface Member {
  readonly id: string;
  /** Where peers reach this sidecar's peer listener, e.g. http://127.0.0.1:7001 */
  readonly peerUrl: string;
  readonly state: MemberState;
  /** Partition count the member runs with; a member with another value may not join. */
  readonly partitions: number;
  /** How it maps keys to partitions (SIDECACHE_PLACEMENT); absent: hash, as every member
   *  before placements could be chosen. A member with another placement may not join. */
  readonly placement?: 'range';
}

/** The agreed membership view. Equal epochs mean equal member lists on every sidecar. */
export interface View {
  readonly epoch: number;
  readonly members: readonly Member[];
}

export interface PurgeAcks {
  readonly acknowledged: readonly string[];
  readonly missing: readonly string[];
}

/** Where a sidecar stands in the log, as the request path sees it: the fence its fetches start
 *  from (incarnation, appliedSeq) and the view its answers name. The log implements it. */
export interface LogPosition {
  readonly incarnation: string;
  readonly appliedSeq: number;
  readonly view: View;
}
