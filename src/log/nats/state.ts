// Where this sidecar stands in INVAL: written by the consumer and the stream checks
// (invalidations.ts, stream-check.ts), read by acknowledgements, heartbeats and the lease.

import { Backlog } from '../backlog.js';

/** Our own invalidations our consumer applied before their publish returned: a few hundred
 *  is more than the publishes one sidecar has in flight. */
const OWN_APPLIED_MAX = 1024;

export class LogState {
  /** Last INVAL seq applied here. */
  appliedSeq = 0;
  /** Incarnation of the INVAL stream our seqs belong to (see codec.ts, incarnationOf). */
  incarnation = '';
  /** Nats-Msg-Id of the message at appliedSeq, to recognise the stream (stream-check.ts). */
  appliedMsgId: string | undefined;
  /** The highest INVAL seq we published in the current stream (0 after a reset). With our
   *  applied seq it bounds what any member can truly have applied: see knownLastSeq. */
  publishedSeq = 0;
  /** Resets of the INVAL stream seen (seqs restarted): a catchUp target of the old numbering is void. */
  resets = 0;
  /** Invalidations we know the stream holds and have not applied, and since when. */
  readonly backlog = new Backlog();
  /** Nats-Msg-Id -> seq of our own invalidations as our consumer applied them: a publish
   *  acknowledged after they were applied (and later ones) is no seq numbered twice. */
  readonly ownApplied = new Map<string, number>();

  noteOwnApplied(msgId: string, seq: number): void {
    this.ownApplied.set(msgId, seq);
    if (this.ownApplied.size > OWN_APPLIED_MAX) this.ownApplied.delete(this.ownApplied.keys().next().value!);
  }

  /** No member can have applied more of the current stream than exists in it: an ack above
   *  what we applied or published is counted in the numbering of a stream that was reset
   *  (an operator recreated INVAL from a copy of its configuration, so the id is the same)
   *  and proves nothing until that member has noticed the reset. A true ack above it (a
   *  peer applied another member's publish before we did) counts once we have applied it. */
  knownLastSeq(): number {
    return Math.max(this.appliedSeq, this.publishedSeq);
  }

  /** The highest seq of the current stream we know it holds: applied, published by us, or
   *  learnt from the stream itself (the backlog). What a member's lag counts from. */
  knownStreamSeq(): number {
    return Math.max(this.appliedSeq, this.publishedSeq, this.backlog.lastSeq);
  }
}
