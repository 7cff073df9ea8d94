// The data path, top to bottom like Varnish: recv -> key -> lookup -> hit / miss -> route and
// fetch (single flight) -> admit -> deliver, or pass. Each phase has its own file; this one
// only puts them in order. A fresh hit is served synchronously on the fast path below: no
// context object, no listener, no closure, no await.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../core/clock.js';
import { CacheOutcome } from '../core/metrics.js';
import { PEER_FENCE_HEADER } from '../core/peer-fence.js';
import { Verdict } from '../http/freshness.js';
import { SecondaryKey, secondaryKeySecret } from '../http/vary.js';
import type { Entry } from '../store/types.js';
import { Compressor } from './compress.js';
import type { Pipeline, Services } from './context.js';
import { cacheStatus, deliverEntry, HitStatuses, sendError, type StatusContext } from './deliver.js';
import { Fetcher } from './fetch.js';
import type { Flights } from './flight.js';
import { keyOf, keyOptions, type KeyOptions } from './key.js';
import { directivesOf, Lookup, sharedWithAuthorization } from './lookup.js';
import { deliverPart, fetchRange, isRangeGet } from './partial.js';
import { hasRequestBody, pass } from './pass.js';
import { isRefusal, Receiver, refuse, type Refusal, type Target } from './recv.js';
import { WriteInvalidations } from './write-invalidations.js';

export type { Services } from './context.js';

export interface RequestContext {
  /** The request came from a peer that chose us as owner: never forward again (one hop). */
  readonly fromPeer: boolean;
}

const LOCAL: RequestContext = { fromPeer: false };

/** Coalesced write invalidations wait this long for others; at most this many parent paths go
 *  out per interval (each costs every member a scan of its keys), more become their origins. */
const WRITE_FLUSH_INTERVAL_MS = 250;
const WRITE_MAX_PREFIXES = 8;

const NO_OUTCOME = (): void => {};

export class ProxyHandler {
  readonly #p: Pipeline;
  readonly #s: Services;
  readonly #clock: Clock;
  readonly #recv: Receiver;
  readonly #keyOpts: KeyOptions;
  readonly #lookup: Lookup;
  readonly #fetcher: Fetcher;
  readonly #statusCtx: StatusContext;
  readonly #hitStatuses: HitStatuses;
  readonly #hitIndex: number;
  #inFlight = 0;

