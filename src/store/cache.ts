// Cache: the owned store, the hot set, and what invalidation needs to be exact: bans by
// seq (purge-all in O(1)) and the recent invalidations that a late fill is checked
// against (DESIGN invariant 2, no resurrection).
import { systemClock, type Clock } from '../core/clock.js';
import type { Invalidation } from '../core/types.js';
import { InvalHistory } from './history.js';
import { LruStore } from './memory.js';
import { Reclaimer } from './reclaim.js';
import { sameVariant, type CacheStore, type Entry, type Variants, type VariantKeyOf } from './types.js';

/** Default bound on the invalidation history's memory (SIDECACHE_INVAL_HISTORY_BYTES). */
export const DEFAULT_INVAL_HISTORY_BYTES = 32 * 1024 * 1024;

export function matches(inval: Invalidation, entry: Entry): boolean {
  switch (inval.kind) {
    case 'url':
      return inval.keys.includes(entry.key);
    case 'prefix':
      return entry.key.startsWith(inval.prefix);
    case 'tags':
      for (const t of inval.tags) if (entry.tags.includes(t)) return true;
      return false;
    case 'all':
      return true;
  }
}

export interface CacheOptions {
  readonly maxBytes: number;
  readonly hotMaxBytes: number;
  readonly onEvict?: (v: Variants) => void;
  /** Variants kept per key (default 32). */
  readonly maxVariants?: number;
  /** Bound on the memory of the invalidation history, hard and soft together (default 32 MiB). */
  readonly historyMaxBytes?: number;
  /** Incarnation of the INVAL stream whose seqs this cache applies (InvalidationLog.incarnation).
   *  Default: '' (one numbering, standalone). */
  readonly incarnation?: () => string;
  /** The time entries are judged by (default: the system clock). */
  readonly clock?: Clock;
}

/** What the cache holds, for metrics and status. */
export interface CacheStats {
  readonly entries: number;
  readonly bytes: number;
  readonly hotEntries: number;
  readonly hotBytes: number;
}

export class Cache {
  /** The owned store and the hot set (copies of peers' keys); tests look inside, the rest of
   *  sidecache goes through the methods below. */
  readonly main: CacheStore;
  readonly hot: CacheStore;
  /** The time freshness is judged by: the request path and inspection read it here. */
  readonly clock: Clock;
  /** Entries whose fence is below this were purged by a purge-all. */
  #banBefore = 0;
  #softBanBefore = 0;
  /** Invalidations a late fill is refused for, and soft purges it is kept stale for. */
  readonly #history: InvalHistory;
  readonly #softHistory = new InvalHistory();
  readonly #historyMaxBytes: number;
  #generation = 0;
  readonly #incarnation: () => string;

  constructor(opts: CacheOptions, historyFloor = 0) {
    this.#incarnation = opts.incarnation ?? (() => '');
    this.clock = opts.clock ?? systemClock;
    const reclaimer = new Reclaimer(opts.maxBytes + Math.max(0, opts.hotMaxBytes));
    const onRelease = (bytes: number): void => reclaimer.released(bytes);
    const storeOpts = {
      onRelease,
      ...(opts.onEvict === undefined ? {} : { onEvict: opts.onEvict }),
      ...(opts.maxVariants === undefined ? {} : { maxVariants: opts.maxVariants }),
    };
    this.main = new LruStore(opts.maxBytes, storeOpts);
    this.hot = new LruStore(Math.max(1, opts.hotMaxBytes), storeOpts);
    this.#history = new InvalHistory(historyFloor);
    this.#historyMaxBytes = opts.historyMaxBytes ?? DEFAULT_INVAL_HISTORY_BYTES;
  }

  /** The variant of `key` the request selects, or undefined. `variantOf(names, arg)` is the
   *  request's variantKey for those Vary names; it is not called for a key stored without
   *  Vary. Synchronous: the hit path. */
  lookup<A>(key: string, variantOf: VariantKeyOf<A>, arg: A, now: number): Entry | undefined {
    const found = this.#find(this.main, key, variantOf, arg, now);
    return found ?? this.#find(this.hot, key, variantOf, arg, now);
  }

