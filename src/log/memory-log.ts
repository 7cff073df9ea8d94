// MemoryLog: the in-process invalidation log of a standalone sidecar. Every invalidation is
// applied the moment it is appended and this sidecar is the only one to acknowledge it; nothing
// is replicated.
import type { InvalidationHandlers, InvalidationLog } from './types.js';
import type { Invalidation, PurgeAcks } from '../core/types.js';

export class MemoryLog implements InvalidationLog {
  #handlers: InvalidationHandlers | undefined;
  #seq = 0;
  readonly #id: string;

  /** `id`: this sidecar, the one member that acknowledges. */
  constructor(id: string) {
    this.#id = id;
  }

  async start(handlers: InvalidationHandlers): Promise<void> {
    this.#handlers = handlers;
    handlers.horizon(this.#seq);
    handlers.attached(true);
  }

  /** In process, appended is applied: nothing is ever pending. */
  get knownSeq(): number {
    return this.appliedSeq;
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

  waitApplied(_seq: number, _timeoutMs: number): Promise<PurgeAcks> {
    return Promise.resolve({ acknowledged: [this.#id], missing: [] });
  }

  /** In-process: applied as published. */
  behindMs(): number {
    return 0;
  }

  async close(): Promise<void> {}
}
