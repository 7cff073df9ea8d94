// Applying invalidations from the log to this sidecar: the stores, the flights in
// progress (so no request after a purge joins a fetch that began before it), metrics.
import type { Logger } from 'pino';
import type { Metrics } from '../core/metrics.js';
import type { Flights } from '../proxy/flight.js';
import { matches, type Cache } from '../store/cache.js';
import type { Entry } from '../store/types.js';
import type { Invalidation } from '../core/types.js';

export function applyInvalidation(
  cache: Cache, flights: Flights, metrics: Metrics, seq: number, inval: Invalidation, onRemoved?: (e: Entry) => void,
): number {
  const n = cache.apply(seq, inval, onRemoved);
  flights.invalidate((f) => {
    switch (inval.kind) {
      case 'url': return inval.keys.includes(f.key);
      case 'prefix': return f.key.startsWith(inval.prefix);
      case 'all': return true;
      // Tags are known once the head is: a flight without one might carry the tag.
      case 'tags': return f.head === undefined || matches(inval, { tags: f.head.tags } as Entry);
    }
  });
  metrics.invalidationsApplied.labels(inval.kind).inc();
  metrics.entriesInvalidated.inc(n);
  return n;
}

export function applyGap(cache: Cache, flights: Flights, metrics: Metrics, logger: Logger, reason: string, fromSeq: number, toSeq: number): void {
  const n = cache.flush(toSeq);
  flights.invalidate(() => true);
  metrics.gaps.inc();
  metrics.flushedEntries.inc(n);
  logger.error({ reason, fromSeq, toSeq, flushed: n }, 'log gap: invalidations after our applied seq are gone; flushed every entry');
}
