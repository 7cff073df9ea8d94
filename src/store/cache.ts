// Cache: the owned store, the hot set, and what invalidation needs to be exact: bans by
// seq (purge-all in O(1)) and the recent invalidations that a late fill is checked
// against (DESIGN invariant 2, no resurrection).
import type { Invalidation } from '../log/types.js';
import { LruStore } from './memory.js';
import { Reclaimer } from './reclaim.js';
import type { Entry, Variants } from './types.js';

/** Keys, tags and prefixes remembered with the seq of their last invalidation, so a late
 *  fill can be checked in O(its tags); beyond this many, the oldest are forgotten and
 *  fences older than what was forgotten cannot be proven clean. */
const HISTORY_MAX = 200_000;

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
}

export class Cache {
  readonly main: LruStore;
  readonly hot: LruStore;
  /** Entries whose fence is below this were purged by a purge-all. */
  #banBefore = 0;
  #softBanBefore = 0;
  readonly #urlSeq = new Map<string, number>();
  readonly #tagSeq = new Map<string, number>();
  #prefixSeq: Array<{ readonly prefix: string; readonly seq: number }> = [];
  /** Seqs at or below this were forgotten: such fences cannot be checked. */
  #historyFloor: number;
  /** The same for soft purges: a late fill they match is kept, but marked for revalidation. */
  readonly #softUrlSeq = new Map<string, number>();
  readonly #softTagSeq = new Map<string, number>();
  #softPrefixSeq: Array<{ readonly prefix: string; readonly seq: number }> = [];
  #softFloor = 0;
  #generation = 0;

  constructor(opts: CacheOptions, historyFloor = 0) {
    const reclaimer = new Reclaimer(opts.maxBytes + Math.max(0, opts.hotMaxBytes));
    const onRelease = (bytes: number): void => reclaimer.released(bytes);
    this.main = new LruStore(opts.maxBytes, opts.onEvict, onRelease);
    this.hot = new LruStore(Math.max(1, opts.hotMaxBytes), opts.onEvict, onRelease);
    this.#historyFloor = historyFloor;
  }

  /** The variant of `key` that matches the request, or undefined. Synchronous: the hit path. */
  lookup<A>(key: string, match: (e: Entry, arg: A) => boolean, arg: A, now: number): Entry | undefined {
    const found = this.#find(this.main, key, match, arg, now);
    return found ?? this.#find(this.hot, key, match, arg, now);
  }

  #find<A>(store: LruStore, key: string, match: (e: Entry, arg: A) => boolean, arg: A, now: number): Entry | undefined {
    const v = store.hit(key, now);
    if (v === undefined) return undefined;
    const entries = v.entries;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.fence < this.#banBefore || now >= e.keepUntil) {
        store.deleteEntry(e);
        return this.#find(store, key, match, arg, now);
      }
      if (match(e, arg)) {
        if (e.fence < this.#softBanBefore) e.softPurged = true;
        return e;
      }
    }
    return undefined;
  }

  /** Has an invalidation after `fence` matched this entry? Then it must not be stored. */
  isInvalidatedSince(entry: Entry): boolean {
    const fence = entry.fence;
    if (fence < this.#historyFloor || fence < this.#banBefore) return true;
    if ((this.#urlSeq.get(entry.key) ?? 0) > fence) return true;
    for (const t of entry.tags) if ((this.#tagSeq.get(t) ?? 0) > fence) return true;
    for (const p of this.#prefixSeq) if (p.seq > fence && entry.key.startsWith(p.prefix)) return true;
    return false;
  }

  #remember(map: Map<string, number>, name: string, seq: number, soft: boolean): void {
    map.delete(name);
    map.set(name, seq);
    if (map.size > HISTORY_MAX) {
      const [, oldest] = map.entries().next().value as [string, number];
      map.delete(map.keys().next().value as string);
      this.#raiseFloor(oldest, soft);
    }
  }

  #raiseFloor(seq: number, soft: boolean): void {
    if (soft) this.#softFloor = Math.max(this.#softFloor, seq);
    else this.#historyFloor = Math.max(this.#historyFloor, seq);
  }

  #record(seq: number, inval: Invalidation): void {
    const soft = inval.soft === true;
    switch (inval.kind) {
      case 'url':
        for (const k of inval.keys) this.#remember(soft ? this.#softUrlSeq : this.#urlSeq, k, seq, soft);
        return;
      case 'tags':
        for (const t of inval.tags) this.#remember(soft ? this.#softTagSeq : this.#tagSeq, t, seq, soft);
        return;
      case 'prefix': {
        const list = soft ? this.#softPrefixSeq : this.#prefixSeq;
        list.push({ prefix: inval.prefix, seq });
        if (list.length > 10_000) {
          const dropped = list.splice(0, list.length - 10_000);
          this.#raiseFloor(dropped[dropped.length - 1]!.seq, soft);
        }
        return;
      }
      case 'all':
        return;
    }
  }

  /** Has a soft purge after `fence` matched this entry? Then it may be kept, but not as fresh. */
  #isSoftPurgedSince(entry: Entry): boolean {
    const fence = entry.fence;
    if (fence < this.#softFloor || fence < this.#softBanBefore) return true;
    if ((this.#softUrlSeq.get(entry.key) ?? 0) > fence) return true;
    for (const t of entry.tags) if ((this.#softTagSeq.get(t) ?? 0) > fence) return true;
    for (const p of this.#softPrefixSeq) if (p.seq > fence && entry.key.startsWith(p.prefix)) return true;
    return false;
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

  #candidates(store: LruStore, inval: Invalidation): string[] {
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

  /** Drops everything (a gap in the log): nothing held can be proven fresh any more. */
  flush(floorSeq: number): number {
    const n = this.main.stats.entries + this.hot.stats.entries;
    // After a stream reset seqs restart below the old ones: bans and fences of the old
    // numbering mean nothing now, and fetches that began before the flush are not stored.
    this.#generation++;
    this.#banBefore = 0;
    this.#softBanBefore = 0;
    this.#softFloor = 0;
    this.main.clear();
    this.hot.clear();
    this.#urlSeq.clear();
    this.#tagSeq.clear();
    this.#prefixSeq = [];
    this.#historyFloor = floorSeq;
    this.#softUrlSeq.clear();
    this.#softTagSeq.clear();
    this.#softPrefixSeq = [];
    return n;
  }
}
