// The one place an invalidation is applied on this sidecar: the stores, the flights in
// progress (so no request after a purge joins a fetch that began before it), the replicated
// state (a removed entry's fill is tombstoned) and the metrics. The log consumer calls it for
// every INVAL message, and the request path for its own writes (RFC 9111 §4.4) before the log
// carries them to every member.
import type { Logger } from 'pino';
import type { Metrics } from '../core/metrics.js';
import type { Invalidation } from '../core/types.js';
import type { Flights } from '../proxy/flight.js';
import { matches, type Cache } from '../store/cache.js';
import type { Entry } from '../store/types.js';
import type { Cluster } from './cluster.js';

export interface InvalidatorDeps {
  readonly cache: Cache;
  readonly flights: Flights;
  readonly cluster: Cluster;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

export class Invalidator {
  readonly #d: InvalidatorDeps;
  readonly #removed: (e: Entry) => void;

  constructor(d: InvalidatorDeps) {
    this.#d = d;
    this.#removed = (e) => d.cluster.removed(e);
  }

  /** INVAL message `seq`; returns the number of entries it removed or marked stale. */
  apply(seq: number, inval: Invalidation): number {
    const n = this.#d.cache.apply(seq, inval, this.#removed);
    this.#d.flights.invalidate((f) => {
      switch (inval.kind) {
        case 'url': return inval.keys.includes(f.key);
        case 'prefix': return f.key.startsWith(inval.prefix);
        case 'all': return true;
        // Tags are known once the head is: a flight without one might carry the tag.
        case 'tags': return f.head === undefined || matches(inval, { tags: f.head.tags } as Entry);
      }
    });
    this.#d.metrics.invalidationsApplied.labels(inval.kind).inc();
    this.#d.metrics.entriesInvalidated.inc(n);
    return n;
  }

  /** A write through this sidecar invalidated these primary keys: here at once
   *  (read-your-writes), before the log brings the same keys back to every member. */
  keys(keys: readonly string[]): void {
    for (const k of keys) this.#d.cache.remove(k, this.#removed);
    this.#d.flights.wrote(keys);
  }

  /** The log lost invalidations after our applied seq (or was reset): flush everything. */
  gap(reason: string, fromSeq: number, toSeq: number): void {
    const n = this.#d.cache.flush(toSeq);
    this.#d.flights.invalidate(() => true);
    this.#d.metrics.gaps.inc();
    this.#d.metrics.flushedEntries.inc(n);
    this.#d.logger.error({ reason, fromSeq, toSeq, flushed: n }, 'log gap: invalidations after our applied seq are gone; flushed every entry');
  }
}
