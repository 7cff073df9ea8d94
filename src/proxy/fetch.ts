// fetch: a miss or a revalidation, with single flight. A request joins the flight in progress
// for its key or starts one; the flight's fetch goes to the owners or the origin (route.ts),
// and its answer ends the flight in one of three ways: a 304 that refreshes the stored entry,
// the stored entry served on an error (stale-if-error, RFC 5861 §4), or a response that
// streams to the leader and every waiter and is stored when complete (admit.ts).
import { SidecacheError } from '../core/errors.js';
import { CacheOutcome } from '../core/metrics.js';
import { gzipTagOf, isGzipTag, originTags } from '../http/compressible.js';
import { canServeOnError } from '../http/freshness.js';
import type { HeaderObject } from '../http/headers.js';
import { isUpdateFor } from '../http/storable.js';
import type { Entry } from '../store/types.js';
import { Admitter } from './admit.js';
import type { Exchange, Pipeline } from './context.js';
import { cacheStatus, deliverEntry, peerHeaders, sendError, type StatusParts } from './deliver.js';
import type { Flight } from './flight.js';
import { FlightFetch, type FetchHost } from './flight-fetch.js';
import { asFetched, cacheableFetchHead } from './lookup.js';
import type { BodyControl, OriginRequest } from './origin.js';
import { fromOrigin, fromPeers } from './route.js';

/** Header pairs of a 304's Set-Cookie, for the one client whose request drew it. */
function setCookiePairs(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const out: string[] = [];
  for (const v of Array.isArray(value) ? value : [value]) out.push('set-cookie', v);
  return out;
}

function statusOf(err: unknown): number {
  return err instanceof SidecacheError && err.status !== undefined ? err.status : 502;
}

export class Fetcher implements FetchHost {
  readonly #p: Pipeline;
  readonly #admit: Admitter;

  constructor(p: Pipeline) {
    this.#p = p;
    this.#admit = new Admitter(p);
  }

  /** Joins the flight for the key or starts one. */
  fetch(x: Exchange): void {
    // A peer forwarded this miss to us: tell it at once that we took it, so that it waits on
    // our origin fetch instead of taking us for dead (cluster/peers.ts).
    if (x.fromPeer && x.res !== undefined) x.res.writeProcessing();
    // A request with Authorization neither waits on another client's fetch nor has others wait
    // on its own: most such answers are for that client alone (RFC 9111 §3.5), and a waiter
    // would only learn so at the head and then fetch again, one origin answer later.
    const alone = x.req.headers.authorization !== undefined;
    // A sidecar that may not trust its cache (dropped from the view, detached, behind the log)
    // may have missed a purge, so it has no idea whether a fetch already under way began
    // before one: each request asks the origin (or an owner) itself, after it arrived.
    const untrusted = this.#p.s.mustRevalidateAll?.() === true;
    const existing = x.res === undefined || alone || untrusted ? undefined : this.#p.flights.get(x.key);
    if (existing !== undefined) {
      x.setOutcome(CacheOutcome.collapsed);
      this.#join(existing, x);
      return;
    }
    this.#start(x, !alone);
  }

