// The data path, top to bottom like Varnish: recv -> hash -> lookup -> hit / miss ->
// fetch -> deliver. Hits are served synchronously; only fetch and forward are async.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from '../core/config.js';
import { SidecacheError } from '../core/errors.js';
import { errors as undiciErrors } from 'undici';
import { parseCacheControl } from '../http/cache-control.js';
import { canServeOnError, requestDirectives, Verdict, verdictFor, verdictOf, type RequestDirectives } from '../http/freshness.js';
import { combineFieldLines, rawGet, rawWithout, toRawHeaders, upstreamRequestHeaders, upstreamValue, VIA, type HeaderObject } from '../http/headers.js';
import { invalidatesOnResponse, relatedTargets } from '../http/invalidate.js';
import { admit, CachePolicy, freshnessOf, isUpdateFor, keepUntilOf, newPolicy, policyRequestOf, revalidatedPolicy } from '../http/storable.js';
import { hasImplicitVaryField, IMPLICIT_VARY, objectView, SecondaryKey, secondaryKeyNames, secondaryKeySecret, type FieldView } from '../http/vary.js';
import { decodePeerFence, PEER_FENCE_HEADER } from '../core/peer-fence.js';
import type { Fence, Invalidation, LogPosition } from '../core/types.js';
import { CacheOutcome, type Metrics } from '../core/metrics.js';
import type { Cache } from '../store/cache.js';
import { entrySize, EntrySource, heldBytes, mayKeepParent, variantKey, type Entry, type VariantKeyOf } from '../store/types.js';
import { cacheStatus, deliverEntry, HitStatuses, peerHeaders, relayInterim, sendError, type StatusContext, type StatusParts } from './deliver.js';
import { Flights, type Flight, type FlightHead } from './flight.js';
import { keyOf, keyOptions, type KeyOptions } from './key.js';
import type { BodyControl, OriginClient, OriginRequest, OriginResponse, OriginSink } from './origin.js';
import { isRefusal, Receiver, type Refusal, type Target } from './recv.js';
import type { Router } from './route.js';
import { WriteInvalidations } from './write-invalidations.js';

export interface Services {
  readonly config: Config;
  readonly cache: Cache;
  readonly origin: OriginClient;
  readonly log: LogPosition;
  readonly router: Router;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Called after an entry is stored here as its owner: replicate it (cluster mode). */
  readonly onStored?: (entry: Entry) => void;
  /** True while the sidecar may not trust its cache without revalidation (detached too long). */
  readonly mustRevalidateAll?: () => boolean;
  /** Where write invalidations go: to the log, queued while it cannot take them. */
  readonly writeQueue: { submit(inval: Invalidation): void };
  /** A response for `key` was not stored, and why (sidecache inspect). Miss path only. */
  readonly onNotStored?: (key: string, reason: string) => void;
}

/** Headers of ours or the client's that must not reach the origin on a cacheable fetch:
 *  we revalidate with our own validators and answer the client's from the cache. */
const CACHEABLE_FETCH_DROP: ReadonlySet<string> = new Set([
  'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range', 'range',
  'x-sidecache-signature', 'x-sidecache-ts', 'x-sidecache-nonce', 'x-sidecache-from', 'x-sidecache-epoch', 'x-sidecache-cluster',
]);
const PASS_DROP: ReadonlySet<string> = new Set([
  'x-sidecache-signature', 'x-sidecache-ts', 'x-sidecache-nonce', 'x-sidecache-from', 'x-sidecache-epoch', 'x-sidecache-cluster',
]);

export interface RequestContext {
  /** The request came from a peer that chose us as owner: never forward again (one hop). */
  readonly fromPeer: boolean;
}

const LOCAL: RequestContext = { fromPeer: false };

/** Coalesced write invalidations wait this long for others; at most this many parent paths go
 *  out per interval (each costs every member a scan of its keys), more become their origins. */
const WRITE_FLUSH_INTERVAL_MS = 250;
const WRITE_MAX_PREFIXES = 8;

/** At most one warning per this long about peers whose answers carry no fence we can read
 *  (a member of another version during a rolling upgrade sends one with every answer). */
const FENCE_WARN_INTERVAL_MS = 60_000;

/** The body as one Buffer that keeps no more memory alive than it is charged for (heldBytes):
 *  socket chunks are views into the socket read's ArrayBuffer. A body that came in one read is
 *  kept as it is when the rest of that read (the response head) is small: copying it would
 *  allocate a second buffer per fill and leave the read as garbage, which V8 frees late and
 *  which fragments the malloc heap (RSS far past the budget). Anything else is copied into one
 *  exact Buffer, since keeping a slice of a larger read would keep the whole read alive. */
function ownedBody(chunks: readonly Buffer[], bytes: number): Buffer {
  const first = chunks[0];
  if (chunks.length === 1 && first !== undefined && mayKeepParent(bytes, first.buffer.byteLength)) return first;
  const out = Buffer.allocUnsafeSlow(bytes);
  let offset = 0;
  for (const c of chunks) offset += c.copy(out, offset);
  return out;
}

/** A request's fields as a cacheable fetch sends them upstream: what its secondary key is made
 *  of (RFC 9111 §4.1), on a hit as on the fetch that stored the entry. */
const asFetched: FieldView<IncomingMessage> = (req, name) =>
  upstreamValue(req.headers, name, req.socket.remoteAddress, CACHEABLE_FETCH_DROP);

/** The Vary names an entry is charged for (entrySize): IMPLICIT_VARY is one array, shared by
 *  every entry without a Vary of its own and held once, so those entries pay for their values only. */
