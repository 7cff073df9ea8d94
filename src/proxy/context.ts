// The request path's two contexts. A Pipeline is what every phase shares for the handler's
// life: services, the single-flight table, sets and strings made once. An Exchange is one
// request on its way from lookup to deliver: what every phase after lookup reads and writes
// about it, in one place. A fresh hit makes no Exchange: it is served before one is needed.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.js';
import type { Config } from '../core/config.js';
import type { CacheOutcome, Metrics } from '../core/metrics.js';
import type { Invalidation, LogPosition } from '../core/types.js';
import type { SecondaryKey } from '../http/vary.js';
import type { Cache } from '../store/cache.js';
import type { Entry } from '../store/types.js';
import type { Compressor } from './compress.js';
import type { StatusContext } from './deliver.js';
import type { Flights } from './flight.js';
import type { KeyOptions } from './key.js';
import type { Origin } from './origin.js';
import type { Receiver, Target } from './recv.js';
import type { Router } from './route.js';
import type { WriteInvalidations } from './write-invalidations.js';

export interface Services {
  readonly config: Config;
  readonly cache: Cache;
  readonly origin: Origin;
  readonly log: LogPosition;
  readonly router: Router;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** The time freshness and Age are computed from (default: the cache's clock). */
  readonly clock?: Clock;
  /** Called after an entry is stored here as its owner: replicate it (cluster mode). */
  readonly onStored?: (entry: Entry) => void;
  /** True while the sidecar may not trust its cache without revalidation (detached too long). */
  readonly mustRevalidateAll?: () => boolean;
  /** Where write invalidations go: to the log, queued while it cannot take them. */
  readonly writeQueue: { submit(inval: Invalidation): void };
  /** The fetches in progress, shared with whatever applies invalidations (the Invalidator). */
  readonly flights: Flights;
  /** Applies a write's invalidation here at once (read-your-writes), before the log brings it
   *  to every member: the cluster's Invalidator, the same that applies the log's. */
  readonly invalidator: { keys(keys: readonly string[]): void };
  /** A response for `key` was not stored, and why (sidecache inspect). Miss path only. */
  readonly onNotStored?: (key: string, reason: string) => void;
  /** Compression on store, shared with what stores fills (default: one of the handler's own). */
  readonly compressor?: Compressor;
}

/** What the phases share, made once by the handler. */
export interface Pipeline {
  readonly s: Services;
  readonly clock: Clock;
  readonly recv: Receiver;
  readonly keyOpts: KeyOptions;
  readonly flights: Flights;
  readonly statusCtx: StatusContext;
  readonly secondary: SecondaryKey;
  /** Response fields never stored: ours (Age, Cache-Status, Via, the peer fence) and, when configured, tags. */
  readonly dropOnStore: ReadonlySet<string>;
  /** Response fields never passed on to a client from upstream. */
  readonly dropOnPass: ReadonlySet<string>;
  readonly writes: WriteInvalidations;
  readonly compressor: Compressor;
}

/** One cacheable request that is not a fresh hit: a miss, a revalidation, or a background
 *  refresh (stale-while-revalidate) that nobody waits for. */
export interface Exchange {
  readonly req: IncomingMessage;
  /** undefined: a background revalidation; its answer is only stored. */
  readonly res: ServerResponse | undefined;
  readonly target: Target;
  readonly key: string;
  /** The stored entry to revalidate, or to serve on an origin error (stale-if-error). */
  readonly stale: Entry | undefined;
  /** From a peer that chose us as owner: never forwarded again (one hop), and told the
   *  tags and fence of what it gets. */
  readonly fromPeer: boolean;
  /** Records how the request ended (counted when its response closes). */
  readonly setOutcome: (o: CacheOutcome) => void;
}
