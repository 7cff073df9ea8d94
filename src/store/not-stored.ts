// Why recent responses were not stored, by primary key: what `sidecache inspect` says about a
// URL that is not cached. Bounded in keys (oldest forgotten first) and fed only on the miss
// path, never on a hit.
export const NOT_STORED_MAX_KEYS = 1024;

export interface NotStored {
  readonly reason: string;
  /** Epoch-ms when it was not stored. */
  readonly at: number;
}

export class NotStoredLog {
  readonly #max: number;
  readonly #byKey = new Map<string, NotStored>();

  constructor(maxKeys = NOT_STORED_MAX_KEYS) {
    this.#max = Math.max(1, maxKeys);
  }

  note(key: string, reason: string, now = Date.now()): void {
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
