// LruStore: the in-memory CacheStore, lru-cache with a byte budget (maxSize +
// sizeCalculation). Freshness is checked by the caller on read, never by LRU ttl.
// Hits read a plain Map of the same values and move their key up the LRU at most once per
// PROMOTE_INTERVAL_MS, as Varnish does with lru_interval: the eviction order is then LRU to
// within that interval, and a hit costs one Map lookup instead of lru-cache's get.
import { LRUCache } from 'lru-cache';
import type { CacheStore, Entry, StoreStats, Variants } from './types.js';

function sameVariant(a: Entry, b: Entry): boolean {
  if (a.varyNames === null || b.varyNames === null) return a.varyNames === b.varyNames;
  if (a.varyNames.join('\n') !== b.varyNames.join('\n')) return false;
  for (let i = 0; i < a.varyValues.length; i++) if (a.varyValues[i] !== b.varyValues[i]) return false;
  return true;
}

/** A hit moves its key to the LRU's tail when the last such move is older than this. */
export const PROMOTE_INTERVAL_MS = 1000;

export class LruStore implements CacheStore {
  readonly #lru: LRUCache<string, Variants>;
  /** The LRU's values by key, kept equal to it by set/deleteEntry and dispose. */
  readonly #index = new Map<string, Variants>();
  readonly #tags = new Map<string, Set<string>>();
  #evictions = 0;
  readonly #onRelease: ((bytes: number) => void) | undefined;

  /** `onRelease`: entries holding about this many bytes left the store (evicted, deleted,
   *  replaced by a variant with another body); see store/reclaim.ts. */
  constructor(maxBytes: number, onEvict?: (v: Variants) => void, onRelease?: (bytes: number) => void) {
    this.#onRelease = onRelease;
    this.#lru = new LRUCache<string, Variants>({
      maxSize: maxBytes,
      sizeCalculation: (v) => Math.max(1, v.size),
      maxEntrySize: maxBytes,
      dispose: (v, key, reason) => {
        if (this.#index.get(key) === v) this.#index.delete(key);
        this.#untag(key, v);
        // 'set' replaces a Variants value with one that keeps most of its entries: set() and
        // deleteEntry() report what they drop themselves.
        if (reason !== 'set') this.#onRelease?.(v.size);
        if (reason === 'evict') {
          this.#evictions++;
          onEvict?.(v);
        }
      },
    });
  }

  get(key: string): Variants | undefined {
    return this.#lru.get(key);
  }

  hit(key: string, now: number): Variants | undefined {
    const v = this.#index.get(key);
    if (v !== undefined && now - v.promotedAt >= PROMOTE_INTERVAL_MS) {
      v.promotedAt = now;
      this.#lru.get(key);
    }
    return v;
  }

  set(entry: Entry): void {
    const old = this.#lru.peek(entry.key);
    const entries = old === undefined ? [entry] : [...old.entries.filter((e) => !sameVariant(e, entry)), entry];
    if (old !== undefined && this.#onRelease !== undefined) {
      let dropped = 0;
      for (const e of old.entries) if (sameVariant(e, entry) && e.body !== entry.body) dropped += e.size;
      if (dropped > 0) this.#onRelease(dropped);
    }
    let size = 0;
    for (const e of entries) size += e.size;
    const v: Variants = { key: entry.key, entries, size, promotedAt: 0 };
    // Replacing fires dispose for the old value; the index and tags are set again below.
    this.#lru.set(entry.key, v);
    this.#stored(v);
  }

  delete(key: string): boolean {
    return this.#lru.delete(key);
  }

  deleteEntry(entry: Entry): void {
    const v = this.#lru.peek(entry.key);
    if (v === undefined) return;
    const entries = v.entries.filter((e) => e !== entry);
    if (entries.length === v.entries.length) return;
    if (entries.length === 0) {
      this.#lru.delete(entry.key);
      return;
    }
    this.#onRelease?.(entry.size);
    let size = 0;
    for (const e of entries) size += e.size;
    const next: Variants = { key: v.key, entries, size, promotedAt: v.promotedAt };
    this.#lru.set(v.key, next, { noUpdateTTL: true });
    this.#stored(next);
  }

  keys(): IterableIterator<string> {
    return this.#lru.keys();
  }

  keysWithTag(tag: string): ReadonlySet<string> | undefined {
    return this.#tags.get(tag);
  }

  clear(): void {
    this.#lru.clear();
    this.#index.clear();
    this.#tags.clear();
  }

  get stats(): StoreStats {
    return { bytes: this.#lru.calculatedSize, entries: this.#lru.size, evictions: this.#evictions };
  }

  /** After lru.set(v): index and tag v if the LRU kept it (it refuses a value over its budget). */
  #stored(v: Variants): void {
    const held = this.#lru.peek(v.key);
    if (held === v) {
      this.#index.set(v.key, v);
      this.#tag(v);
    } else if (held === undefined) {
      this.#index.delete(v.key);
    }
  }

  #tag(v: Variants): void {
    for (const e of v.entries) {
      for (const t of e.tags) {
        let set = this.#tags.get(t);
        if (set === undefined) this.#tags.set(t, (set = new Set()));
        set.add(v.key);
      }
    }
  }

  #untag(key: string, v: Variants): void {
    for (const e of v.entries) {
      for (const t of e.tags) {
        const set = this.#tags.get(t);
        if (set === undefined) continue;
        set.delete(key);
        if (set.size === 0) this.#tags.delete(t);
      }
    }
  }
}
