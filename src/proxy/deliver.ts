// deliver: status, headers, Age, Cache-Status (RFC 9211), body, for every way a response
// leaves the sidecar. Cache-Status strings are assembled here and nowhere else.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { forbidsTransform, ifRangeNamesOtherForm } from '../http/compressible.js';
import { acceptsGzip } from '../http/encoding.js';
import { ageSec, Verdict, verdictOf } from '../http/freshness.js';
import { rawWithout, toRawHeaders, type HeaderObject } from '../http/headers.js';
import { ifRangeHolds, parseRange } from '../http/range.js';
import { encodePeerFence, PEER_FENCE_HEADER } from '../core/peer-fence.js';
import type { Fence } from '../core/types.js';
import { EntrySource, type Entry } from '../store/types.js';

/** Identity of this sidecar in Cache-Status, and whether to add debug parameters. */
export interface StatusContext {
  readonly detail: boolean;
  readonly node: string;
  readonly epoch: () => number;
  readonly seq: () => number;
}

/** "fwd" values of RFC 9211 §2.2 that we use. */
/** RFC 9211 §2.2's fwd values ('partial': parts were stored but did not cover the range asked for). */
export type Forward = 'uri-miss' | 'vary-miss' | 'stale' | 'request' | 'bypass' | 'method' | 'miss' | 'partial';

export interface StatusParts {
  readonly hit?: boolean;
  readonly fwd?: Forward;
  readonly fwdStatus?: number;
  readonly stored?: boolean;
  readonly collapsed?: boolean;
  readonly ttlSec?: number;
  readonly detail?: string;
  /** Cache-Status of the peer (owner) that served us, kept before ours (§2: closest to the user last). */
  readonly upstream?: string;
}

export function cacheStatus(ctx: StatusContext, p: StatusParts): string {
  let s = 'sidecache';
  if (p.hit) s += '; hit';
  if (p.fwd !== undefined) s += `; fwd=${p.fwd}`;
  if (p.fwdStatus !== undefined) s += `; fwd-status=${p.fwdStatus}`;
  if (p.stored) s += '; stored';
  if (p.collapsed) s += '; collapsed';
  if (ctx.detail) {
    if (p.ttlSec !== undefined) s += `; ttl=${Math.round(p.ttlSec)}`;
    s += `; node="${ctx.node}"; epoch=${ctx.epoch()}; seq=${ctx.seq()}`;
    if (p.detail !== undefined) s += `; detail="${p.detail}"`;
  }
  return p.upstream === undefined ? s : `${p.upstream}, ${s}`;
}

/** Strings kept by HitStatuses before it starts over: hits of entries with this many different
 *  remaining lifetimes (seconds) and sources within one epoch and seq. */
const HIT_STATUSES_MAX = 4096;

/**
 * Cache-Status of a fresh hit, `cacheStatus(ctx, { hit: true, ttlSec, detail: <non-local source> })`,
 * made once per (rounded ttl, source) while epoch and seq stay the same: a hit then costs a
 * Map lookup instead of building the string (and the string is already flat for the socket).
 */
export class HitStatuses {
  readonly #ctx: StatusContext;
  readonly #byKey = new Map<number, string>();
  #epoch = -1;
  #seq = -1;

  constructor(ctx: StatusContext) {
    this.#ctx = ctx;
  }

  get(ttlSec: number, source: EntrySource): string {
    const ctx = this.#ctx;
    const epoch = ctx.epoch();
    const seq = ctx.seq();
    if (epoch !== this.#epoch || seq !== this.#seq || this.#byKey.size >= HIT_STATUSES_MAX) {
      this.#byKey.clear();
      this.#epoch = epoch;
      this.#seq = seq;
    }
    const ttl = ctx.detail ? Math.round(ttlSec) : 0;
    const key = ttl * 4 + (source === EntrySource.local ? 0 : source === EntrySource.hot ? 1 : 2);
    let s = this.#byKey.get(key);
    if (s === undefined) {
      s = cacheStatus(ctx, { hit: true, ttlSec: ttl, ...(source === EntrySource.local ? {} : { detail: source }) });
      this.#byKey.set(key, s);
    }
    return s;
  }
}

