// Flight: one response on its way from the origin (or from the owning peer), captured
// while it streams to the client that caused it and to every collapsed waiter. The same
// Buffer chunks go to every response: bodies are never copied per waiter.
import type { ServerResponse } from 'node:http';
import type { BodyControl } from './origin.js';
import type { Fence } from '../core/types.js';
import type { Entry } from '../store/types.js';

export interface FlightHead {
  readonly status: number;
  /** Delivery headers, without Age and Cache-Status (added per response). */
  readonly headers: readonly string[];
  /** May waiters share this response? (storable, no Set-Cookie, not too large) */
  readonly shareable: boolean;
  readonly varyNames: readonly string[] | null;
  readonly varyValues: readonly string[];
  readonly tags: readonly string[];
  /** Age of the response when it arrived, seconds, and when. */
  readonly initialAgeSec: number;
  readonly receivedAt: number;
  /** The fence of this body: the flight's own for an origin fetch, the one the peer sent for a
   *  peer's answer; undefined when the peer sent none that we can read (never stored then). */
  readonly fence: Fence | undefined;
}

/** A response a flight feeds: the leader's, or a waiter's. */
interface Sink {
  readonly res: ServerResponse;
  /** Called once with the head; returns the extra header pairs for this response. */
  readonly extra: (head: FlightHead) => string[];
}

export class Flight {
  readonly key: string;
  /** INVAL seq applied when this fetch began, its INVAL incarnation, and the cache generation then. */
  readonly fence: number;
  readonly incarnation: string;
  readonly generation: number;
  head: FlightHead | undefined;
  /** Set when the flight ended in a stored entry without a body stream (304, stale-if-error). */
  entry: Entry | undefined;
  /** Cache-Status parts of how the entry came to be, for waiters. */
  entryStatus: string | undefined;
  readonly chunks: Buffer[] = [];
  bytes = 0;
  done = false;
  failed: Error | undefined;
  /** False once waiters may no longer join: invalidated, not shareable, too large, over. */
  joinable = true;
  /** An invalidation that may match it was applied while it flew: every request it serves
   *  began before that invalidation (none joins after it). */
  overtaken = false;
  /** False once the body outgrew what may be stored: chunks are no longer kept. */
  capturing = true;
  /** Flights.writeSeq when it began: a write through this sidecar to its key since then
   *  (Flights.writtenSince) keeps what it fetched out of the store. */
  writeSeq = 0;
  readonly #sinks: Sink[] = [];
  /** Waiters that arrived before the head: told when it comes (or that it failed). */
  #pending: Array<(head: FlightHead | undefined) => void> = [];
  #body: BodyControl | undefined;

  /** Called once when the flight is abandoned (its body stopped with nobody told): the table
   *  forgets it, since no end or error will come to finish it. */
  readonly #onAbandon: ((f: Flight) => void) | undefined;

  constructor(key: string, fence: Fence, generation: number, onAbandon?: (f: Flight) => void) {
    this.key = key;
    this.fence = fence.seq;
    this.incarnation = fence.incarnation;
    this.generation = generation;
    this.#onAbandon = onAbandon;
  }

  /** Ends the flight with a stored entry (revalidated, or stale on error): waiters serve it. */
  settle(entry: Entry, status: string): void {
    this.entry = entry;
    this.entryStatus = status;
    this.done = true;
    this.joinable = false;
    const pending = this.#pending;
    this.#pending = [];
    for (const cb of pending) cb(undefined);
  }

  /** Resolves when the head is known (undefined: the flight failed first). */
  whenHead(cb: (head: FlightHead | undefined) => void): void {
    if (this.head !== undefined || this.failed !== undefined || this.entry !== undefined) cb(this.head);
    else this.#pending.push(cb);
  }

  setHead(head: FlightHead, body: BodyControl | undefined): void {
    this.head = head;
    this.#body = body;
    if (!head.shareable) this.joinable = false;
    const pending = this.#pending;
    this.#pending = [];
    for (const cb of pending) cb(head);
  }

