// lookup: the stored variant a request selects (RFC 9111 §4.1) and how fresh it is for this
// request (§4.2, §5.2.1), with what this cache adds: a soft purge, or a sidecar that may not
// trust its cache, demotes an entry. Synchronous: a fresh hit is decided here.
import type { IncomingMessage } from 'node:http';
import { parseCacheControl } from '../http/cache-control.js';
import { requestDirectives, Verdict, verdictFor, verdictOf, type RequestDirectives } from '../http/freshness.js';
import { isGzipTag } from '../http/compressible.js';
import { normaliseAcceptEncoding } from '../http/encoding.js';
import { rawGet, upstreamRequestHeaders, upstreamValue } from '../http/headers.js';
import { hasImplicitVaryField, IMPLICIT_VARY, type FieldView, type SecondaryKey } from '../http/vary.js';
import type { Cache } from '../store/cache.js';
import { EntrySource, variantKey, type Entry, type VariantKeyOf } from '../store/types.js';

/** Headers of ours or the client's that must not reach the origin on a cacheable fetch:
 *  we revalidate with our own validators and answer the client's from the cache. */
export const CACHEABLE_FETCH_DROP: ReadonlySet<string> = new Set([
  'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range', 'range',
  'x-sidecache-signature', 'x-sidecache-ts', 'x-sidecache-nonce', 'x-sidecache-from', 'x-sidecache-epoch', 'x-sidecache-cluster',
]);

/** A request's fields as a cacheable fetch sends them upstream: what its secondary key is made
 *  of (RFC 9111 §4.1), on a hit as on the fetch that stored the entry. Accept-Encoding goes in
 *  its normal form (http/encoding.ts), so `Vary: Accept-Encoding` makes at most four
 *  variants; it is normalised only here, for an entry that varies on it, never on other hits. */
export const asFetched: FieldView<IncomingMessage> = (req, name) => {
  const value = upstreamValue(req.headers, name, req.socket.remoteAddress, CACHEABLE_FETCH_DROP);
  return name === 'accept-encoding' ? normaliseAcceptEncoding(value) : value;
};

/** The request head of a cacheable fetch (miss or revalidation), before our validators: the
 *  client's fields as forwarded, Accept-Encoding normalised as asFetched reads it. */
export function cacheableFetchHead(req: IncomingMessage): Record<string, string | string[]> {
  const head = upstreamRequestHeaders(req.headers, req.socket.remoteAddress, CACHEABLE_FETCH_DROP);
  head['accept-encoding'] = normaliseAcceptEncoding(head['accept-encoding']);
  return head;
}

/** The request's Cache-Control (or Pragma) directives; undefined when it sends neither. */
export function directivesOf(req: IncomingMessage): RequestDirectives | undefined {
  const cc = req.headers['cache-control'];
  const pragma = req.headers.pragma;
  return cc === undefined && pragma === undefined ? undefined : requestDirectives(parseCacheControl(cc), pragma);
}

/** May a stored answer serve a request with Authorization (RFC 9111 §3.5)? */
export function sharedWithAuthorization(entry: Entry): boolean {
  const cc = parseCacheControl(rawGet(entry.headers, 'cache-control'));
  return cc.has('public') || cc.has('s-maxage') || cc.has('must-revalidate');
}

/** A hot copy of the gzip form an owner made (compress.ts): a Range is of the origin's bytes
 *  (README, Compression), which this copy does not hold, so it is not found for one. */
function isOwnersGzipForm(e: Entry): boolean {
  return e.source === EntrySource.hot && e.gzip === undefined && rawGet(e.headers, 'content-encoding') === 'gzip' &&
    (e.etag === undefined || isGzipTag(e.etag));
}

export class Lookup {
  readonly #cache: Cache;
  readonly #mustRevalidateAll: (() => boolean) | undefined;
  /** cache.lookup's variant key of a request, made once: no closure per request. */
  readonly #variantOf: VariantKeyOf<IncomingMessage>;

  constructor(cache: Cache, secondary: SecondaryKey, mustRevalidateAll: (() => boolean) | undefined) {
    this.#cache = cache;
    this.#mustRevalidateAll = mustRevalidateAll;
    // Most entries have no Vary of their own, only the implicit forwarding fields, and most
    // requests send none of them: that variant key is computed once, not on every hit.
    const noForwarded = variantKey(secondary.values(IMPLICIT_VARY, asFetched, { headers: {}, socket: {} } as IncomingMessage));
    this.#variantOf = (names, req) =>
      names === IMPLICIT_VARY && !hasImplicitVaryField(req.headers)
        ? noForwarded
        : variantKey(secondary.values(names, asFetched, req));
  }

  /** The stored variant `req` selects at `now`, or undefined. */
  find(key: string, req: IncomingMessage, now: number): Entry | undefined {
    const e = this.#cache.lookup(key, this.#variantOf, req, now);
    return e !== undefined && req.headers.range !== undefined && isOwnersGzipForm(e) ? undefined : e;
  }

  /** Freshness of a stored entry for this request. A soft purge demotes fresh to stale: it
   *  marks the entry stale, and stale-while-revalidate applies to it as to any stale entry
   *  (README, Admin API). A long detachment, a lapsed lease or a drop from the view demote
   *  stale-while-revalidate too: purges may have gone by without us, and it would serve the
   *  entry before asking the origin. stale-if-error still applies then: the origin has failed,
   *  and its own stale-if-error bound (RFC 5861 §4) is served instead of an error. */
  verdict(entry: Entry, now: number, dirs: RequestDirectives | undefined): Verdict {
    const v = dirs === undefined ? verdictOf(entry.freshness, now) : verdictFor(entry.freshness, now, dirs);
    if (v === Verdict.stale) return v;
    if (this.#mustRevalidateAll?.() === true) return Verdict.stale;
    return v === Verdict.fresh && entry.softPurged ? Verdict.stale : v;
  }
}
