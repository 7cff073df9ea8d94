// What the store holds: bytes, headers, times. It knows nothing of HTTP rules; the
// Freshness numbers are computed by http/ when an entry is made.
import type CachePolicy from 'http-cache-semantics';
import type { Freshness } from '../http/freshness.js';
import type { PartSet } from './parts.js';

export const EntrySource = { local: 'local', replica: 'replica', hot: 'hot' } as const;
export type EntrySource = (typeof EntrySource)[keyof typeof EntrySource];

export interface Entry {
  /** Primary key (proxy/key.ts). */
  readonly key: string;
  /** Secondary key (http/vary.ts): field names (sorted, lower-case; the response's Vary plus the
   *  implicit ones) and the values the origin received for them, credentials as keyed hashes.
   *  null: no secondary key. */
  readonly varyNames: readonly string[] | null;
  readonly varyValues: readonly string[];
  readonly status: number;
  /** Flat [name, value, ...] ready for writeHead: no hop-by-hop, no Age, Content-Length set. */
  readonly headers: readonly string[];
  readonly body: Buffer;
  readonly policy: CachePolicy;
  readonly freshness: Freshness;
  readonly keepUntil: number;
  /** Surrogate-Key / Cache-Tag values. */
  readonly tags: readonly string[];
  /** INVAL seq applied when the fetch that made this entry began (DESIGN: fence), by the
   *  sidecar that fetched it: for a hot copy or a replica, the owner. */
  readonly fence: number;
  /** INVAL incarnation `fence` counts in (log/types.ts Fence). */
  readonly incarnation: string;
  readonly etag: string | undefined;
  readonly lastModified: string | undefined;
  readonly source: EntrySource;
  /** FILLS seq this entry came from (replicas), 0 when fetched here. */
  readonly fillSeq: number;
  /** Bytes charged to the budget: body, headers, key and a fixed overhead. */
  readonly size: number;
  /** Set by a soft purge: served only after revalidation (or within stale windows). */
  softPurged: boolean;
  /** A partial entry (RFC 9111 §3.3): the byte ranges held of a 206's representation, `body`
   *  empty and `status` 206. Served only to range requests inside them (proxy/partial.ts),
   *  never whole, never to peers, never published as a fill. Absent on every complete entry. */
  readonly parts?: PartSet;
  /** A gzip form this cache made of the body (proxy/compress.ts), served whole to clients that
   *  accept gzip; `headers`, `body` and `etag` above stay the origin's (identity) form, served
   *  to the others and to every Range request. Undefined: only the form above. Set on entries
   *  made here (undefined until compression completes), never carried by fills. */
  readonly gzip?: GzipForm | undefined;
}

/** The gzip form of an entry: its fields (Content-Encoding, its own Content-Length and ETag)
 *  and bytes. Charged in the entry's size with the identity form. */
export interface GzipForm {
  readonly headers: readonly string[];
  readonly body: Buffer;
  readonly etag: string | undefined;
}

/** One stored variant, and when a hit last used it (ms since epoch; its storedAt until then):
 *  past SIDECACHE_MAX_VARIANTS the least recently used variant of the key is evicted. */
export interface Slot {
  readonly entry: Entry;
  usedAt: number;
  /** Order of stores in this store: the most recent of several matching variants wins. */
  readonly storedSeq: number;
}

/** The variants of one key that share a Vary field list, by variantKey of their values. */
export interface VaryGroup {
  readonly names: readonly string[];
  readonly byValues: ReadonlyMap<string, Slot>;
}

/** All stored variants of one primary key. Replaced, never changed, by set and deleteEntry. */
export interface Variants {
  readonly key: string;
  /** Every variant, least recently stored first. */
  readonly entries: readonly Entry[];
  readonly slots: readonly Slot[];
  /** The variant stored without Vary: a hit on it computes no secondary key. */
  readonly plain: Slot | undefined;
  /** Variants with Vary, one group per field list (an origin that changed its Vary has two). */
  readonly groups: readonly VaryGroup[];
  readonly size: number;
  /** When a hit last moved this key to the LRU's tail (ms since epoch; 0: not since stored). */
  promotedAt: number;
}