  /** A collapsed waiter: served from the flight's head and body, or by a fetch of its own when
   *  what the flight got is not for it. */
  #join(flight: Flight, x: Exchange): void {
    const { req, res } = x;
    flight.whenHead((head) => {
      const settled = flight.entry;
      if (settled !== undefined) {
        // A revalidation settles the variant it was started for; the flight is keyed by the
        // primary key only, so a waiter for another variant fetches its own.
        if (settled.varyNames === null || this.#p.secondary.matches(settled.varyNames, settled.varyValues, asFetched, req)) {
          deliverEntry(req, res!, settled, this.#p.clock.now(), flight.entryStatus!, x.fromPeer);
        } else {
          this.#start(x, false);
        }
        return;
      }
      if (head === undefined) {
        const err = flight.failed;
        sendError(res!, statusOf(err), err?.message ?? 'origin failed', cacheStatus(this.#p.statusCtx, { fwd: 'uri-miss', collapsed: true }));
        return;
      }
      const varyOk = head.varyNames === null || this.#p.secondary.matches(head.varyNames, head.varyValues, asFetched, req);
      if (!head.shareable || !flight.capturing || !varyOk) {
        // Not shareable with this request: it gets a fetch of its own.
        this.#start(x, false);
        return;
      }
      const status = cacheStatus(this.#p.statusCtx, { fwd: 'uri-miss', fwdStatus: head.status, collapsed: true });
      const clock = this.#p.clock;
      flight.attach(res!, (h) => {
        const extra = ['age', String(Math.floor(h.initialAgeSec + (clock.now() - h.receivedAt) / 1000)), 'cache-status', status];
        if (x.fromPeer) extra.push(...peerHeaders(h.tags, h.fence));
        return extra;
      });
    });
  }

  /** A new flight for the exchange; `collapse` false: one others may not join. */
  #start(x: Exchange, collapse: boolean): void {
    const s = this.#p.s;
    const flight = this.#p.flights.start(x.key, { incarnation: s.log.incarnation, seq: s.log.appliedSeq }, s.cache.generation, collapse);
    const peers = x.fromPeer ? undefined : s.router.peersFor(x.key);
    x.setOutcome(peers === undefined ? (x.stale === undefined ? CacheOutcome.miss : CacheOutcome.revalidated) : CacheOutcome.forwarded);
    const fetch = new FlightFetch(this, flight, x, peers !== undefined, s.config.maxEntryBytes);
    // Computed once: what is sent is what the secondary key is made of.
    fetch.upstream = cacheableFetchHead(x.req);
    fetch.peers = peers;
    fetch.notOwner = peers !== undefined;
    this.#dispatch(fetch, x.stale !== undefined && x.stale.freshness.hasValidators);
  }

  /** Sends a flight's fetch to the owners or the origin; `conditional`: with the stale entry's validators. */
  #dispatch(fetch: FlightFetch, conditional: boolean): void {
    const { req, target, stale } = fetch.x;
    let headers = fetch.upstream;
    if (conditional && stale !== undefined && (stale.etag !== undefined || stale.lastModified !== undefined)) {
      headers = { ...headers };
      // A hot copy of an owner's gzip form holds our tag for it: the origin knows only its own.
      if (stale.etag !== undefined) headers['if-none-match'] = fetch.peers === undefined ? originTags(stale.etag) : stale.etag;
      else headers['if-modified-since'] = stale.lastModified!;
      fetch.conditional = true;
    }
    const request: OriginRequest = { origin: target.origin, path: target.path, method: 'GET', headers };
    const s = this.#p.s;
    if (fetch.peers === undefined) {
      fetch.fromOrigin = true;
      fromOrigin(s.origin, s.metrics, request, fetch);
      return;
    }
    const toPeer = { ...request, path: this.#p.recv.reverse ? req.url! : target.origin + target.path };
    void fromPeers(s.router, s.metrics, s.logger, fetch.peers, toPeer, fetch).then((answered) => {
      if (answered) return;
      // No owner answered: the origin, asked by us, answers us (our fence, stored as a hot copy).
      s.metrics.degradedFetches.inc();
      this.#refetch(fetch, true);
    });
  }

  /** The flight's fetch again: without validators (a 304 that was not for the stored
   *  response), or `direct` from the origin, with them (a peer's answer we may not use). */
  #refetch(f: FlightFetch, direct = false): void {
    const again = new FlightFetch(this, f.flight, f.x, f.viaPeer && !direct, f.maxBytes);
    again.upstream = f.upstream;
    again.peers = direct ? undefined : f.peers;
    again.notOwner = f.notOwner;
    this.#dispatch(again, direct && f.x.stale !== undefined && f.x.stale.freshness.hasValidators);
  }

  response(f: FlightFetch, status: number, origHeaders: HeaderObject, body: BodyControl): void {
    const { flight, x } = f;
    const stale = x.stale;
    const now = this.#p.clock.now();
    let headers = origHeaders;
    if (stale !== undefined && status === 304) {
      // The origin confirmed its own tag, asked for that of the gzip form we hold: the same.
      const etag = headers.etag;
      if (f.fromOrigin && stale.etag !== undefined && isGzipTag(stale.etag) && typeof etag === 'string' && gzipTagOf(etag) === stale.etag.trim()) {
        headers = { ...headers, etag: stale.etag };
      }
      if (isUpdateFor(stale, { status: 304, headers: headers as Record<string, string> }, f.conditional)) {
        body.resume();
        const refreshed = this.#admit.revalidated(f, headers, now);
        // The entry is refreshed without the 304's Set-Cookie (revalidatedPolicy); the client
        // whose request drew it gets it, waiters and later clients never do.
        this.#settle(flight, x, refreshed, now, { fwd: 'stale', fwdStatus: 304, stored: true }, setCookiePairs(headers['set-cookie']));
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
      this.#settle(flight, x, stale, now, { fwd: 'stale', fwdStatus: status, detail: 'stale-if-error' });
      return;
    }
    const parts = this.#admit.admit(f, status, headers, now);
    if (parts === undefined) {
      body.resume();
      this.#refetch(f, true);
      return;
    }
    const head = f.head!;
    if (!f.storable) flight.capturing = false;
    flight.setHead(head, body);
    const res = x.res;
    if (res !== undefined) {
      const extra = ['age', String(Math.floor(head.initialAgeSec)), 'cache-status', cacheStatus(this.#p.statusCtx, parts)];
      if (x.fromPeer) extra.push(...peerHeaders(f.storable ? head.tags : [], head.fence));
      flight.attach(res, () => extra);
    }
    f.stream();
  }

  failure(f: FlightFetch, err: unknown, fetchError: boolean): void {
    const s = this.#p.s;
    if (fetchError && f.fromOrigin) s.metrics.originErrors.labels(err instanceof SidecacheError ? err.code : 'unknown').inc();
    const { flight, x } = f;
    const now = this.#p.clock.now();
    const status = statusOf(err);
    if (x.stale !== undefined && canServeOnError(x.stale.freshness, now)) {
      this.#settle(flight, x, x.stale, now, { fwd: 'stale', fwdStatus: status, detail: 'stale-if-error' });
      return;
    }
    const e = err instanceof Error ? err : new Error(String(err));
    s.logger.warn({ url: x.req.url, err: e.message }, 'origin fetch failed');
    flight.fail(e);
    this.#p.flights.finish(flight);
    if (x.res !== undefined) sendError(x.res, status, e.message, cacheStatus(this.#p.statusCtx, { fwd: f.fwd, detail: 'origin error' }));
  }

  /** The whole body arrived: store it when it may be, and end every response. */
  bodyEnd(f: FlightFetch): void {
    this.#admit.store(f);
    f.flight.end();
    this.#p.flights.finish(f.flight);
  }

  bodyError(f: FlightFetch, err: Error): void {
    this.#p.s.logger.warn({ key: f.x.key, err: err.message }, 'origin body failed');
    this.#p.s.metrics.originErrors.labels('body').inc();
    f.flight.fail(err);
    this.#p.flights.finish(f.flight);
  }

  /** A flight that ends in a stored entry (304 or stale-if-error): leader and waiters serve it.
   *  `leaderOnly`: header pairs for the leader's response alone. */
  #settle(flight: Flight, x: Exchange, entry: Entry, now: number, parts: StatusParts, leaderOnly?: readonly string[]): void {
    const status = cacheStatus(this.#p.statusCtx, parts);
    flight.settle(entry, cacheStatus(this.#p.statusCtx, { ...parts, collapsed: true }));
    this.#p.flights.finish(flight);
    if (x.res !== undefined) deliverEntry(x.req, x.res, entry, now, status, x.fromPeer, leaderOnly);
  }
}
