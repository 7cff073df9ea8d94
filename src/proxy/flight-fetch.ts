// One fetch of a flight, from the origin or an owning peer: the sink its response feeds, as
// a small state machine (waiting for the head, streaming the body, over), and what the end of
// the body needs to store the entry. Plain fields, no closures per request.
import type { admit, CachePolicy } from '../http/storable.js';
import { combineFieldLines, type HeaderObject } from '../http/headers.js';
import type { Exchange } from './context.js';
import { relayInterim } from './deliver.js';
import type { Flight, FlightHead } from './flight.js';
import type { BodyControl, OriginSink } from './origin.js';

/** The steps a FlightFetch calls back into (fetch.ts). */
export interface FetchHost {
  /** The head arrived: settle the flight, or start streaming (fetch.stream()). May throw. */
  response(f: FlightFetch, status: number, headers: HeaderObject, body: BodyControl): void;
  /** No response (fetch error, counted as an origin error when `f.fromOrigin`), or one we could not handle. */
  failure(f: FlightFetch, err: unknown, fetchError: boolean): void;
  bodyEnd(f: FlightFetch): void;
  bodyError(f: FlightFetch, err: Error): void;
}

const WAITING = 0;
const STREAMING = 1;
const OVER = 2;

export class FlightFetch implements OriginSink {
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
  /** Our validators went with the request: a 304 may refresh `x.stale`. */
  conditional = false;
  /** Another member owns the key: what we keep of it is a hot copy, even when the origin
   *  answered us directly (no owner reachable, or an owner's copy we could not use). */
  notOwner = false;

  constructor(
    readonly host: FetchHost,
    readonly flight: Flight,
    readonly x: Exchange,
    /** The answer comes from an owning peer, not from the origin. */
    readonly viaPeer: boolean,
    readonly maxBytes: number,
  ) {}

  /** Cache-Status "fwd" of this fetch. */
  get fwd(): 'uri-miss' | 'stale' {
    return this.x.stale === undefined ? 'uri-miss' : 'stale';
  }

  /** Called by the host's response step: the body goes into the flight. */
  stream(): void {
    this.#state = STREAMING;
  }

  onInfo(status: number, headers: HeaderObject): void {
    // The client that started the fetch hears it; waiters join at the final head.
    if (this.#state === WAITING && this.x.res !== undefined) relayInterim(this.x.req, this.x.res, status, headers);
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
