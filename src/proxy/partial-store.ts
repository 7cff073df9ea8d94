// Partial content in the store (RFC 9111 §3.3, §3.4): whether a 206 may be kept, and the entry
// it makes, alone or combined with the parts already held of the same representation.
//
// What is kept: a 206 storable by the §3 rules a 200 with its fields would be (judged as that
// 200: Cache-Control, freshness, no Set-Cookie, not private, §3.5 for Authorization, Vary *),
// with one single-part `Content-Range: bytes a-b/N` of known complete length N, N within
// SIDECACHE_MAX_ENTRY_BYTES, and a strong ETag. §3.4 combines parts only when their strong
// validators match; a Last-Modified may be strong (RFC 9110 §8.8.2.2) but only the origin
// knows, so a 206 without a strong ETag is passed to its client and not kept. A multipart/
// byteranges 206 has no Content-Range of its own and is not kept either.
//
// Fences, purges and flushes: a partial entry is an Entry in the same store as every other,
// so purges (url, prefix, tag, all), write invalidations and flushes find and remove it as
// they do full ones, and it is stored through Cache.store, which refuses it when an
// invalidation applied since its fence matches it. A combined entry is fenced with the older
// of the two fences (the held parts' and the new fetch's): it is clean of a purge only if both
// are. The held parts are read from the store in the same turn as the combined entry is
// stored, so parts a purge removed are never combined back.
//
// Replication: a partial entry stays on this member. It is not published as a fill (a fill
// is a whole body every owner could serve) and never served to a peer (peers ask for whole
// objects, and a partial entry answers only ranges). Once the parts cover 0..N-1 the entry
// becomes a complete 200 and is published like any entry this member fetched (an owner only).
import type { Fence } from '../core/types.js';
import { rawGet, rawWithout, toRawHeaders, VIA, type HeaderObject } from '../http/headers.js';
import { isStrongETag, parseContentRange, type ContentRange } from '../http/range.js';
import { admit, newPolicy, policyRequestOf, type CachePolicy } from '../http/storable.js';
import { objectView, secondaryKeyNames } from '../http/vary.js';
import { addPart, isComplete, partsSize, type PartSet } from '../store/parts.js';
import { entrySize, EntrySource, type Entry } from '../store/types.js';
import type { Pipeline } from './context.js';
import { chargedNames, tagsOf } from './admit.js';

/** What a range fetch's response may become here, decided at its head. */
export interface PartialAdmission {
  /** 206: the range it carries; undefined for a 200 (the whole representation). */
  readonly range: ContentRange | undefined;
  readonly status: 200 | 206;
  /** Stored fields: no Content-Length, no Content-Range (made per response). */
  readonly headers: readonly string[];
  readonly policy: CachePolicy;
  readonly freshness: Entry['freshness'];
  readonly keepUntil: number;
  readonly varyNames: readonly string[];
  readonly varyValues: readonly string[];
  readonly tags: readonly string[];
  readonly etag: string | undefined;
}

/** Fields of a 206 that describe the part, not the representation: never stored. */
const PART_FIELDS = ['content-length', 'content-range'];

/**
 * May the answer to a range fetch be kept, and as what? `upstream`: the request head the
 * secondary key is taken from (as a full fetch would send it, without Range). Returns the
 * admission, or the reason it is not kept.
 */
export function admitPartial(
  p: Pipeline, path: string, authorized: boolean, status: number, headers: HeaderObject,
  upstream: Record<string, string | string[]>, now: number,
): PartialAdmission | string {
  if (status !== 206 && status !== 200) return 'not a 200 or 206';
  const s = p.s;
  const range = status === 206 ? parseContentRange(headers['content-range']) : undefined;
  if (status === 206) {
    if (range === undefined) return 'partial content without one Content-Range of known length (multipart, or */N)';
    if (!isStrongETag(headers.etag as string | undefined)) return 'partial content without a strong ETag (RFC 9111 §3.4)';
    if (range.length > s.config.maxEntryBytes) return 'too large';
    const cl = headers['content-length'];
    if (cl !== undefined && Number(cl) !== range.end - range.start + 1) return 'Content-Length differs from Content-Range';
  } else {
    const cl = headers['content-length'];
    if (cl !== undefined && Number(cl) > s.config.maxEntryBytes) return 'too large';
  }
  // §3.3: a 206 is kept when the response would be storable as a whole; it is judged as the
  // 200 of its representation (http-cache-semantics stores no 206, and the entry it becomes
  // when complete is that 200).
  const asWhole: Record<string, string | string[]> = { ...(headers as Record<string, string | string[]>) };
  delete asWhole['content-range'];
  const res = { status: 200, headers: asWhole as Record<string, string> };
  const names = secondaryKeyNames(headers.vary);
  const values = p.secondary.values(names, objectView, upstream);
  const policy = newPolicy(policyRequestOf(path, names, values, authorized), res, now);
  const admission = admit(policy, res, now, s.config.defaultTtlMs);
  if (!admission.storable) return admission.reason;
  let raw = toRawHeaders(headers, p.dropOnStore);
  for (const name of PART_FIELDS) raw = rawWithout(raw, name);
  raw.push('via', headers.via === undefined ? VIA : `${String(headers.via)}, ${VIA}`);
  return {
    range,
    status,
    headers: raw,
    policy,
    freshness: admission.freshness,
    keepUntil: admission.keepUntil,
    varyNames: names,
    varyValues: values,
    tags: tagsOf(headers),
    etag: rawGet(raw, 'etag'),
  };
}

