// partial: range requests and partial entries (RFC 9111 §3.3, §3.4; RFC 9110 §14). A range
// of an object held whole is answered by deliver.ts. Here: a range inside the parts held of
// a partial entry is answered from them (206, If-Range by strong comparison); any other range
// of a key without a whole entry is fetched from the origin with the client's Range (and
// If-Range) as sent (neither when the If-Range names our gzip form: fetchRange), streamed to
// that client alone, and its answer kept as parts (partial-store.ts) when it may be. Range fetches are not collapsed: each asks for its own
// bytes. A non-range request never gets a partial entry: for it the key is a miss.
//
// In a cluster, a range fetch goes from the member the client asked straight to the origin,
// as a pass did before partial storage (a forward to the owner carries no Range: it asks for
// the whole object). The parts are kept where they were fetched: in the owned store on an
// owner (or standalone), in the hot set elsewhere, and never published until complete.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errors as undiciErrors } from 'undici';
import { SidecacheError } from '../core/errors.js';
import type { Fence } from '../core/types.js';
import { ifRangeNamesOtherForm } from '../http/compressible.js';
import { ageSec } from '../http/freshness.js';
import { combineFieldLines, toRawHeaders, VIA, type HeaderObject } from '../http/headers.js';
import { ifRangeHolds, parseRange } from '../http/range.js';
import { sliceOf } from '../store/parts.js';
import type { Entry } from '../store/types.js';
import type { Pipeline } from './context.js';
import { cacheStatus, relayInterim, sendError, type StatusParts } from './deliver.js';
import { cacheableFetchHead } from './lookup.js';
import type { BodyControl, OriginSink } from './origin.js';
import { admitPartial, storePartial, type PartialAdmission } from './partial-store.js';
import type { Target } from './recv.js';

/** Request fields that make a range request conditional in ways a stored part cannot answer:
 *  such a request is passed through as before (If-Range is answered, see deliverPart). */
const CONDITIONALS = ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since'];

/** May a request be answered from parts, or fetched as a range to keep? A GET with Range and
 *  no other precondition than If-Range (RFC 9110 §14.2: Range means nothing on other methods). */
export function isRangeGet(req: IncomingMessage): boolean {
  if (req.method !== 'GET' || req.headers.range === undefined) return false;
  for (const name of CONDITIONALS) if (req.headers[name] !== undefined) return false;
  return true;
}

/**
 * Answers a range request from a partial entry when the range lies wholly inside the parts
 * held and If-Range holds (RFC 9110 §13.1.5, strong comparison): 206 with its Content-Range,
 * Content-Length and Age. A range past the complete length is 416 (§15.5.17), known from the
 * held Content-Range. Returns false, having written nothing, when the parts cannot answer.
 */
export function deliverPart(req: IncomingMessage, res: ServerResponse, entry: Entry, now: number, status: string): boolean {
  const parts = entry.parts!;
  const header = req.headers.range;
  if (typeof header !== 'string' || !ifRangeHolds(req.headers['if-range'], entry.etag, entry.lastModified)) return false;
  const r = parseRange(header, parts.length);
  if (r.kind === 'unsatisfiable') {
    res.writeHead(416, ['content-range', `bytes */${parts.length}`, 'content-length', '0', 'cache-status', status]);
    res.end();
    return true;
  }
  // Several ranges or an unreadable header: the whole object would be the answer, which a
  // partial entry does not have.
  if (r.kind !== 'partial') return false;
  const body = sliceOf(parts, r.start, r.end);
  if (body === undefined) return false;
  const h = [...entry.headers, 'content-range', `bytes ${r.start}-${r.end}/${parts.length}`, 'content-length', String(body.length),
    'age', String(Math.floor(ageSec(entry.freshness, now))), 'cache-status', status];
  res.writeHead(206, h);
  res.end(body);
  return true;
}

/**
 * A range fetch from the origin for `key`: the client's request as a cacheable fetch sends it
 * (the secondary key is taken from that), plus its Range and If-Range. `held`: the partial
 * entry found for it, if any (Cache-Status says the stored parts could not answer).
 */
export function fetchRange(p: Pipeline, req: IncomingMessage, res: ServerResponse, target: Target, key: string, held: Entry | undefined): void {
  const s = p.s;
  // The fence and generation when the fetch began (DESIGN: fence): what it stores is refused
  // when an invalidation applied since then matches it, as for every fill (Cache.store).
  const fence: Fence = { incarnation: s.log.incarnation, seq: s.log.appliedSeq };
  const generation = s.cache.generation;
  const upstream = cacheableFetchHead(req);
  const headers: Record<string, string | string[]> = { ...upstream };
  const ifRange = req.headers['if-range'];
  // An If-Range naming our gzip form, or a date with compression on, never holds against the
  // origin's bytes (ifRangeNamesOtherForm): the whole object is asked for, without either.
  if (ifRange === undefined || !ifRangeNamesOtherForm(ifRange, s.config.compress)) {
    headers.range = req.headers.range!;
    if (ifRange !== undefined) headers['if-range'] = ifRange;
  }
  // Another member owns the key: what we keep of it is a hot copy, never published.
  const hot = s.router.peersFor(key) !== undefined;
  const sink = new RangeFetch(p, req, res, target, key, upstream, fence, generation, hot, held !== undefined);
  s.metrics.originRequests.inc();
  const call = s.origin.dispatch({ origin: target.origin, path: target.path, method: 'GET', headers }, sink);
  // The client went away before the response was complete: stop the origin's too (what came
  // of the part is not kept: only a whole part is).
  res.once('close', () => {
    if (res.writableFinished) return;
    sink.abort();
    call.destroy(new undiciErrors.RequestAbortedError());
  });
}

