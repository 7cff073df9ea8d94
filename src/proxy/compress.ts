// Compression on store (README, Compression): an entry the rules allow (http/compressible.ts)
// is stored first as the origin sent it, and gains a gzip form when gzip completes. gzip runs
// in libuv's thread pool (zlib's callback API), never on the event loop, for bodies up to
// SIDECACHE_COMPRESS_MAX_BYTES, a few at a time with a bounded queue: under a burst of misses
// the rest stay identity-only rather than queue memory or threads without end. No hit runs
// zlib: each form is served from its own bytes (deliver.ts).
import { gzip } from 'node:zlib';
import { rawGet } from '../http/headers.js';
import { gzipHeaders, mayCompress, variantTakesGzip, variesOnCoding, type CompressRules } from '../http/compressible.js';
import type { Cache } from '../store/cache.js';
import { entrySize, ENTRY_OVERHEAD_BYTES, type Entry, type GzipForm } from '../store/types.js';

/** gzip runs at once at most: libuv's pool has 4 threads, shared with DNS and file I/O. */
const CONCURRENCY = 2;
/** Entries waiting for a thread at most; past it an entry stays identity-only. Bounds the
 *  bodies held only by the queue (entries purged while queued) to this many times the max. */
const MAX_QUEUED = 64;
/** A gzip form kept only when at most this fraction of the identity bytes: else the memory it
 *  costs buys clients little. */
const MAX_RATIO = 0.9;

/** The gzip form of an entry's identity fields and gzip bytes. */
export function gzipForm(identity: readonly string[], gz: Buffer): GzipForm {
  const headers = gzipHeaders(identity, gz.length);
  return { headers, body: gz, etag: rawGet(headers, 'etag') };
}

/** Bytes a gzip form adds to its entry's charge (store/types.ts entrySize, without the overhead). */
export function formSize(form: GzipForm): number {
  return entrySize('', form.headers, form.body.length) - ENTRY_OVERHEAD_BYTES;
}

/** What became of an entry offered a gzip form (the metric's outcome label). */
export type CompressOutcome = 'stored' | 'not-smaller' | 'gone' | 'queue-full' | 'error';

export class Compressor {
  readonly #cache: Cache;
  readonly #rules: CompressRules;
  readonly #onOutcome: (outcome: CompressOutcome) => void;
  readonly #queue: Entry[] = [];
  #running = 0;
  #idle: (() => void)[] = [];

  constructor(cache: Cache, rules: CompressRules, onOutcome: (outcome: CompressOutcome) => void = () => {}) {
    this.#cache = cache;
    this.#rules = rules;
    this.#onOutcome = onOutcome;
  }

  /** A stored entry: gains a gzip form later when the rules allow one. */
  consider(entry: Entry): void {
    if (entry.gzip !== undefined || !this.#rules.compress) return;
    if (!mayCompress(entry.status, entry.headers, this.#rules, entry.body.length)) return;
    if (!variantTakesGzip(entry.varyNames, entry.varyValues)) return;
    // Only an entry whose every response already said Vary: Accept-Encoding (admit.ts adds it
    // to what it may compress): one made otherwise (from parts, by an older member) keeps one form.
    if (!variesOnCoding(entry.headers)) return;
    if (this.#running < CONCURRENCY) this.#run(entry);
    else if (this.#queue.length < MAX_QUEUED) this.#queue.push(entry);
    else this.#onOutcome('queue-full');
  }

  /** Resolves when no gzip runs or waits (tests, shutdown). */
  idle(): Promise<void> {
    if (this.#running === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #run(entry: Entry): void {
    this.#running++;
    gzip(entry.body, (err, gz) => {
      this.#running--;
      if (err === null) this.#done(entry, gz);
      else this.#onOutcome('error');
      this.#next();
    });
  }

  #next(): void {
    while (this.#running < CONCURRENCY && this.#queue.length > 0) {
      const e = this.#queue.shift()!;
      // Purged or replaced while it waited: nothing to compress it for.
      if (this.#cache.holds(e)) this.#run(e);
      else this.#onOutcome('gone');
    }
    if (this.#running === 0) for (const resolve of this.#idle.splice(0)) resolve();
  }

  #done(entry: Entry, gz: Buffer): void {
    if (gz.length > entry.body.length * MAX_RATIO) {
      this.#onOutcome('not-smaller');
      return;
    }
    // zlib may hand back a slice of a larger buffer: keep only the bytes charged for.
    let own = gz;
    if (gz.buffer.byteLength !== gz.length) {
      own = Buffer.allocUnsafeSlow(gz.length);
      gz.copy(own);
    }
    const form = gzipForm(entry.headers, own);
    // Made now, not before gzip ran: a soft purge since is copied with the rest. Stored only
    // if the entry is still the stored one: one purged meanwhile is not brought back.
    this.#onOutcome(this.#cache.upgrade(entry, { ...entry, gzip: form, size: entry.size + formSize(form) }) ? 'stored' : 'gone');
  }
}
