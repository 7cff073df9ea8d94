// A standalone sidecar's log and membership: the in-process invalidation log (memory-log.ts) and
// a view of one member, itself, always active. No peers route by the view, wait for our purges
// or could drop us, so there is nothing to agree on and nothing to revalidate for.
import { MemoryLog } from './memory-log.js';
import type { InvalidationHandlers, InvalidationLog, Membership } from './types.js';
import type { Invalidation, MemberState, PurgeAcks, View } from '../core/types.js';

class SoloMembership implements Membership {
  readonly view: View;

  constructor(self: { id: string; peerUrl: string; partitions: number }) {
    this.view = Object.freeze({ epoch: 1, members: Object.freeze([{ ...self, state: 'active' as const }]) });
  }

  /** Always active: no peer reads the state of a member without peers. */
  async setState(_state: MemberState): Promise<void> {}

  async leave(): Promise<void> {}

  mustRevalidate(): boolean {
    return false;
  }
}

/** Both seams a standalone sidecar uses, as NatsLog offers them in cluster mode. */
export class SoloLog implements InvalidationLog, Membership {
  readonly #log: MemoryLog;
  readonly #membership: SoloMembership;

  constructor(self: { id: string; peerUrl: string; partitions: number }) {
    this.#log = new MemoryLog(self.id);
    this.#membership = new SoloMembership(self);
  }

  start(handlers: InvalidationHandlers): Promise<void> { return this.#log.start(handlers); }
  get appliedSeq(): number { return this.#log.appliedSeq; }
  get knownSeq(): number { return this.#log.knownSeq; }
  get incarnation(): string { return this.#log.incarnation; }
  get attached(): boolean { return this.#log.attached; }
  invalidate(inval: Invalidation): Promise<number> { return this.#log.invalidate(inval); }
  catchUp(): Promise<number> { return this.#log.catchUp(); }
  waitApplied(seq: number, timeoutMs: number): Promise<PurgeAcks> { return this.#log.waitApplied(seq, timeoutMs); }
  behindMs(): number { return this.#log.behindMs(); }
  close(): Promise<void> { return this.#log.close(); }
  get view(): View { return this.#membership.view; }
  setState(state: MemberState): Promise<void> { return this.#membership.setState(state); }
  leave(): Promise<void> { return this.#membership.leave(); }
  mustRevalidate(): boolean { return this.#membership.mustRevalidate(); }
}