function chargedNames(names: readonly string[] | null): readonly string[] | null {
  return names === IMPLICIT_VARY ? null : names;
}

/** Does the request carry content (RFC 9112 §6.3: Transfer-Encoding, or a Content-Length above 0)? */
function hasRequestBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  return (cl !== undefined && cl !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/** Header pairs of a 304's Set-Cookie, for the one client whose request drew it. */
function setCookiePairs(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const out: string[] = [];
  for (const v of Array.isArray(value) ? value : [value]) out.push('set-cookie', v);
  return out;
}

function tagsOf(headers: HeaderObject): string[] {
  const out: string[] = [];
  const sk = headers['surrogate-key'];
  if (sk !== undefined) for (const t of String(sk).split(/\s+/)) if (t !== '') out.push(t);
  const ct = headers['cache-tag'];
  if (ct !== undefined) for (const t of String(ct).split(',')) if (t.trim() !== '') out.push(t.trim());
  return out;
}

/** The ProxyHandler's steps a FlightFetch calls back into. */
interface FetchHost {
  /** The head arrived: settle the flight, or start streaming (fetch.streaming = true). May throw. */
  response(f: FlightFetch, status: number, headers: HeaderObject, body: BodyControl): void;
  /** No response (fetch error, counted as an origin error when `f.fromOrigin`), or one we could not handle. */
  failure(f: FlightFetch, err: unknown, fetchError: boolean): void;
  bodyEnd(f: FlightFetch): void;
  bodyError(f: FlightFetch, err: Error): void;
}

const WAITING = 0;
const STREAMING = 1;
const OVER = 2;

/** One fetch of a flight, from the origin or an owning peer: the sink its response feeds, and
 *  what the end of the body needs to store the entry. Plain fields, no closures per request. */
class FlightFetch implements OriginSink {
  #state = WAITING;
  /** The origin itself is asked (not a peer): a failure counts as an origin error. */
  fromOrigin = false;
  head: FlightHead | undefined;
  policy: CachePolicy | undefined;
  admission: ReturnType<typeof admit> | undefined;
  storable = false;
  /** The request head as sent (before our validators): the secondary key is taken from it. */
  upstream: Record<string, string | string[]> = {};
  /** Owners to ask, in order; undefined: the origin. */
  peers: readonly string[] | undefined;
  /** Our validators went with the request: a 304 may refresh `stale`. */
  conditional = false;
  /** Another member owns the key: what we keep of it is a hot copy, even when the origin
   *  answered us directly (no owner reachable, or an owner's copy we could not use). */
  notOwner = false;

  constructor(
    readonly host: FetchHost,
    readonly flight: Flight,
    readonly req: IncomingMessage,
    readonly res: ServerResponse | undefined,
    readonly target: Target,
    readonly key: string,
    readonly stale: Entry | undefined,
    readonly fwd: 'uri-miss' | 'stale',
    readonly viaPeer: boolean,
    readonly toPeer: boolean,
    readonly maxBytes: number,
  ) {}

  /** Called by the host's response step: the body goes into the flight. */
  stream(): void {
    this.#state = STREAMING;
  }

  onInfo(status: number, headers: HeaderObject): void {
    // The client that started the fetch hears it; waiters join at the final head.
    if (this.#state === WAITING && this.res !== undefined) relayInterim(this.req, this.res, status, headers);
  }

  onHead(status: number, headers: HeaderObject, body: BodyControl): void {
    if (this.#state !== WAITING) return;
    this.#state = OVER;
    try {
      this.host.response(this, status, combineFieldLines(headers), body);
    } catch (err) {
      // A response we could not handle must still answer the client and the waiters.
      this.#state = OVER;
      body.destroy();
      this.host.failure(this, err, false);
    }
  }

  onData(chunk: Buffer): void {
    if (this.#state === STREAMING) this.flight.chunk(chunk, this.maxBytes);
  }

  onEnd(): void {
    if (this.#state !== STREAMING) return;
    this.#state = OVER;
    this.host.bodyEnd(this);
  }

  onError(err: unknown): void {
    const state = this.#state;
    this.#state = OVER;
    if (state === WAITING) this.host.failure(this, err, true);
    else if (state === STREAMING) this.host.bodyError(this, err instanceof Error ? err : new Error(String(err)));
  }
}

/** A peer's response (a Readable) fed into a sink like an origin fetch. */
function feedSink(up: OriginResponse, sink: OriginSink): void {
  const body = up.body;
  sink.onHead(up.status, up.headers, body);
  body.on('data', (c: Buffer) => sink.onData(c));
  body.on('end', () => sink.onEnd());
  body.on('error', (err) => sink.onError(err));
}

export class ProxyHandler {
  readonly #s: Services;
  readonly #recv: Receiver;
  readonly #keyOpts: KeyOptions;
  readonly #flights = new Flights();
  readonly #statusCtx: StatusContext;
  readonly #hitStatuses: HitStatuses;
  readonly #dropOnStore: ReadonlySet<string>;
  readonly #dropOnPass: ReadonlySet<string>;
  readonly #fetchHost: FetchHost;
  readonly #hitIndex: number;
  readonly #writes: WriteInvalidations;
  readonly #secondary: SecondaryKey;
  /** cache.lookup's variant key of a request, made once: no closure per request. */
  readonly #variantOf: VariantKeyOf<IncomingMessage>;
  #inFlight = 0;
  #fenceWarnedAt = -Infinity;

  constructor(s: Services) {
    this.#s = s;
    this.#recv = new Receiver(s.config);
    this.#keyOpts = keyOptions(s.config);
    this.#statusCtx = {
      detail: s.config.cacheStatusDetail,
      node: s.config.nodeId,
      epoch: () => s.log.view.epoch,
      seq: () => s.log.appliedSeq,
    };
    this.#hitStatuses = new HitStatuses(this.#statusCtx);
    this.#writes = new WriteInvalidations({
      ratePerSec: s.config.writeInvalRate,
      flushIntervalMs: WRITE_FLUSH_INTERVAL_MS,
      maxPrefixes: WRITE_MAX_PREFIXES,
      publish: (inval) => s.writeQueue.submit(inval),
      onCoalesced: (n) => s.metrics.writeInvalidationsCoalesced.inc(n),
    });
    const tagHeaders = s.config.stripTagHeaders ? ['surrogate-key', 'cache-tag'] : [];
    // A fence field is ours, added for peers only: never stored, never passed on from upstream.
    this.#dropOnStore = new Set(['age', 'cache-status', 'via', PEER_FENCE_HEADER, ...tagHeaders]);
    this.#dropOnPass = new Set(['via', 'cache-status', PEER_FENCE_HEADER, ...tagHeaders]);
    this.#fetchHost = {
      response: (f, status, headers, body) => this.#onResponse(f, status, headers, body),
      failure: (f, err, fetchError) => {
        if (fetchError && f.fromOrigin) this.#s.metrics.originErrors.labels(err instanceof SidecacheError ? err.code : 'unknown').inc();
        this.#onFailure(f.flight, f.req, f.res, f.stale, err, f.fwd, f.toPeer);
      },
      bodyEnd: (f) => this.#onBodyEnd(f),
      bodyError: (f, err) => {
        this.#s.logger.warn({ key: f.key, err: err.message }, 'origin body failed');
        this.#s.metrics.originErrors.labels('body').inc();
        f.flight.fail(err);
        this.#flights.finish(f.flight);
      },
    };
    this.#hitIndex = s.metrics.requests.indexOf(CacheOutcome.hit);
    const secondary = new SecondaryKey(secondaryKeySecret(s.config.clusterSecret));
    this.#secondary = secondary;
    // Most entries have no Vary of their own, only the implicit forwarding fields, and most
    // requests send none of them: that variant key is computed once, not on every hit.
    const noForwarded = variantKey(secondary.values(IMPLICIT_VARY, asFetched, { headers: {}, socket: {} } as IncomingMessage));
    this.#variantOf = (names, req) =>
      names === IMPLICIT_VARY && !hasImplicitVaryField(req.headers)
        ? noForwarded
        : variantKey(secondary.values(names, asFetched, req));
  }

  get flights(): Flights {
    return this.#flights;
  }

  /** Requests being answered now (drain waits for 0). */
  get inFlight(): number {
    return this.#inFlight;
  }

  get receiver(): Receiver {
    return this.#recv;
  }

  /** The key of a canonical target at `keyOrigin` (purges). */
  keyOf(keyOrigin: string, target: string): string {
    return keyOf(keyOrigin, target, this.#keyOpts);
  }

  /** Outcome metrics for a response that finishes later: counted when it closes. */
  #track(res: ServerResponse, startedAt: number): (o: CacheOutcome) => void {
    this.#inFlight++;
    let outcome: CacheOutcome = CacheOutcome.error;
    res.once('close', () => {
      this.#inFlight--;
      this.#s.metrics.requests.observe(outcome, (performance.now() - startedAt) / 1000);
    });
    return (o) => { outcome = o; };
  }

  /** Request listener of the proxy (and, with fromPeer, of the peer port). A fresh hit is
   *  served and counted synchronously: no listener, no closure, no await. */
  handle(req: IncomingMessage, res: ServerResponse, ctx: RequestContext = LOCAL): void {
    const startedAt = performance.now();
    // recv
    const target = this.#recv.target(req);
    const method = req.method;
    if (!isRefusal(target) && (method === 'GET' || method === 'HEAD') &&
        req.headers['cache-control'] === undefined && req.headers.pragma === undefined && req.headers.authorization === undefined &&
        req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined) {
      const key = keyOf(target.keyOrigin, target.path, this.#keyOpts);
      const now = Date.now();
      const entry = this.#s.cache.lookup(key, this.#variantOf, req, now);
      if (entry !== undefined && this.#verdict(entry, now, undefined) === Verdict.fresh) {
        deliverEntry(req, res, entry, now, this.#hitStatus(entry, now), ctx.fromPeer);
        this.#s.metrics.requests.observeAt(this.#hitIndex, (performance.now() - startedAt) / 1000);
        return;
      }
      // Not fresh here: the slow path goes on with this key and lookup.
      this.#handleSlow(req, res, ctx, startedAt, target, key, entry ?? null, now);
      return;
    }
    this.#handleSlow(req, res, ctx, startedAt, target);
  }

  /** Freshness of a stored entry for this request. A soft purge demotes fresh to stale: it
   *  marks the entry stale, and stale-while-revalidate applies to it as to any stale entry
   *  (README, Admin API). A long detachment, a lapsed lease or a drop from the view demote
   *  stale-while-revalidate too: purges may have gone by without us, and it would serve the
   *  entry before asking the origin. stale-if-error still applies then: the origin has failed,
   *  and its own stale-if-error bound (RFC 5861 §4) is served instead of an error. */
  #verdict(entry: Entry, now: number, dirs: RequestDirectives | undefined): Verdict {
    const v = dirs === undefined ? verdictOf(entry.freshness, now) : verdictFor(entry.freshness, now, dirs);
    if (v === Verdict.stale) return v;
    if (this.#s.mustRevalidateAll?.() === true) return Verdict.stale;
    return v === Verdict.fresh && entry.softPurged ? Verdict.stale : v;
  }

  /** `knownKey`, `looked`, `lookedAt`: the fast path's key and lookup (null: nothing found) when it made them. */
  #handleSlow(
    req: IncomingMessage, res: ServerResponse, ctx: RequestContext, startedAt: number, target: Target | Refusal,
    knownKey?: string, looked?: Entry | null, lookedAt?: number,
  ): void {
    // A request pipelined behind one refused with close: nothing more is read or forwarded.
    if (req.socket.writableEnded) {
      res.destroy();
      return;
    }
    const setOutcome = this.#track(res, startedAt);

    if (isRefusal(target)) {
      this.#s.metrics.clientErrors.labels(String(target.status)).inc();
      if (target.close === true) res.shouldKeepAlive = false;
      sendError(res, target.status, target.reason, cacheStatus(this.#statusCtx, { fwd: 'request', detail: 'refused' }));
      // node:http goes on parsing what the client pipelined behind this request; ending our
      // side now makes every later request on the connection stop at the check below.
      if (target.close === true) req.socket.end();
      else this.#drainRequest(req);
      return;
    }
    const method = req.method!;
    if (method !== 'GET' && method !== 'HEAD') {
      setOutcome(CacheOutcome.pass);
      this.#pass(req, res, target, 'method');
      return;
    }
    if (hasRequestBody(req)) {
      // A "fat GET": RFC 9110 §9.3.1 gives its content no meaning, yet some origins answer by
      // it (search APIs). The key cannot hold the body, so the request goes to the origin as
      // sent, body and all, and its answer is neither stored nor served from the cache.
      setOutcome(CacheOutcome.pass);
      this.#pass(req, res, target, 'request', 'request body');
      return;
    }

    // hash
    const key = knownKey ?? keyOf(target.keyOrigin, target.path, this.#keyOpts);
    const cc = req.headers['cache-control'];
    const pragma = req.headers.pragma;
    const dirs = cc === undefined && pragma === undefined ? undefined : requestDirectives(parseCacheControl(cc), pragma);
    if (dirs?.noStore) {
      setOutcome(CacheOutcome.pass);
      this.#pass(req, res, target, 'request', 'no-store');
      return;
    }

    // lookup
    const now = lookedAt ?? Date.now();
    const found = looked === undefined ? this.#s.cache.lookup(key, this.#variantOf, req, now) : looked ?? undefined;
    // RFC 9111 §3.5 lets an origin share an answer with signed-in requests by public, s-maxage or
    // must-revalidate. Without one of them, a request with Authorization is not answered from
    // what other clients caused: an origin that personalises by Authorization without Vary would
    // hand a signed-in user the anonymous page (Varnish's builtin passes such requests).
    const entry = found !== undefined && req.headers.authorization !== undefined && !sharedWithAuthorization(found) ? undefined : found;
    if (entry !== undefined) {
      const verdict = this.#verdict(entry, now, dirs);
      if (verdict === Verdict.fresh) {
        setOutcome(CacheOutcome.hit);
        deliverEntry(req, res, entry, now, this.#hitStatus(entry, now), ctx.fromPeer);
        return;
      }
      if (verdict === Verdict.staleWhileRevalidate) {
        setOutcome(CacheOutcome.stale);
        deliverEntry(req, res, entry, now, cacheStatus(this.#statusCtx, { hit: true, detail: 'stale-while-revalidate' }), ctx.fromPeer);
        if (this.#flights.get(key) === undefined) this.#fetch(req, undefined, target, key, entry, LOCAL, () => {});
        return;
      }
      if (dirs?.onlyIfCached) {
        // RFC 9111 §5.2.1.7: never go to the origin; a stale entry the client did not accept is a 504.
        setOutcome(CacheOutcome.miss);
        sendError(res, 504, 'not fresh in cache (only-if-cached)', cacheStatus(this.#statusCtx, { fwd: 'stale', detail: 'only-if-cached' }));
        return;
      }
      this.#fetch(req, res, target, key, entry, ctx, setOutcome);
      return;
    }
    if (dirs?.onlyIfCached) {
      setOutcome(CacheOutcome.miss);
      sendError(res, 504, 'not cached (only-if-cached)', cacheStatus(this.#statusCtx, { fwd: 'uri-miss', detail: 'only-if-cached' }));
      return;
    }
    if (req.headers.range !== undefined) {
      // A range of an uncached object: pass it through rather than fetch all of it now.
      setOutcome(CacheOutcome.pass);
      this.#pass(req, res, target, 'request', 'range miss');
      return;
    }
    this.#fetch(req, res, target, key, undefined, ctx, setOutcome);
  }

  #hitStatus(entry: Entry, now: number): string {
    return this.#hitStatuses.get((entry.freshness.freshUntil - now) / 1000, entry.source);
  }

  /**
   * miss / stale: join a flight for the key or start one. `res` undefined: a background
   * revalidation nobody waits for. `stale`: the stored entry to revalidate or fall back on.
   */
  #fetch(
    req: IncomingMessage,
    res: ServerResponse | undefined,
    target: Target,
    key: string,
    stale: Entry | undefined,
    ctx: RequestContext,
    setOutcome: (o: CacheOutcome) => void,
  ): void {
    // A peer forwarded this miss to us: tell it at once that we took it, so that it waits on
    // our origin fetch instead of taking us for dead (cluster/peers.ts).
    if (ctx.fromPeer && res !== undefined) res.writeProcessing();
    // A request with Authorization neither waits on another client's fetch nor has others wait
    // on its own: most such answers are for that client alone (RFC 9111 §3.5), and a waiter
    // would only learn so at the head and then fetch again, one origin answer later.
    const alone = req.headers.authorization !== undefined;
    const existing = res === undefined || alone ? undefined : this.#flights.get(key);
    if (existing !== undefined) {
      setOutcome(CacheOutcome.collapsed);
      this.#join(existing, req, res!, target, key, stale, ctx, setOutcome);
      return;
    }
    this.#startFlight(req, res, target, key, stale, ctx, setOutcome, !alone);
  }

  #startFlight(
    req: IncomingMessage,
    res: ServerResponse | undefined,
    target: Target,
    key: string,
    stale: Entry | undefined,
    ctx: RequestContext,
    setOutcome: (o: CacheOutcome) => void,
    collapse: boolean,
  ): void {
    const s = this.#s;
    const flight = this.#flights.start(key, { incarnation: s.log.incarnation, seq: s.log.appliedSeq }, s.cache.generation, collapse);
    const peers = ctx.fromPeer ? undefined : s.router.peersFor(key);
    setOutcome(peers === undefined ? (stale === undefined ? CacheOutcome.miss : CacheOutcome.revalidated) : CacheOutcome.forwarded);
    const fetch = new FlightFetch(this.#fetchHost, flight, req, res, target, key, stale, stale === undefined ? 'uri-miss' : 'stale',
      peers !== undefined, ctx.fromPeer, s.config.maxEntryBytes);
    // Computed once: what is sent is what the secondary key is made of.
    fetch.upstream = upstreamRequestHeaders(req.headers, req.socket.remoteAddress, CACHEABLE_FETCH_DROP);
    fetch.peers = peers;
    fetch.notOwner = peers !== undefined;
    this.#dispatch(fetch, stale !== undefined && stale.freshness.hasValidators);
  }

  /** Sends a flight's fetch to the owners or the origin; `conditional`: with the stale entry's validators. */
  #dispatch(fetch: FlightFetch, conditional: boolean): void {
    const { req, target, stale } = fetch;
    let headers = fetch.upstream;
    if (conditional && stale !== undefined && (stale.etag !== undefined || stale.lastModified !== undefined)) {
      headers = { ...headers };
      if (stale.etag !== undefined) headers['if-none-match'] = stale.etag;
      else headers['if-modified-since'] = stale.lastModified!;
      fetch.conditional = true;
    }
    const request: OriginRequest = { origin: target.origin, path: target.path, method: 'GET', headers };
    if (fetch.peers === undefined) this.#fromOrigin(request, fetch);
    else void this.#fromPeers(fetch.peers, { ...request, path: this.#recv.reverse ? req.url! : target.origin + target.path }, fetch);
  }

  /** The flight's fetch again: without validators (a 304 that was not for the stored
   *  response), or `direct` from the origin, with them (a peer's answer we may not use). */
  #refetch(f: FlightFetch, direct = false): void {
    const again = new FlightFetch(this.#fetchHost, f.flight, f.req, f.res, f.target, f.key, f.stale, f.fwd, f.viaPeer && !direct, f.toPeer, f.maxBytes);
    again.upstream = f.upstream;
    again.peers = direct ? undefined : f.peers;
    again.notOwner = f.notOwner;
    this.#dispatch(again, direct && f.stale !== undefined && f.stale.freshness.hasValidators);
  }

  #fromOrigin(r: OriginRequest, fetch: FlightFetch): void {
    this.#s.metrics.originRequests.inc();
    fetch.fromOrigin = true;
    this.#s.origin.dispatch(r, fetch);
  }

  /** Owners in order; when none answers, fetch the origin ourselves and count it degraded. */
  async #fromPeers(peers: readonly string[], r: OriginRequest, fetch: FlightFetch): Promise<void> {
    for (const peer of peers) {
      let up: OriginResponse;
      try {
        this.#s.metrics.peerRequests.inc();
        up = await this.#s.router.forward(peer, r);
      } catch (err) {
        this.#s.metrics.peerErrors.labels(peer).inc();
        this.#s.logger.warn({ peer, err: (err as Error).message }, 'peer unreachable, trying the next owner');
        continue;
      }
      feedSink(up, fetch);
      return;
    }
    // No owner answered: the origin, asked by us, answers us (our fence, stored as a hot copy).
    this.#s.metrics.degradedFetches.inc();
    this.#refetch(fetch, true);
  }

  #onResponse(f: FlightFetch, status: number, headers: HeaderObject, body: BodyControl): void {
    const { flight, req, res, target, stale, fwd, viaPeer, toPeer } = f;
    const s = this.#s;
    const now = Date.now();
    // A peer's answer is as fresh as what the peer had applied, not as what we had: an owner
    // behind on INVAL serves what a purge we already applied removed. So its fence is the
    // peer's; ours stands for what we fetch from the origin.
    const ownFence: Fence = { incarnation: flight.incarnation, seq: flight.fence };
    if (stale !== undefined && status === 304) {
      const update = { status: 304, headers: headers as Record<string, string> };
      if (isUpdateFor(stale, update, f.conditional)) {
        body.resume();
        const preq = policyRequestOf(target.path, stale.varyNames, stale.varyValues, req.headers.authorization !== undefined);
        const { policy } = revalidatedPolicy(stale.policy, preq, update);
        const refreshed = this.#refresh(stale, policy, flight, viaPeer ? this.#peerFence(headers) : ownFence, now);
        // The entry is refreshed without the 304's Set-Cookie (revalidatedPolicy); the client
        // whose request drew it gets it, waiters and later clients never do.
        this.#settle(flight, req, res, refreshed, now, { fwd: 'stale', fwdStatus: 304, stored: true }, toPeer, setCookiePairs(headers['set-cookie']));
        return;
      }
      if (f.conditional) {
        // RFC 9111 §4.3.4: a 304 for another representation updates nothing, and its body
        // is not the one we hold: ask again, unconditionally.
        body.resume();
        this.#refetch(f);
        return;
      }
    }
    if (stale !== undefined && status >= 500 && canServeOnError(stale.freshness, now)) {
      body.resume();
      this.#settle(flight, req, res, stale, now, { fwd: 'stale', fwdStatus: status, detail: 'stale-if-error' }, toPeer);
      return;
    }

    const upstreamStatus = headers['cache-status'];
    const names = secondaryKeyNames(headers.vary);
    const values = this.#secondary.values(names, objectView, f.upstream);
    // RFC 9111 §3.5: the answer to a request with Authorization is kept and shared only when
    // public, s-maxage or must-revalidate say so (the policy's storable()); else it is passed.
    const authorized = req.headers.authorization !== undefined;
    const policy = newPolicy(policyRequestOf(target.path, names, values, authorized), { status, headers: headers as Record<string, string> });
    const admission = admit(policy, { status, headers: headers as Record<string, string> }, now, s.config.defaultTtlMs);
    const cl = headers['content-length'];
    const tooBig = cl !== undefined && Number(cl) > s.config.maxEntryBytes;
    const storable = admission.storable && !tooBig;
    const tags = tagsOf(headers);
    // Only an answer we may keep needs the peer's fence (a peer's error page has none to give).
    const fence = !viaPeer ? ownFence : storable ? this.#peerFence(headers) : undefined;
    // A peer's copy older than a purge we applied that matches it: the owner has not applied
    // that purge yet (lagging, or cut off and listed as missing). If we had applied it when this
    // flight began, its requests came after it, and we may have acknowledged it: we neither keep
    // nor serve the copy, the origin is asked (read-your-purge holds here). A flight overtaken by
    // a matching purge serves only requests from before that purge: the copy is served to them,
    // and not kept. (The history keeps the last seq of each key and tag, so a first purge before
    // the flight and a second during it look like the second alone.)
    if (viaPeer && fence !== undefined && fence.incarnation === s.log.incarnation && !flight.overtaken &&
        s.cache.isInvalidatedSince({ key: f.key, tags, fence: fence.seq, incarnation: fence.incarnation })) {
      body.resume();
      s.metrics.fencesUntrusted.labels('peer', 'predates-purge').inc();
      s.metrics.degradedFetches.inc();
      this.#refetch(f, true);
      return;
    }
    // Age is always ours here (added per response from the policy's age): never the origin's too.
    const raw = toRawHeaders(headers, this.#dropOnStore);
    raw.push('via', headers.via === undefined ? VIA : `${String(headers.via)}, ${VIA}`);
    const head: FlightHead = {
      status,
      headers: raw,
      shareable: storable,
      varyNames: names,
      varyValues: values,
      tags,
      initialAgeSec: policy.age(),
      receivedAt: now,
      fence,
    };
    if (!storable) flight.capturing = false;
    flight.setHead(head, body);
    const detail = storable ? undefined : admission.storable ? 'too large' : admission.reason;
    if (detail !== undefined) s.onNotStored?.(f.key, detail);
    const parts: StatusParts = {
      fwd,
      fwdStatus: status,
      stored: storable,
      ...(detail === undefined ? {} : { detail }),
      ...(typeof upstreamStatus === 'string' && viaPeer ? { upstream: upstreamStatus } : {}),
    };
    if (res !== undefined) {
      const extra = ['age', String(Math.floor(head.initialAgeSec)), 'cache-status', cacheStatus(this.#statusCtx, parts)];
      if (toPeer) extra.push(...peerHeaders(storable ? tags : [], fence));
      flight.attach(res, () => extra);
    }
    f.head = head;
    f.policy = policy;
    f.admission = admission;
    f.storable = storable;
    f.stream();
  }

  /** The whole body arrived: store it when it may be, and end every response. */
  #onBodyEnd(f: FlightFetch): void {
    const s = this.#s;
    const flight = f.flight;
    const fence = f.head?.fence;
    if (f.storable && flight.capturing && f.admission!.storable && fence !== undefined && (!f.viaPeer || this.#isOurNumbering(fence))) {
      const bodyBuf = ownedBody(flight.chunks, flight.bytes);
      const entry = this.#makeEntry(f.key, f.head!, bodyBuf, f.policy!, f.admission!.freshness, f.admission!.keepUntil, fence,
        f.notOwner ? EntrySource.hot : EntrySource.local);
      if (s.cache.store(entry, f.viaPeer, flight.generation)) {
        if (!f.viaPeer) s.onStored?.(entry);
      } else {
        s.metrics.fillsRejected.inc();
        s.onNotStored?.(f.key, 'an invalidation applied since the fetch began matches it, or the cache was flushed');
      }
    } else if (f.storable) {
      s.onNotStored?.(f.key, flight.capturing ? 'the owner sent no fence this member can check' : 'body larger than SIDECACHE_MAX_ENTRY_BYTES');
    }
    flight.end();
    this.#flights.finish(flight);
  }

  /** The fence a peer sent with its answer; undefined (counted, and warned about now and then)
   *  when it sent none we can read: an owner of another version, or no owner at all. */
  #peerFence(headers: HeaderObject): Fence | undefined {
    const value = headers[PEER_FENCE_HEADER];
    try {
      return decodePeerFence(value);
    } catch (err) {
      this.#s.metrics.fencesUntrusted.labels('peer', value === undefined ? 'missing' : 'unreadable').inc();
      const now = performance.now();
      if (now - this.#fenceWarnedAt >= FENCE_WARN_INTERVAL_MS) {
        this.#fenceWarnedAt = now;
        this.#s.logger.warn({ err: (err as Error).message }, 'a peer answered without a fence we can read: its answer is served, not kept');
      }
      return undefined;
    }
  }

  /** Does a fence count in the seqs of the INVAL stream we apply? After a reset, one of the old
   *  stream cannot be checked against the purges of the new one (counted, not stored). */
  #isOurNumbering(fence: Fence): boolean {
    if (fence.incarnation === this.#s.log.incarnation) return true;
    this.#s.metrics.fencesUntrusted.labels('peer', 'incarnation').inc();
    return false;
  }

  /** A flight that ends in a stored entry (304 or stale-if-error): leader and waiters serve it. */
  #settle(
    flight: Flight, req: IncomingMessage, res: ServerResponse | undefined, entry: Entry, now: number, parts: StatusParts, toPeer: boolean,
    leaderOnly?: readonly string[],
  ): void {
    const status = cacheStatus(this.#statusCtx, parts);
    flight.settle(entry, cacheStatus(this.#statusCtx, { ...parts, collapsed: true }));
    this.#flights.finish(flight);
    if (res !== undefined) deliverEntry(req, res, entry, now, status, toPeer, leaderOnly);
  }

  #onFailure(
    flight: Flight, req: IncomingMessage, res: ServerResponse | undefined, stale: Entry | undefined, err: unknown,
    fwd: 'uri-miss' | 'stale', toPeer: boolean,
  ): void {
    const now = Date.now();
    const status = err instanceof SidecacheError && err.status !== undefined ? err.status : 502;
    if (stale !== undefined && canServeOnError(stale.freshness, now)) {
      this.#settle(flight, req, res, stale, now, { fwd: 'stale', fwdStatus: status, detail: 'stale-if-error' }, toPeer);
      return;
    }
    const e = err instanceof Error ? err : new Error(String(err));
    this.#s.logger.warn({ url: req.url, err: e.message }, 'origin fetch failed');
    flight.fail(e);
    this.#flights.finish(flight);
    if (res !== undefined) sendError(res, status, e.message, cacheStatus(this.#statusCtx, { fwd, detail: 'origin error' }));
  }

  #join(
    flight: Flight,
    req: IncomingMessage,
    res: ServerResponse,
    target: Target,
    key: string,
    stale: Entry | undefined,
    ctx: RequestContext,
    setOutcome: (o: CacheOutcome) => void,
  ): void {
    flight.whenHead((head) => {
      const settled = flight.entry;
      if (settled !== undefined) {
        // A revalidation settles the variant it was started for; the flight is keyed by the
        // primary key only, so a waiter for another variant fetches its own.
        if (settled.varyNames === null || this.#secondary.matches(settled.varyNames, settled.varyValues, asFetched, req)) {
          deliverEntry(req, res, settled, Date.now(), flight.entryStatus!, ctx.fromPeer);
        } else {
          this.#startFlight(req, res, target, key, stale, ctx, setOutcome, false);
        }
        return;
      }
      if (head === undefined) {
        const err = flight.failed;
        const status = err instanceof SidecacheError && err.status !== undefined ? err.status : 502;
        sendError(res, status, err?.message ?? 'origin failed', cacheStatus(this.#statusCtx, { fwd: 'uri-miss', collapsed: true }));
        return;
      }
      const varyOk = head.varyNames === null || this.#secondary.matches(head.varyNames, head.varyValues, asFetched, req);
      if (!head.shareable || !flight.capturing || !varyOk) {
        // Not shareable with this request: it gets a fetch of its own.
        this.#startFlight(req, res, target, key, stale, ctx, setOutcome, false);
        return;
      }
      const status = cacheStatus(this.#statusCtx, { fwd: 'uri-miss', fwdStatus: head.status, collapsed: true });
      flight.attach(res, (h) => {
        const extra = ['age', String(Math.floor(h.initialAgeSec + (Date.now() - h.receivedAt) / 1000)), 'cache-status', status];
        if (ctx.fromPeer) extra.push(...peerHeaders(h.tags, h.fence));
        return extra;
      });
    });
  }

  #makeEntry(
    key: string, head: FlightHead, body: Buffer, policy: CachePolicy, freshness: Entry['freshness'], keepUntil: number,
    fence: Fence, source: EntrySource,
  ): Entry {
    const headers = rawWithout(head.headers, 'content-length');
    headers.push('content-length', String(body.length));
    return {
      key,
      varyNames: head.varyNames,
      varyValues: head.varyValues,
      status: head.status,
      headers,
      body,
      policy,
      freshness,
      keepUntil,
      tags: head.tags,
      fence: fence.seq,
      incarnation: fence.incarnation,
      etag: rawGet(headers, 'etag'),
      lastModified: rawGet(headers, 'last-modified'),
      source,
      fillSeq: 0,
      size: entrySize(key, headers, heldBytes(body), chargedNames(head.varyNames), head.varyValues, head.tags),
      softPurged: false,
    };
  }

  /** The stored entry after a 304: new policy, times and headers (§4.3.4), same body. */
  #refresh(stale: Entry, policy: CachePolicy, flight: Flight, fence: Fence | undefined, now: number): Entry {
    // Two facts meet here, and the entry is fenced with the earlier: the body is ours, clean of
    // every purge applied when the flight began (it was still stored then), and the 304 says its
    // validators are current as of its source's fence (ours for the origin, the owner's for a
    // peer). A peer ahead of us vouches for nothing about our body: a hard purge it applied and
    // we have not yet must still remove the body when we apply it, whatever the validators say
    // (DESIGN invariant 2). A peer behind us has not seen a soft purge we applied: its 304 is no
    // revalidation after it. A fence we cannot read, or of another stream, leaves the 304
    // served to this flight and the entry not stored.
    const own: Fence = {
      incarnation: flight.incarnation,
      seq: stale.incarnation === flight.incarnation ? Math.max(stale.fence, flight.fence) : flight.fence,
    };
    const kept: Fence | undefined = fence === undefined || fence.incarnation !== own.incarnation
      ? undefined
      : { incarnation: own.incarnation, seq: Math.min(own.seq, fence.seq) };
    const updated = policy.responseHeaders() as Record<string, string>;
    const freshness = freshnessOf(policy, updated, now, this.#s.config.defaultTtlMs);
    const headers = toRawHeaders(updated, this.#dropOnStore);
    headers.push('via', VIA);
    const withLength = rawWithout(headers, 'content-length');
    withLength.push('content-length', String(stale.body.length));
    const entry: Entry = {
      ...stale,
      headers: withLength,
      policy,
      freshness,
      keepUntil: keepUntilOf(freshness),
      incarnation: (kept ?? own).incarnation,
      fence: (kept ?? own).seq,
      etag: rawGet(withLength, 'etag'),
      lastModified: rawGet(withLength, 'last-modified'),
      size: entrySize(stale.key, withLength, heldBytes(stale.body), chargedNames(stale.varyNames), stale.varyValues, stale.tags),
      softPurged: false,
    };
    const hot = stale.source === EntrySource.hot;
    if (kept !== undefined && this.#s.cache.store(entry, hot, flight.generation)) {
      if (!hot) this.#s.onStored?.(entry);
      return entry;
    }
    return stale;
  }

  /** Unsafe methods and uncacheable requests: straight through, invalidating on success (§4.4). */
  #pass(req: IncomingMessage, res: ServerResponse, target: Target, fwd: 'method' | 'request', detail?: string): void {
    const s = this.#s;
    const method = req.method!;
    const headers = upstreamRequestHeaders(req.headers, req.socket.remoteAddress, PASS_DROP);
    s.metrics.originRequests.inc();
    let upBody: BodyControl | undefined;
    const sink: OriginSink = {
      onInfo: (status, upHeaders) => relayInterim(req, res, status, upHeaders),
      onHead: (status, upHeaders, body) => {
        upBody = body;
        try {
          if (invalidatesOnResponse(method, status)) this.#invalidateWrite(target, upHeaders);
          const raw = toRawHeaders(upHeaders, this.#dropOnPass);
          raw.push('via', VIA, 'cache-status', cacheStatus(this.#statusCtx, { fwd, fwdStatus: status, ...(detail === undefined ? {} : { detail }) }));
          res.writeHead(status, raw);
        } catch (err) {
          body.destroy();
          sink.onError(err);
          return;
        }
        res.on('drain', () => body.resume());
      },
      onData: (chunk) => {
        if (!res.write(chunk)) upBody!.pause();
      },
      onEnd: () => {
        res.end();
      },
      onError: (err) => {
        if (res.headersSent || res.destroyed) {
          // Mid-body: cut the connection, the only honest signal left. Or the client left
          // first (we aborted the origin request): not an origin error, nobody to answer.
          res.destroy();
          return;
        }
        s.metrics.originErrors.labels(err instanceof SidecacheError ? err.code : 'unknown').inc();
        const status = err instanceof SidecacheError && err.status !== undefined ? err.status : 502;
        sendError(res, status, (err as Error).message, cacheStatus(this.#statusCtx, { fwd, detail: 'origin error' }));
      },
    };
    const call = s.origin.dispatch({ origin: target.origin, path: target.path, method, headers, body: hasRequestBody(req) ? req : null }, sink);
    // The client went away before the response was complete: stop the origin's too.
    res.once('close', () => { if (!res.writableFinished) call.destroy(new undiciErrors.RequestAbortedError()); });
  }

  /** RFC 9111 §4.4: the target URI and same-origin Location / Content-Location, cluster-wide. */
  #invalidateWrite(target: Target, headers: HeaderObject): void {
    const loc = headers.location;
    const cloc = headers['content-location'];
    const related = relatedTargets(target.keyOrigin, target.path, typeof loc === 'string' ? loc : undefined, typeof cloc === 'string' ? cloc : undefined);
    const keys = [keyOf(target.keyOrigin, target.path, this.#keyOpts)];
    for (const r of related) {
      const k = keyOf(r.keyOrigin, r.target, this.#keyOpts);
      if (!keys.includes(k)) keys.push(k);
    }
    // Locally at once (read-your-writes here), then through the log for every sidecar.
    for (const k of keys) {
      this.#s.cache.main.delete(k);
      this.#s.cache.hot.delete(k);
    }
    this.#flights.invalidate((f) => keys.includes(f.key));
    this.#writes.add(keys);
  }

  #drainRequest(req: IncomingMessage): void {
    // Refused requests may carry a body: read and discard it so the connection stays usable.
    if (!req.complete) req.resume();
  }
}

/** May a stored answer serve a request with Authorization (RFC 9111 §3.5)? */
function sharedWithAuthorization(entry: Entry): boolean {
  const cc = parseCacheControl(rawGet(entry.headers, 'cache-control'));
  return cc.has('public') || cc.has('s-maxage') || cc.has('must-revalidate');
}
