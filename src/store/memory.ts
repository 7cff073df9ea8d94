// LruStore: the in-memory CacheStore, lru-cache with a byte budget (maxSize +
// sizeCalculation). Freshness is checked by the caller on read, never by LRU ttl.
// Hits read a plain Map of the same values and move their key up the LRU at most once per
// PROMOTE_INTERVAL_MS, as Varnish does with lru_interval: the eviction order is then LRU to
// within that interval, and a hit costs one Map lookup instead of lru-cache's get.
// A key's variants are found by a map on their vary values, never by a scan, and a key
// keeps at most maxVariants of them: the least recently used one goes first.
import { LRUCache } from 'lru-cache';
import { DEFAULT_MAX_VARIANTS, sameNames, sameVariant, variantKey } from './types.js';
import type { CacheStore, Entry, Slot, StoreStats, Variants, VaryGroup } from './types.js';

/** The Variants value of `slots` (least recently stored first), with its lookup maps. */
function variantsOf(key: string, slots: readonly Slot[], promotedAt: number): Variants {
  const entries: Entry[] = new Array<Entry>(slots.length);
  const groups: Array<{ readonly names: readonly string[]; readonly byValues: Map<string, Slot> }> = [];
  let plain: Slot | undefined;
  let size = 0;
  for (let i = 0; i < slots.length; i++) {
    const slot = slots[i]!;
    const e = slot.entry;
    entries[i] = e;
    size += e.size;
    if (e.varyNames === null) {
      plain = slot;
      continue;
    }
    let group = groups.find((g) => sameNames(g.names, e.varyNames!));
    if (group === undefined) groups.push((group = { names: e.varyNames, byValues: new Map() }));
    group.byValues.set(variantKey(e.varyValues), slot);
  }
  return { key, entries, slots, plain, groups: groups as readonly VaryGroup[], size, promotedAt };
}

/** The least recently used slot (ties: the least recently stored). */
function lruIndex(slots: readonly Slot[]): number {
  let at = 0;
  for (let i = 1; i < slots.length; i++) {
    const s = slots[i]!;
    const best = slots[at]!;
    if (s.usedAt < best.usedAt || (s.usedAt === best.usedAt && s.storedSeq < best.storedSeq)) at = i;
  }
  return at;
}

/** A hit moves its key to the LRU's tail when the last such move is older than this. */
export const PROMOTE_INTERVAL_MS = 1000;

export interface LruStoreOptions {
  /** Called with what left the store to stay within its bounds (a key, or one variant). */
  readonly onEvict?: (v: Variants) => void;
  /** Entries holding about this many bytes left the store (evicted, deleted, replaced by a
   *  variant with another body); see store/reclaim.ts. */
  readonly onRelease?: (bytes: number) => void;
  /** Variants kept per key (SIDECACHE_MAX_VARIANTS): each request header value a response
   *  varies on can make one, so without a bound one URL could fill the budget. */
  readonly maxVariants?: number;
}

export class LruStore implements CacheStore {
  readonly #lru: LRUCache<string, Variants>;
  /** The LRU's values by key, kept equal to it by set/deleteEntry and dispose. */
  readonly #index = new Map<string, Variants>();
  readonly #tags = new Map<string, Set<string>>();
  #evictions = 0;
  #storedSeq = 0;
  readonly #maxVariants: number;
  readonly #onEvict: ((v: Variants) => void) | undefined;
  readonly #onRelease: ((bytes: number) => void) | undefined;

  constructor(maxBytes: number, opts: LruStoreOptions = {}) {
    const onEvict = opts.onEvict;
    this.#onEvict = onEvict;
    this.#onRelease = opts.onRelease;
    this.#maxVariants = Math.max(1, opts.maxVariants ?? DEFAULT_MAX_VARIANTS);
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

  /** get() without moving the key up the LRU (inspection). */
  peek(key: string): Variants | undefined {
    return this.#index.get(key);
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
    const slot: Slot = { entry, usedAt: entry.freshness.storedAt, storedSeq: ++this.#storedSeq };
    let slots: Slot[];
    if (old === undefined) {
      slots = [slot];
    } else {
      slots = [];
      let dropped = 0;
      for (const s of old.slots) {
        if (!sameVariant(s.entry, entry)) slots.push(s);
        else if (s.entry.body !== entry.body) dropped += s.entry.size;
      }
      while (slots.length >= this.#maxVariants) {
        const [gone] = slots.splice(lruIndex(slots), 1) as [Slot];
        dropped += gone.entry.size;
        this.#evictions++;
        this.#onEvict?.(variantsOf(entry.key, [gone], 0));
      }
      slots.push(slot);
      if (dropped > 0) this.#onRelease?.(dropped);
    }
    const v = variantsOf(entry.key, slots, 0);
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
    const slots = v.slots.filter((s) => s.entry !== entry);
    if (slots.length === v.slots.length) return;
    if (slots.length === 0) {
      this.#lru.delete(entry.key);
      return;
    }
    this.#onRelease?.(entry.size);
    const next = variantsOf(v.key, slots, v.promotedAt);
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
