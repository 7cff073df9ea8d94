// MemoryLog: the in-process log of a standalone sidecar. The cluster is this one member,
// every invalidation is applied the moment it is appended, nothing is replicated.
import type { ClusterLog, LogHandlers } from './types.js';
import type { Invalidation, MemberState, PurgeAcks, View } from '../core/types.js';

export class MemoryLog implements ClusterLog {
  #handlers: LogHandlers | undefined;
  #seq = 0;
  #view: View;
  readonly #id: string;

  constructor(self: { id: string; peerUrl: string; partitions: number }) {
    this.#id = self.id;
    this.#view = { epoch: 1, members: [{ ...self, state: 'active' }] };
  }

  async start(handlers: LogHandlers): Promise<void> {
    this.#handlers = handlers;
    handlers.horizon(this.#seq);
    handlers.view(this.#view);
    handlers.attached(true);
  }

  get appliedSeq(): number {
    return this.#seq;
  }

  /** One process, one numbering. */
  get incarnation(): string {
    return '';
  }

  get attached(): boolean {
    return true;
  }

  invalidate(inval: Invalidation): Promise<number> {
    const seq = ++this.#seq;
    this.#handlers?.invalidation(seq, inval);
    return Promise.resolve(seq);
  }

  catchUp(): Promise<number> {
    return Promise.resolve(this.#seq);
  }

  waitApplied(): Promise<PurgeAcks> {
    return Promise.resolve({ acknowledged: [this.#id], missing: [] });
  }

  publishFill(): void {}

  replayFills(): Promise<number> {
    return Promise.resolve(0);
  }

  get view(): View {
    return this.#view;
  }

  async setState(state: MemberState): Promise<void> {
    const me = this.#view.members[0]!;
    if (me.state === state) return;
    this.#view = { epoch: this.#view.epoch + 1, members: [{ ...me, state }] };
    this.#handlers?.view(this.#view);
  }

  async leave(): Promise<void> {}

  /** In-process: no peers that could drop us. */
  mustRevalidate(): boolean {
    return false;
  }

  /** In-process: applied as published. */
  behindMs(): number {
    return 0;
  }

  async close(): Promise<void> {}
}