/** The string a variant is found by: its normalised vary values (RFC 9111 §4.1), joined by a
 *  line feed, which no field value contains (RFC 9110 §5.5). A request selects the variant
 *  whose key equals variantKey of its own values for the same field names. */
export function sameNames(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Same Vary names and the same variant key: one replaces the other (store, replicas, FILLS). */
export function sameVariant(a: Pick<Entry, 'varyNames' | 'varyValues'>, b: Pick<Entry, 'varyNames' | 'varyValues'>): boolean {
  if (a.varyNames === null || b.varyNames === null) return a.varyNames === b.varyNames;
  return sameNames(a.varyNames, b.varyNames) && variantKey(a.varyValues) === variantKey(b.varyValues);
}

export function variantKey(values: readonly string[]): string {
  return values.length === 1 ? values[0]! : values.join('\n');
}

/** How a caller of lookup turns its request into the variant key for a list of Vary names. */
export type VariantKeyOf<A> = (names: readonly string[], arg: A) => string;

/** Variants each key keeps by default (SIDECACHE_MAX_VARIANTS). */
export const DEFAULT_MAX_VARIANTS = 32;

export interface StoreStats {
  readonly bytes: number;
  readonly entries: number;
  readonly evictions: number;
}

/** A byte-bounded store of variants by primary key. Called from the cache only. */
export interface CacheStore {
  get(key: string): Variants | undefined;
  /** get() without touching the LRU order (inspection). */
  peek(key: string): Variants | undefined;
  /** get() for a hit at `now`: moves the key up the LRU at most once per PROMOTE_INTERVAL_MS. */
  hit(key: string, now: number): Variants | undefined;
  /** Adds or replaces the variant with the same vary names and values; past the store's
   *  bound on variants per key, drops the key's least recently used other variant. */
  set(entry: Entry): void;
  delete(key: string): boolean;
  /** Removes one variant; the key goes when its last variant does. */
  deleteEntry(entry: Entry): void;
  keys(): IterableIterator<string>;
  keysWithTag(tag: string): ReadonlySet<string> | undefined;
  clear(): void;
  readonly stats: StoreStats;
}

/** Fixed per-entry overhead charged to the budget: policy object, arrays, LRU node. */
export const ENTRY_OVERHEAD_BYTES = 1024;

/** May a stored body keep its whole ArrayBuffer instead of a copy of its bytes? Yes when the
 *  rest of it (typically the response head of the same socket read) is at most 1/8 of the body. */
export function mayKeepParent(bodyBytes: number, parentBytes: number): boolean {
  return parentBytes - bodyBytes <= bodyBytes >>> 3;
}

/** Bytes a stored body keeps alive: its ArrayBuffer when it was kept whole (mayKeepParent),
 *  else its own length (a slice of Node's shared pool is charged its length only). */
export function heldBytes(body: Buffer): number {
  const parent = body.buffer.byteLength;
  return parent !== body.length && mayKeepParent(body.length, parent) ? parent : body.length;
}

/** Bytes charged for an entry: its key, headers and secondary key, body and overhead. The
 *  secondary key's strings are held twice, in the entry and in its policy's request head. */
export function entrySize(key: string, headers: readonly string[], bodyBytes: number, varyNames: readonly string[] | null = null,
  varyValues: readonly string[] = [], tags: readonly string[] = []): number {
  let h = 0;
  for (const s of headers) h += s.length + 16;
  let v = 0;
  if (varyNames !== null) for (const s of varyNames) v += s.length + 16;
  for (const s of varyValues) v += s.length + 16;
  // Tags are held on the entry and again in the tag index: an origin naming thousands of
  // tags per response must pay for them in the budget.
  let g = 0;
  for (const s of tags) g += s.length + 16;
  return ENTRY_OVERHEAD_BYTES + key.length * 2 + h * 2 + v * 4 + g * 4 + bodyBytes;
}
