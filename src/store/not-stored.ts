// Why recent responses were not stored, by primary key: what `sidecache inspect` says about a
// URL that is not cached. Bounded in keys (oldest forgotten first) and fed only on the miss
// path, never on a hit.
import { systemClock, type Clock } from '../core/clock.js';

export const NOT_STORED_MAX_KEYS = 1024;

export interface NotStored {
  readonly reason: string;
  /** Epoch-ms when it was not stored. */
  readonly at: number;
}

export class NotStoredLog {
  readonly #max: number;
  readonly #byKey = new Map<string, NotStored>();
  readonly #clock: Clock;

  constructor(maxKeys = NOT_STORED_MAX_KEYS, clock: Clock = systemClock) {
    this.#max = Math.max(1, maxKeys);
    this.#clock = clock;
  }

  note(key: string, reason: string, now = this.#clock.now()): void {
    // Re-inserted at the end: a Map iterates in insertion order, so the first key is the oldest.
    this.#byKey.delete(key);
    this.#byKey.set(key, { reason, at: now });
    if (this.#byKey.size > this.#max) this.#byKey.delete(this.#byKey.keys().next().value!);
  }

  get(key: string): NotStored | undefined {
    return this.#byKey.get(key);
  }

  get size(): number {
    return this.#byKey.size;
  }
}