  /** Attaches a response: writes the head and what has arrived so far, then follows. */
  attach(res: ServerResponse, extra: (head: FlightHead) => string[]): void {
    // A client that left before the head: its 'close' has fired, so it would never be
    // detached, and a write to it returns false and never drains, which would hold the origin
    // body paused for good (and the key with it).
    if (res.destroyed) {
      this.#abandonIfIdle();
      return;
    }
    const head = this.head!;
    res.writeHead(head.status, head.headers.concat(extra(head)));
    for (const c of this.chunks) res.write(c);
    if (this.done) {
      res.end();
      return;
    }
    const sink: Sink = { res, extra };
    this.#sinks.push(sink);
    res.on('close', () => this.#detach(sink));
    // Backpressure from the first response only: waiters' bytes are in memory anyway. Every
    // sink listens, because a waiter becomes the first when the first response goes away.
    res.on('drain', () => { if (this.#sinks[0] === sink) this.#body?.resume(); });
  }

  chunk(buf: Buffer, maxBytes: number): void {
    this.bytes += buf.length;
    if (this.capturing) {
      if (this.bytes > maxBytes) {
        this.capturing = false;
        this.joinable = false;
        this.chunks.length = 0;
      } else {
        this.chunks.push(buf);
      }
    }
    let congested = false;
    for (let i = 0; i < this.#sinks.length; i++) {
      const ok = this.#sinks[i]!.res.write(buf);
      if (i === 0 && !ok) congested = true;
    }
    if (congested) this.#body?.pause();
    else if (this.#sinks.length === 0 && !this.capturing) this.#abandonIfIdle();
  }

  end(): void {
    this.done = true;
    this.joinable = false;
    for (const s of this.#sinks) s.res.end();
    this.#sinks.length = 0;
  }

  fail(err: Error): void {
    this.failed = err;
    this.joinable = false;
    const pending = this.#pending;
    this.#pending = [];
    for (const cb of pending) cb(undefined);
    // Mid-body: the only honest signal left is to cut the connection.
    for (const s of this.#sinks) s.res.destroy(err);
    this.#sinks.length = 0;
  }

  /** Nobody left to deliver to and nothing worth keeping: the origin body can stop. */
  get abandoned(): boolean {
    return this.#sinks.length === 0 && !this.capturing && this.#pending.length === 0;
  }

  #detach(sink: Sink): void {
    const i = this.#sinks.indexOf(sink);
    if (i === -1) return;
    this.#sinks.splice(i, 1);
    if (i === 0) this.#body?.resume();
    this.#abandonIfIdle();
  }

  #abandonIfIdle(): void {
    if (!this.abandoned || this.done || this.#body === undefined) return;
    const body = this.#body;
    this.#body = undefined;
    body.destroy();
    this.#onAbandon?.(this);
  }
}

/** Flights in progress by primary key: the single-flight table. */
/** Writes through this sidecar remembered with their keys (Flights.writtenSince); a fetch
 *  older than all of them is treated as overtaken by a write. */
const WRITES_KEPT = 256;

export class Flights {
  readonly #byKey = new Map<string, Flight>();
  // Read-your-writes until the log brings the write's invalidation back: the store's fence check
  // cannot see a write before then, so a fetch that began before it (a flight, or a range fetch,
  // which is in no table) must not store what it got: it may be the version the write replaced.
  #writeSeq = 0;
  readonly #writes: Array<{ readonly seq: number; readonly keys: readonly string[] }> = [];

  /** Writes so far: a fetch takes this when it begins and asks writtenSince when it would store. */
  get writeSeq(): number {
    return this.#writeSeq;
  }

  /** A write through this sidecar removed `keys` (RFC 9111 §4.4): fetches of them under way may
   *  carry what it replaced, and no request after it may join them. */
  wrote(keys: readonly string[]): void {
    this.#writes.push({ seq: ++this.#writeSeq, keys });
    if (this.#writes.length > WRITES_KEPT) this.#writes.shift();
    this.invalidate((f) => keys.includes(f.key));
  }

  /** Has a write through this sidecar removed `key` since writeSeq was `seq`? Yes too when
   *  writes since then are no longer all remembered. */
  writtenSince(key: string, seq: number): boolean {
    if (seq === this.#writeSeq) return false;
    if (seq < this.#writes[0]!.seq - 1) return true;
    for (let i = this.#writes.length - 1; i >= 0 && this.#writes[i]!.seq > seq; i--) {
      if (this.#writes[i]!.keys.includes(key)) return true;
    }
    return false;
  }

  get(key: string): Flight | undefined {
    const f = this.#byKey.get(key);
    return f !== undefined && f.joinable ? f : undefined;
  }

  /** A new flight; `collapse` false: a private fetch others may not join. */
  start(key: string, fence: Fence, generation: number, collapse = true): Flight {
    const f = new Flight(key, fence, generation, (abandoned) => this.finish(abandoned));
    f.writeSeq = this.#writeSeq;
    if (collapse) this.#byKey.set(key, f);
    else f.joinable = false;
    return f;
  }

  finish(f: Flight): void {
    if (this.#byKey.get(f.key) === f) this.#byKey.delete(f.key);
  }

  /** An invalidation arrived: requests after it must not join fetches that began before. */
  invalidate(matches: (f: Flight) => boolean): void {
    for (const [key, f] of this.#byKey) {
      if (matches(f)) {
        f.joinable = false;
        f.overtaken = true;
        this.#byKey.delete(key);
      }
    }
  }

  get size(): number {
    return this.#byKey.size;
  }
}
