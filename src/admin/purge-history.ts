// The last purges requested through this member's admin API, with who acknowledged them and
// how long that took, for GET /purges (the status page). Bounded; kept in memory only.
// What was purged is summarised as kind and count: reads are open (like /metrics) and never
// name a URL, prefix or tag.
import type { Invalidation, InvalidationKind } from '../core/types.js';

/** Purges kept; older ones are forgotten. */
export const PURGE_HISTORY_LIMIT = 50;

export interface PurgeRecord {
  readonly seq: number;
  /** Epoch-ms when the purge was requested. */
  readonly at: number;
  readonly kind: InvalidationKind;
  /** URLs or tags it named (1 for a prefix or all). */
  readonly count: number;
  readonly soft: boolean;
  /** From the request to every active member's acknowledgement, or to the purge timeout. */
  readonly ms: number;
  readonly acknowledged: readonly string[];
  readonly missing: readonly string[];
}

export function purgeRecord(inval: Invalidation, seq: number, at: number, ms: number, acks: { acknowledged: readonly string[]; missing: readonly string[] }): PurgeRecord {
  const count = inval.kind === 'url' ? inval.keys.length : inval.kind === 'tags' ? inval.tags.length : 1;
  return { seq, at, kind: inval.kind, count, soft: inval.soft === true, ms, acknowledged: [...acks.acknowledged], missing: [...acks.missing] };
}

export class PurgeHistory {
  readonly limit: number;
  readonly #records: PurgeRecord[] = [];

  constructor(limit = PURGE_HISTORY_LIMIT) {
    this.limit = limit;
  }

  add(r: PurgeRecord): void {
    this.#records.push(r);
    if (this.#records.length > this.limit) this.#records.splice(0, this.#records.length - this.limit);
  }

  /** Newest first. */
  recent(): PurgeRecord[] {
    return this.#records.slice().reverse();
  }
}