function etagMatches(ifNoneMatch: string, etag: string): boolean {
  if (ifNoneMatch.trim() === '*') return true;
  const bare = etag.replace(/^W\//, '');
  for (const t of ifNoneMatch.split(',')) if (t.trim().replace(/^W\//, '') === bare) return true;
  return false;
}

/** RFC 9110 §13.1.2/§13.1.3 evaluated against a stored entry (the form served, of `etag`): may we answer 304? */
export function notModified(req: IncomingMessage, entry: Entry, etag = entry.etag): boolean {
  if (entry.status !== 200) return false;
  const inm = req.headers['if-none-match'];
  if (inm !== undefined) return etag !== undefined && etagMatches(inm, etag);
  const ims = req.headers['if-modified-since'];
  if (ims !== undefined && entry.lastModified !== undefined) {
    const since = Date.parse(ims);
    const modified = Date.parse(entry.lastModified);
    return Number.isFinite(since) && Number.isFinite(modified) && modified <= since;
  }
  return false;
}

const NOT_MODIFIED_KEEP = new Set(['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary', 'last-modified']);

/** Header pairs a peer needs with what we send it: the tags we strip for clients (to index
 *  it), and the fence of the body, without which it must not keep a copy (DESIGN invariant 1:
 *  a copy is fenced with the seq its source had applied, not the requester's). */
export function peerHeaders(tags: readonly string[], fence: Fence | undefined): string[] {
  const out = tags.length === 0 ? [] : ['surrogate-key', tags.join(' ')];
  if (fence !== undefined) out.push(PEER_FENCE_HEADER, encodePeerFence(fence));
  return out;
}

/** Serves a stored entry: 200/304/206/416, with Age and Cache-Status. Synchronous.
 *  `toPeer`: the request came from a peer, which must learn the entry's tags and fence. `extra`: header
 *  pairs for this response only (a 304's Set-Cookie for the client it answered). */
export function deliverEntry(
  req: IncomingMessage, res: ServerResponse, entry: Entry, now: number, status: string, toPeer = false, extra: readonly string[] = NO_HEADERS,
): void {
  // Kept in two codings (proxy/compress.ts): the gzip form, whole, to a client that accepts
  // gzip and asks for no range; the origin's form, with its own validators, to the others and
  // to every Range request, so byte offsets mean what they mean at the origin.
  // A request's own no-transform (RFC 9111 §5.2.1.6) asks for the origin's bytes; its
  // Cache-Control is read only for an entry that has a gzip form, to keep other hits cheap.
  const range = req.headers.range;
  const gz = entry.gzip !== undefined && range === undefined && acceptsGzip(req.headers['accept-encoding']) &&
    !forbidsTransform(req.headers['cache-control']) ? entry.gzip : undefined;
  const headers = gz === undefined ? entry.headers : gz.headers;
  const body = gz === undefined ? entry.body : gz.body;
  const age = String(Math.floor(ageSec(entry.freshness, now)));
  // A peer's conditional request is its own revalidation: a 304 would refresh its copy as if
  // the origin had confirmed it. A copy that is stale or soft-purged here (served under
  // stale-if-error or stale-while-revalidate) goes whole, with its Age, so the peer sees it.
  if ((req.headers['if-none-match'] !== undefined || req.headers['if-modified-since'] !== undefined) &&
      notModified(req, entry, gz === undefined ? entry.etag : gz.etag) &&
      !(toPeer && (entry.softPurged || verdictOf(entry.freshness, now) !== Verdict.fresh))) {
    const h: string[] = [];
    for (let i = 0; i < headers.length; i += 2) {
      if (NOT_MODIFIED_KEEP.has(headers[i]!)) h.push(headers[i]!, headers[i + 1]!);
    }
    h.push('age', age, 'cache-status', status, ...extra);
    if (toPeer) h.push(...peerHeaders([], { incarnation: entry.incarnation, seq: entry.fence }));
    res.writeHead(304, h);
    res.end();
    return;
  }
  // RFC 9110 §13.1.5: an If-Range that does not hold (strong comparison) asks for the whole.
  // A date is weak for an entry kept in two codings (§8.8.2.2): the client may hold the gzip
  // form of that date, so it never holds then.
  if (range !== undefined && entry.status === 200 && req.method === 'GET' && ifRangeAllows(req.headers['if-range'], entry)) {
    const r = parseRange(range, entry.body.length);
    if (r.kind === 'partial') {
      const h = rawWithout(entry.headers, 'content-length');
      h.push('content-range', `bytes ${r.start}-${r.end}/${entry.body.length}`, 'content-length', String(r.end - r.start + 1),
        'age', age, 'cache-status', status, ...extra);
      res.writeHead(206, h);
      res.end(entry.body.subarray(r.start, r.end + 1));
      return;
    }
    if (r.kind === 'unsatisfiable') {
      res.writeHead(416, ['content-range', `bytes */${entry.body.length}`, 'content-length', '0', 'cache-status', status, ...extra]);
      res.end();
      return;
    }
  }
  // The stored fields plus ours, written into an array that writeHead reads synchronously and
  // keeps no reference to: no new array per hit. One array per length, so none is ever resized.
  const base = headers;
  const n = base.length;
  const tagHeaders = toPeer ? peerHeaders(entry.tags, { incarnation: entry.incarnation, seq: entry.fence }) : NO_HEADERS;
  if (extra.length > 0) {
    res.writeHead(entry.status, [...base, 'age', age, 'cache-status', status, ...tagHeaders, ...extra]);
    res.end(body);
    return;
  }
  const h = scratch[n + 4 + tagHeaders.length] ??= [];
  for (let i = 0; i < n; i++) h[i] = base[i]!;
  h[n] = 'age';
  h[n + 1] = age;
  h[n + 2] = 'cache-status';
  h[n + 3] = status;
  for (let i = 0; i < tagHeaders.length; i++) h[n + 4 + i] = tagHeaders[i]!;
  res.writeHead(entry.status, h);
  res.end(body);
}

const NO_HEADERS: readonly string[] = [];

/** May a Range be answered as a range (RFC 9110 §13.1.5)? Yes without If-Range, or when it holds. */
function ifRangeAllows(ifRange: string | string[] | undefined, entry: Entry): boolean {
  if (ifRange === undefined) return true;
  return ifRangeHolds(ifRange, entry.etag, entry.lastModified) && (entry.gzip === undefined || !ifRangeNamesOtherForm(ifRange, true));
}

/** deliverEntry's header arrays for full responses by length, each overwritten by every response
 *  of that length. */
const scratch: string[][] = [];

/** A short plain-text error with its reason; never a body the client could cache. */
export function sendError(res: ServerResponse, status: number, reason: string, cacheStatusValue?: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `${status} ${reason}\n`;
  const h = ['content-type', 'text/plain; charset=utf-8', 'content-length', String(Buffer.byteLength(body)), 'cache-control', 'no-store'];
  if (cacheStatusValue !== undefined) h.push('cache-status', cacheStatusValue);
  res.writeHead(status, h);
  res.end(body);
}

const NOTHING: ReadonlySet<string> = new Set();

/**
 * An interim response relayed to the client as it arrives (RFC 9110 §15.2): `102 Processing`,
 * and `103 Early Hints` with its fields less the hop-by-hop ones (RFC 8297; node:http sends no
 * 103 without a Link). Never to an HTTP/1.0 client (§15.2: it cannot read one), never after
 * the final head; any other 1xx is dropped. Nothing of it is stored or joins the final response.
 */
export function relayInterim(req: IncomingMessage, res: ServerResponse, status: number, headers: HeaderObject): void {
  if (res.headersSent || res.writableEnded || res.destroyed) return;
  if (req.httpVersionMajor !== 1 || req.httpVersionMinor < 1) return;
  if (status === 102) {
    res.writeProcessing();
    return;
  }
  if (status !== 103) return;
  const raw = toRawHeaders(headers, NOTHING);
  const hints: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const prev = hints[raw[i]!];
    hints[raw[i]!] = prev === undefined ? raw[i + 1]! : [...(Array.isArray(prev) ? prev : [prev]), raw[i + 1]!];
  }
  try {
    res.writeEarlyHints(hints);
  } catch {
    // A Link value node:http refuses: the hint is lost, the response is not.
  }
}