/** How a part joined what was held, for Cache-Status and inspection. */
export type PartOutcome = 'stored' | 'combined' | 'completed' | string;

/**
 * Stores the bytes of an admitted answer: alone, or combined with the held parts of the same
 * variant when their strong ETag, complete length and INVAL numbering are the same (§3.4);
 * otherwise it replaces them (they are of another representation). A complete object (a 200,
 * or parts covering 0..N-1) becomes a 200 entry. `hot`: this member does not own the key (kept
 * in the hot store, never published). Returns what happened, or why nothing was stored.
 */
export function storePartial(
  p: Pipeline, key: string, a: PartialAdmission, body: Buffer, fence: Fence, generation: number, hot: boolean,
): PartOutcome {
  const s = p.s;
  const cache = s.cache;
  const now = p.clock.now();
  const length = a.range === undefined ? body.length : a.range.length;
  if (length > s.config.maxEntryBytes) return 'too large';
  const held = cache.sameVariantAs({ key, varyNames: a.varyNames, varyValues: a.varyValues }, hot);
  // A whole stored response is worth more than parts of one: a range never replaces it (it is
  // revalidated or replaced by a full fetch). A 200 here is whole and replaces anything.
  if (a.range !== undefined && held !== undefined && held.parts === undefined && now < held.keepUntil) return 'a complete response is stored';
  // A 200 (the origin ignored the Range, or If-Range failed) is the whole representation.
  if (a.range === undefined) return store(p, completeEntry(key, a, body, fence.seq, fence.incarnation, hot), generation, hot) ? 'completed' : 'refused';
  let parts: PartSet | undefined;
  let fenceSeq = fence.seq;
  let combined = false;
  const joinable = held?.parts !== undefined && !held.softPurged && now < held.keepUntil && held.parts.length === length &&
    held.incarnation === fence.incarnation && isStrongETag(held.etag) && held.etag.trim() === a.etag?.trim();
  if (joinable) {
    parts = addPart(held.parts, length, a.range.start, body);
    if (parts === undefined) return 'too many parts';
    fenceSeq = Math.min(held.fence, fence.seq);
    combined = true;
  } else {
    parts = addPart(undefined, length, a.range.start, body);
  }
  if (parts === undefined) return 'part outside its complete length';
  if (isComplete(parts)) {
    const entry = completeEntry(key, a, parts.parts[0]!.bytes, fenceSeq, fence.incarnation, hot);
    return store(p, entry, generation, hot) ? 'completed' : 'refused';
  }
  const headers = a.headers as string[];
  const entry: Entry = {
    ...base(key, a, fenceSeq, fence.incarnation, hot),
    status: 206,
    headers,
    // Distinct per entry: the store tells a replaced body from a kept one by identity.
    body: Buffer.alloc(0),
    parts,
    size: entrySize(key, headers, partsSize(parts), chargedNames(a.varyNames), a.varyValues, a.tags),
  };
  return store(p, entry, generation, hot) ? (combined ? 'combined' : 'stored') : 'refused';
}

function store(p: Pipeline, entry: Entry, generation: number, hot: boolean): boolean {
  const s = p.s;
  if (!s.cache.store(entry, hot, generation)) {
    s.metrics.fillsRejected.inc();
    s.onNotStored?.(entry.key, 'an invalidation applied since the fetch began matches it, or the cache was flushed');
    return false;
  }
  // Published only whole (a partial entry stays here), and by an owner only (cluster/node.ts).
  if (entry.parts === undefined && !hot) s.onStored?.(entry);
  return true;
}

function base(key: string, a: PartialAdmission, fence: number, incarnation: string, hot: boolean) {
  return {
    key,
    varyNames: a.varyNames,
    varyValues: a.varyValues,
    policy: a.policy,
    freshness: a.freshness,
    keepUntil: a.keepUntil,
    tags: a.tags,
    fence,
    incarnation,
    etag: a.etag,
    lastModified: rawGet(a.headers, 'last-modified'),
    source: hot ? EntrySource.hot : EntrySource.local,
    fillSeq: 0,
    softPurged: false,
  };
}

/** The 200 entry of a whole representation: the newest response's fields (§3.4), its length. */
function completeEntry(key: string, a: PartialAdmission, body: Buffer, fence: number, incarnation: string, hot: boolean): Entry {
  const headers = [...a.headers, 'content-length', String(body.length)];
  return {
    ...base(key, a, fence, incarnation, hot),
    status: 200,
    headers,
    body,
    size: entrySize(key, headers, body.length, chargedNames(a.varyNames), a.varyValues, a.tags),
  };
}