/** Body bytes range fetches hold while they wait to be kept, per cache (one per sidecar): range
 *  fetches are not collapsed, so many clients asking for ranges of one large object would each
 *  hold a copy. Past an eighth of SIDECACHE_MAX_BYTES a range fetch streams on without keeping. */
const buffered = new WeakMap<object, { bytes: number }>();

class RangeFetch implements OriginSink {
  #body: BodyControl | undefined;
  #admission: PartialAdmission | undefined;
  #chunks: Buffer[] = [];
  #bytes = 0;
  /** Bytes in #chunks, counted in the shared #held. */
  #kept = 0;
  #over = false;

  constructor(
    readonly p: Pipeline, readonly req: IncomingMessage, readonly res: ServerResponse, readonly target: Target, readonly key: string,
    readonly upstream: Record<string, string | string[]>, readonly fence: Fence, readonly generation: number, readonly hot: boolean,
    readonly held: boolean,
  ) {
    this.#writeSeq = p.flights.writeSeq;
  }

  /** Writes through this sidecar when the fetch began (Flights.writtenSince): a range fetch is in
   *  no flight table, so a write to its key is found here before it stores (read-your-writes). */
  readonly #writeSeq: number;

  abort(): void {
    this.#over = true;
    this.#drop();
  }

  /** The shared count of bytes held by range fetches of this sidecar. */
  get #held(): { bytes: number } {
    let h = buffered.get(this.p.s.cache);
    if (h === undefined) buffered.set(this.p.s.cache, h = { bytes: 0 });
    return h;
  }

  /** Lets go of what was held for keeping: the part will not be kept. */
  #drop(): void {
    if (this.#chunks.length > 0) this.#held.bytes -= this.#kept;
    this.#chunks = [];
    this.#kept = 0;
    this.#admission = undefined;
  }

  onInfo(status: number, headers: HeaderObject): void {
    relayInterim(this.req, this.res, status, headers);
  }

  onHead(status: number, upHeaders: HeaderObject, body: BodyControl): void {
    if (this.#over) {
      body.destroy();
      return;
    }
    this.#body = body;
    const p = this.p;
    const headers = combineFieldLines(upHeaders);
    const now = p.clock.now();
    const a = admitPartial(p, this.target.path, this.req.headers.authorization !== undefined, status, headers, this.upstream, now);
    let parts: StatusParts;
    const fwd = this.held ? 'partial' : 'uri-miss';
    if (typeof a === 'string') {
      p.s.onNotStored?.(this.key, a);
      parts = { fwd, fwdStatus: status, detail: a };
    } else {
      this.#admission = a;
      parts = { fwd, fwdStatus: status, stored: true };
    }
    try {
      const raw = toRawHeaders(headers, p.dropOnPass);
      raw.push('via', VIA, 'cache-status', cacheStatus(p.statusCtx, parts));
      this.res.writeHead(status, raw);
    } catch (err) {
      this.#over = true;
      body.destroy();
      this.#fail(err);
      return;
    }
    this.res.on('drain', () => body.resume());
  }

  onData(chunk: Buffer): void {
    if (this.#over) return;
    if (this.#admission !== undefined) {
      this.#bytes += chunk.length;
      const held = this.#held;
      if (this.#bytes > this.p.s.config.maxEntryBytes || held.bytes + chunk.length > this.p.s.config.maxBytes / 8) {
        if (this.#bytes <= this.p.s.config.maxEntryBytes) this.p.s.onNotStored?.(this.key, 'range fetches hold an eighth of SIDECACHE_MAX_BYTES already');
        this.#drop();
      } else {
        this.#chunks.push(chunk);
        this.#kept += chunk.length;
        held.bytes += chunk.length;
      }
    }
    if (!this.res.write(chunk)) this.#body?.pause();
  }

  onEnd(): void {
    if (this.#over) return;
    this.#over = true;
    const a = this.#admission;
    if (a !== undefined) this.#keep(a);
    this.#drop();
    this.res.end();
  }

  onError(err: unknown): void {
    if (this.#over) return;
    this.#over = true;
    this.#drop();
    this.#fail(err);
  }

  #keep(a: PartialAdmission): void {
    const expected = a.range === undefined ? undefined : a.range.end - a.range.start + 1;
    // A body shorter or longer than its Content-Range said is not the part it claims to be.
    if (expected !== undefined && this.#bytes !== expected) {
      this.p.s.onNotStored?.(this.key, 'body length differs from Content-Range');
      return;
    }
    // One owned Buffer: socket chunks are views of larger reads that must not stay alive.
    const body = Buffer.allocUnsafeSlow(this.#bytes);
    let offset = 0;
    for (const c of this.#chunks) offset += c.copy(body, offset);
    if (this.p.flights.writtenSince(this.key, this.#writeSeq)) {
      this.p.s.onNotStored?.(this.key, 'a write through this sidecar removed the key while it was fetched');
      return;
    }
    const outcome = storePartial(this.p, this.key, a, body, this.fence, this.generation, this.hot);
    if (outcome !== 'stored' && outcome !== 'combined' && outcome !== 'completed' && outcome !== 'refused') {
      this.p.s.onNotStored?.(this.key, outcome);
    }
  }

  #fail(err: unknown): void {
    const res = this.res;
    if (res.headersSent || res.destroyed) {
      // Mid-body: cut the connection, the only honest signal left.
      res.destroy();
      return;
    }
    const s = this.p.s;
    s.metrics.originErrors.labels(err instanceof SidecacheError ? err.code : 'unknown').inc();
    const status = err instanceof SidecacheError && err.status !== undefined ? err.status : 502;
    sendError(res, status, (err as Error).message, cacheStatus(this.p.statusCtx, { fwd: this.held ? 'partial' : 'uri-miss', detail: 'origin error' }));
  }
}