  #find<A>(store: CacheStore, key: string, variantOf: VariantKeyOf<A>, arg: A, now: number): Entry | undefined {
    const v = store.hit(key, now);
    if (v === undefined) return undefined;
    let slot = v.plain;
    const groups = v.groups;
    // RFC 9111 §4.1: of several stored responses that match, the most recent one is used.
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      const s = g.byValues.get(variantOf(g.names, arg));
      if (s !== undefined && (slot === undefined || s.storedSeq > slot.storedSeq)) slot = s;
    }
    if (slot === undefined) return undefined;
    const e = slot.entry;
    if (e.fence < this.#banBefore || now >= e.keepUntil) {
      store.deleteEntry(e);
      // One variant fewer each time: an older matching variant may remain.
      return this.#find(store, key, variantOf, arg, now);
    }
    slot.usedAt = now;
    if (e.fence < this.#softBanBefore) e.softPurged = true;
    return e;
  }

  /** Has an invalidation after `fence` matched this entry, or can that not be known? Then it
   *  must not be stored. A fence of another INVAL incarnation counts in seqs that mean nothing
   *  here (they restart when the stream is reset): whatever purged it is unknown. */
  isInvalidatedSince(entry: Pick<Entry, 'key' | 'tags' | 'fence' | 'incarnation'>): boolean {
    if (entry.incarnation !== this.#incarnation()) return true;
    return entry.fence < this.#banBefore || this.#history.matchesSince(entry);
  }

  /** Bytes held by the invalidation history (hard and soft), at most historyMaxBytes. */
  get historyBytes(): number {
    return this.#history.bytes + this.#softHistory.bytes;
  }

  /** Records forgotten so far to keep the history within its bytes. */
  get historyForgotten(): number {
    return this.#history.forgotten + this.#softHistory.forgotten;
  }

  /** Fences below `seq` cannot be checked: the invalidations up to it are unknown here (the log
   *  starts after them). Fills fenced before it are refused (DESIGN invariant 2). */
  raiseHistoryFloor(seq: number): void {
    this.#history.raiseFloor(seq);
  }

  #record(seq: number, inval: Invalidation): void {
    const h = inval.soft === true ? this.#softHistory : this.#history;
    switch (inval.kind) {
      case 'url':
        for (const k of inval.keys) h.rememberUrl(k, seq);
        break;
      case 'tags':
        for (const t of inval.tags) h.rememberTag(t, seq);
        break;
      case 'prefix':
        h.rememberPrefix(inval.prefix, seq);
        break;
      case 'all':
        return;
    }
    // Over the bound, the oldest records go first, hard or soft: no invalidation is dropped
    // (it was applied above), only the proof that a fill fenced before it is clean.
    while (this.historyBytes > this.#historyMaxBytes) {
      const hard = this.#history.oldestSeq();
      const soft = this.#softHistory.oldestSeq();
      if (hard === Infinity && soft === Infinity) break;
      if (hard <= soft) this.#history.forgetOldest();
      else this.#softHistory.forgetOldest();
    }
  }

  /** Has a soft purge after `fence` matched this entry? Then it may be kept, but not as fresh. */
  #isSoftPurgedSince(entry: Entry): boolean {
    return entry.fence < this.#softBanBefore || this.#softHistory.matchesSince(entry);
  }

  /** Bumped by every flush: a fetch started in an older generation is never stored. */
  get generation(): number {
    return this.#generation;
  }

  /** Stores unless an invalidation newer than its fence matches it (or the cache was
   *  flushed since `generation`, when given). Returns whether stored. */
  store(entry: Entry, hot = false, generation?: number): boolean {
    if (generation !== undefined && generation !== this.#generation) return false;
    if (this.isInvalidatedSince(entry)) return false;
    // A fetch that began before a soft purge may carry the purged content: keep it for
    // revalidation, but never serve it as fresh.
    if (this.#isSoftPurgedSince(entry)) entry.softPurged = true;
    (hot ? this.hot : this.main).set(entry);
    return true;
  }

  /** Replaces `old` by `next`, its same variant with more held (a gzip form), only while `old`
   *  is still the stored one: one purged, evicted, refreshed or flushed meanwhile stays gone or
   *  replaced. Returns whether replaced. */
  upgrade(old: Entry, next: Entry): boolean {
    const store = this.#storeHolding(old);
    store?.set(next);
    return store !== undefined;
  }

  /** Is this very entry still stored (not purged, evicted, replaced or flushed)? No LRU move. */
  holds(entry: Entry): boolean {
    return this.#storeHolding(entry) !== undefined;
  }

  #storeHolding(entry: Entry): CacheStore | undefined {
    if (this.main.peek(entry.key)?.entries.includes(entry) === true) return this.main;
    if (this.hot.peek(entry.key)?.entries.includes(entry) === true) return this.hot;
    return undefined;
  }

  /** Applies one invalidation at `seq`; entries fetched after it (fence >= seq) stay. */
  apply(seq: number, inval: Invalidation, onRemoved?: (e: Entry) => void): number {
    this.#record(seq, inval);
    if (inval.kind === 'all') {
      if (inval.soft) this.#softBanBefore = Math.max(this.#softBanBefore, seq);
      else {
        this.#banBefore = Math.max(this.#banBefore, seq);
        const n = this.main.stats.entries + this.hot.stats.entries;
        // The ban already hides them; clearing frees the memory now.
        this.main.clear();
        this.hot.clear();
        return n;
      }
      return this.main.stats.entries + this.hot.stats.entries;
    }
    let count = 0;
    for (const store of [this.main, this.hot]) {
      for (const key of this.#candidates(store, inval)) {
        const v = store.get(key);
        if (v === undefined) continue;
        for (const e of v.entries) {
          if (e.fence >= seq || !matches(inval, e)) continue;
          count++;
          if (inval.soft) e.softPurged = true;
          else {
            store.deleteEntry(e);
            onRemoved?.(e);
          }
        }
      }
    }
    return count;
  }

  #candidates(store: CacheStore, inval: Invalidation): string[] {
    switch (inval.kind) {
      case 'url':
        return [...inval.keys];
      case 'tags': {
        const keys = new Set<string>();
        for (const t of inval.tags) for (const k of store.keysWithTag(t) ?? []) keys.add(k);
        return [...keys];
      }
      default: {
        const out: string[] = [];
        for (const k of store.keys()) if (inval.kind !== 'prefix' || k.startsWith(inval.prefix)) out.push(k);
        return out;
      }
    }
  }

  get stats(): CacheStats {
    const m = this.main.stats;
    const h = this.hot.stats;
    return { entries: m.entries, bytes: m.bytes, hotEntries: h.entries, hotBytes: h.bytes };
  }

  /** What each store holds for `key`, without touching the LRU order (inspection). */
  holdings(key: string): { store: 'main' | 'hot'; variants: Variants }[] {
    const out: { store: 'main' | 'hot'; variants: Variants }[] = [];
    const main = this.main.peek(key);
    if (main !== undefined) out.push({ store: 'main', variants: main });
    const hot = this.hot.peek(key);
    if (hot !== undefined) out.push({ store: 'hot', variants: hot });
    return out;
  }

  /** The owned store's (or with `hot`, the hot set's) entry for the same variant as `like`
   *  (same Vary names and values). */
  sameVariantAs(like: Pick<Entry, 'key' | 'varyNames' | 'varyValues'>, hot = false): Entry | undefined {
    return (hot ? this.hot : this.main).get(like.key)?.entries.find((e) => sameVariant(e, like));
  }

  /** Removes every variant of `key` from both stores (a write invalidated it). */
  remove(key: string, onRemoved?: (e: Entry) => void): void {
    for (const store of [this.main, this.hot]) {
      const v = store.get(key);
      if (v === undefined) continue;
      if (onRemoved !== undefined) for (const e of v.entries) onRemoved(e);
      store.delete(key);
    }
  }

  /** Drops everything (a gap in the log): nothing held can be proven fresh any more. */
  flush(floorSeq: number): number {
    const n = this.main.stats.entries + this.hot.stats.entries;
    // After a stream reset seqs restart below the old ones: bans and fences of the old
    // numbering mean nothing now, and fetches that began before the flush are not stored.
    this.#generation++;
    this.#banBefore = 0;
    this.#softBanBefore = 0;
    this.main.clear();
    this.hot.clear();
    this.#history.clear(floorSeq);
    this.#softHistory.clear(0);
    return n;
  }
}
