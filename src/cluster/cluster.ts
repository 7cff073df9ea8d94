// The cluster seam: what the rest of a sidecar asks of "the other sidecars". A ring member
// (ClusterNode) routes misses to owners and replicates what it stores; a single node
// (SingleNode: no NATS, or the embedded log) answers "here" and keeps everything to itself.
// The composition root picks one from configuration; nothing else asks which it is.
import type { View } from '../core/types.js';
import type { FillRecord } from '../log/types.js';
import { NoPeers, type Router } from '../proxy/route.js';
import type { Entry } from '../store/types.js';
import { HashPlacement, type OwnerTable, type Placement } from './placement.js';

export interface Cluster extends Router {
  /** True for a ring member: drain and the peer listener mean something. */
  readonly ring: boolean;
  /** Owners of every partition at the current epoch; undefined without a ring. */
  readonly table: OwnerTable | undefined;
  readonly partitionsOwned: number;
  /** The partition of a primary key (the placement's; a hash for a single node, as inspect shows it). */
  partitionOf(key: string): number;
  /** Entries stored from handoff replays since start. */
  readonly replayedKeys: number;
  /** This sidecar stored an entry it fetched itself: replicate it to the key's owners. */
  replicate(entry: Entry): void;
  /** An invalidation removed an entry here: take it out of the replicated state too. */
  removed(entry: Entry): void;
  /** A fill from the log: stored when this member owns (or is warming) its partition. */
  applyFill(record: FillRecord, seq: number, replay: boolean): boolean;
  /** The membership view changed. */
  onView(view: View): void;
  /** Become a serving member (handoff before cutover). */
  join(): Promise<void>;
  /** Out of placement; still serving by forwarding. */
  drain(): Promise<void>;
  leave(): Promise<void>;
}

/** One sidecar on its own: every miss is fetched here, nothing is replicated. */
export class SingleNode implements Cluster {
  readonly ring = false;
  readonly table = undefined;
  readonly replayedKeys = 0;
  readonly epoch = 0;
  /** Every partition: a single node owns the whole key space. */
  readonly partitionsOwned: number;
  /** Partitions are only reported here (inspect), as a ring member with the default placement would. */
  readonly #placement: Placement;

  constructor(partitions: number) {
    this.partitionsOwned = partitions;
    this.#placement = new HashPlacement(partitions, 1);
  }

  partitionOf(key: string): number {
    return this.#placement.partitionOf(key);
  }

  peersFor(key: string): readonly string[] | undefined {
    return NoPeers.peersFor(key);
  }

  forward(...args: Parameters<Router['forward']>): ReturnType<Router['forward']> {
    return NoPeers.forward(...args);
  }

  replicate(_entry: Entry): void {}
  removed(_entry: Entry): void {}
  applyFill(_record: FillRecord, _seq: number, _replay: boolean): boolean {
    return false;
  }
  onView(_view: View): void {}
  async join(): Promise<void> {}
  async drain(): Promise<void> {
    throw new Error('standalone: there is no ring to leave');
  }
  async leave(): Promise<void> {}
}