  constructor(s: Services) {
    this.#s = s;
    const clock = s.clock ?? s.cache.clock;
    this.#clock = clock;
    this.#recv = new Receiver(s.config);
    this.#keyOpts = keyOptions(s.config);
    this.#statusCtx = {
      detail: s.config.cacheStatusDetail,
      node: s.config.nodeId,
      epoch: () => s.log.view.epoch,
      seq: () => s.log.appliedSeq,
    };
    this.#hitStatuses = new HitStatuses(this.#statusCtx);
    this.#hitIndex = s.metrics.requests.indexOf(CacheOutcome.hit);
    const secondary = new SecondaryKey(secondaryKeySecret(s.config.clusterSecret));
    const tagHeaders = s.config.stripTagHeaders ? ['surrogate-key', 'cache-tag'] : [];
    this.#p = {
      s,
      clock,
      recv: this.#recv,
      keyOpts: this.#keyOpts,
      flights: s.flights,
      statusCtx: this.#statusCtx,
      secondary,
      // A fence field is ours, added for peers only: never stored, never passed on from upstream.
      dropOnStore: new Set(['age', 'cache-status', 'via', PEER_FENCE_HEADER, ...tagHeaders]),
      dropOnPass: new Set(['via', 'cache-status', PEER_FENCE_HEADER, ...tagHeaders]),
      writes: new WriteInvalidations({
        ratePerSec: s.config.writeInvalRate,
        flushIntervalMs: WRITE_FLUSH_INTERVAL_MS,
        maxPrefixes: WRITE_MAX_PREFIXES,
        publish: (inval) => s.writeQueue.submit(inval),
        onCoalesced: (n) => s.metrics.writeInvalidationsCoalesced.inc(n),
        now: () => clock.now(),
      }),
      compressor: s.compressor ?? new Compressor(s.cache, s.config, (outcome) => s.metrics.compressions.labels(outcome).inc()),
    };
    this.#lookup = new Lookup(s.cache, secondary, s.mustRevalidateAll);
    this.#fetcher = new Fetcher(this.#p);
  }

  get flights(): Flights {
    return this.#p.flights;
  }

  /** Requests being answered now (drain waits for 0). */
  get inFlight(): number {
    return this.#inFlight;
  }

  get compressor(): Compressor {
    return this.#p.compressor;
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
      // key, lookup, deliver
      const key = keyOf(target.keyOrigin, target.path, this.#keyOpts);
      const now = this.#clock.now();
      const entry = this.#lookup.find(key, req, now);
      // A partial entry (parts of a 206) answers only ranges inside it: the slow path decides.
      if (entry !== undefined && entry.parts === undefined && this.#lookup.verdict(entry, now, undefined) === Verdict.fresh) {
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

    // recv
    if (isRefusal(target)) {
      refuse(req, res, target, this.#statusCtx, this.#s.metrics);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      setOutcome(CacheOutcome.pass);
      pass(this.#p, req, res, target, 'method');
      return;
    }
    if (hasRequestBody(req)) {
      // A "fat GET": RFC 9110 §9.3.1 gives its content no meaning, yet some origins answer by
      // it (search APIs). The key cannot hold the body, so the request goes to the origin as
      // sent, body and all, and its answer is neither stored nor served from the cache.
      setOutcome(CacheOutcome.pass);
      pass(this.#p, req, res, target, 'request', 'request body');
      return;
    }

    // key
    const key = knownKey ?? keyOf(target.keyOrigin, target.path, this.#keyOpts);
    const dirs = directivesOf(req);
    if (dirs?.noStore) {
      setOutcome(CacheOutcome.pass);
      pass(this.#p, req, res, target, 'request', 'no-store');
      return;
    }

    // lookup
    const now = lookedAt ?? this.#clock.now();
    const found = looked === undefined ? this.#lookup.find(key, req, now) : looked ?? undefined;
    // RFC 9111 §3.5 lets an origin share an answer with signed-in requests by public, s-maxage or
    // must-revalidate. Without one of them, a request with Authorization is not answered from
    // what other clients caused: an origin that personalises by Authorization without Vary would
    // hand a signed-in user the anonymous page (Varnish's builtin passes such requests).
    const usable = found !== undefined && req.headers.authorization !== undefined && !sharedWithAuthorization(found) ? undefined : found;
    if (usable?.parts !== undefined && isRangeGet(req) && !ctx.fromPeer) {
      // RFC 9111 §3.3: a stored partial response answers a range inside it while fresh; any
      // other range goes to the origin, and its answer is combined with it (§3.4).
      if (this.#lookup.verdict(usable, now, dirs) === Verdict.fresh && deliverPart(req, res, usable, now, this.#hitStatus(usable, now))) {
        setOutcome(CacheOutcome.hit);
        return;
      }
      if (dirs?.onlyIfCached) {
        setOutcome(CacheOutcome.miss);
        sendError(res, 504, 'not in cache (only-if-cached)', cacheStatus(this.#statusCtx, { fwd: 'miss', detail: 'only-if-cached' }));
        return;
      }
      setOutcome(CacheOutcome.miss);
      fetchRange(this.#p, req, res, target, key, usable);
      return;
    }
    // A partial entry is never an answer to a request that did not ask for a range (nor to a
    // peer, which asks for whole objects): for it the key is a miss, and the whole object
    // fetched replaces the parts.
    const entry = usable?.parts !== undefined ? undefined : usable;
    if (entry !== undefined) {
      const verdict = this.#lookup.verdict(entry, now, dirs);
      // hit
      if (verdict === Verdict.fresh) {
        setOutcome(CacheOutcome.hit);
        deliverEntry(req, res, entry, now, this.#hitStatus(entry, now), ctx.fromPeer);
        return;
      }
      // stale: served now, refreshed in the background by one flight
      if (verdict === Verdict.staleWhileRevalidate) {
        setOutcome(CacheOutcome.stale);
        deliverEntry(req, res, entry, now, cacheStatus(this.#statusCtx, { hit: true, detail: 'stale-while-revalidate' }), ctx.fromPeer);
        if (this.#p.flights.get(key) === undefined) {
          this.#fetcher.fetch({ req, res: undefined, target, key, stale: entry, fromPeer: false, setOutcome: NO_OUTCOME });
        }
        return;
      }
      if (dirs?.onlyIfCached) {
        // RFC 9111 §5.2.1.7: never go to the origin; a stale entry the client did not accept is a 504.
        setOutcome(CacheOutcome.miss);
        sendError(res, 504, 'not fresh in cache (only-if-cached)', cacheStatus(this.#statusCtx, { fwd: 'stale', detail: 'only-if-cached' }));
        return;
      }
      // stale: revalidated first
      this.#fetcher.fetch({ req, res, target, key, stale: entry, fromPeer: ctx.fromPeer, setOutcome });
      return;
    }
    // miss
    if (dirs?.onlyIfCached) {
      setOutcome(CacheOutcome.miss);
      sendError(res, 504, 'not cached (only-if-cached)', cacheStatus(this.#statusCtx, { fwd: 'uri-miss', detail: 'only-if-cached' }));
      return;
    }
    if (req.headers.range !== undefined && isRangeGet(req) && !ctx.fromPeer) {
      // A range of an uncached object: fetched as a range, not all of it now, and its 206
      // kept as a partial entry when it may be (RFC 9111 §3.3).
      setOutcome(CacheOutcome.miss);
      fetchRange(this.#p, req, res, target, key, undefined);
      return;
    }
    if (req.headers.range !== undefined) {
      // A conditional range request (or a HEAD's): passed through as it is.
      setOutcome(CacheOutcome.pass);
      pass(this.#p, req, res, target, 'request', 'range miss');
      return;
    }
    this.#fetcher.fetch({ req, res, target, key, stale: undefined, fromPeer: ctx.fromPeer, setOutcome });
  }

  #hitStatus(entry: Entry, now: number): string {
    return this.#hitStatuses.get((entry.freshness.freshUntil - now) / 1000, entry.source);
  }
}
