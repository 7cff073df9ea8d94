// What this sidecar holds for one primary key, for `sidecache inspect`: every stored variant
// in the owned store and the hot set, with its age, remaining freshness, tags and fence. Read
// only: nothing is promoted, evicted or marked.
import { ageSec, verdictOf, type Verdict } from '../http/freshness.js';
import type { Cache } from './cache.js';
import { heldPartBytes } from './parts.js';
import type { EntrySource } from './types.js';

export interface StoredVariant {
  /** 'main': the owned store (primary, replica or standalone); 'hot': a copy of a peer's answer. */
  readonly store: 'main' | 'hot';
  readonly source: EntrySource;
  readonly status: number;
  /** The Vary field names of its secondary key (values are not shown: they may be keyed hashes of credentials). */
  readonly varyNames: readonly string[] | null;
  readonly ageSec: number;
  /** Freshness left, seconds; negative once stale. */
  readonly ttlSec: number;
  readonly verdict: Verdict;
  readonly softPurged: boolean;
  readonly tags: readonly string[];
  readonly fence: { readonly incarnation: string; readonly seq: number };
  readonly bodyBytes: number;
  /** Bytes charged to the budget. */
  readonly size: number;
  readonly storedAt: number;
  /** Kept until then at most (freshness and stale windows). */
  readonly keepUntil: number;
}

export function describeKey(cache: Cache, key: string, now = cache.clock.now()): StoredVariant[] {
  const out: StoredVariant[] = [];
  for (const { store: name, variants: v } of cache.holdings(key)) {
    for (const e of v.entries) {
      if (now >= e.keepUntil) continue;
      out.push({
        store: name,
        source: e.source,
        status: e.status,
        varyNames: e.varyNames,
        ageSec: Math.floor(ageSec(e.freshness, now)),
        ttlSec: Math.round((e.freshness.freshUntil - now) / 1000),
        verdict: verdictOf(e.freshness, now),
        softPurged: e.softPurged,
        tags: e.tags,
        fence: { incarnation: e.incarnation, seq: e.fence },
        // A partial entry (status 206) holds its parts' bytes, not a body.
        bodyBytes: e.parts === undefined ? e.body.length : heldPartBytes(e.parts),
        size: e.size,
        storedAt: e.freshness.storedAt,
        keepUntil: e.keepUntil,
      });
    }
  }
  return out;
}
