// One member's own status, as it answers the signed status query on the peer port and as
// GET /cluster/members lists it: state, ring, log position, cache size and request counters.
// Counters are totals since the start: rates are differences between two reads (`at`).
import { readFileSync } from 'node:fs';
import type { InvalidationLog, Membership } from '../log/types.js';
import type { MemberState } from '../core/types.js';
import { CacheOutcome, type Metrics } from '../core/metrics.js';
import type { Cache } from '../store/cache.js';
import type { OwnerTable } from './placement.js';

/** Version of the shapes below (MemberStatus and the report of GET /cluster/members). */
export const STATUS_VERSION = 1;

/** Path prefix of member queries on the peer port: signed POSTs, never forwarded misses
 *  (a miss goes to its owner as a GET, proxy/route.ts). */
export const CONTROL_PREFIX = '/.sidecache/';

export const PACKAGE_VERSION: string = (() => {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
})();

export interface MemberStatus {
  readonly id: string;
  readonly version: string;
  /** Epoch-ms on the member's clock when this was taken; rates divide by differences of it. */
  readonly at: number;
  readonly startedAt: number;
  /** Its state in its own view; 'absent' when its view does not list it. */
  readonly state: MemberState | 'absent';
  /** /readyz would answer 200. */
  readonly ready: boolean;
  /** Drained (POST /drain) or stopping: it routes around itself and serves by forwarding. */
  readonly draining: boolean;
  /** Connected to the log (NATS). */
  readonly attached: boolean;
  /** Epoch of the ring it routes with, and the members placed on that ring. */
  readonly epoch: number;
  readonly ring: readonly string[];
  /** INVAL incarnation its appliedSeq counts in: seqs of different incarnations do not compare. */
  readonly incarnation: string;
  readonly appliedSeq: number;
  /** The highest seq it knows the log holds (absent from members of earlier versions). */
  readonly knownSeq?: number;
  /** Partitions it owns as primary or replica, of `total`. */
  readonly partitions: { readonly total: number; readonly primary: number; readonly replica: number };
  readonly cache: { readonly entries: number; readonly bytes: number; readonly hotEntries: number; readonly hotBytes: number };
  /** Client requests by outcome (sidecache_requests_total). */
  readonly requests: Readonly<Record<CacheOutcome, number>>;
  /** (hit + stale) / (hit + stale + miss + collapsed + revalidated + forwarded); null before any. */
  readonly hitRatio: number | null;
  readonly originRequests: number;
  readonly forwardedRequests: number;
  readonly degradedFetches: number;
  /** Purges requested through this member's admin API. */
  readonly purges: number;
  /** Invalidations it applied from the log (every member applies every one). */
  readonly invalidationsApplied: number;
}

export interface MemberStatusSources {
  readonly id: string;
  readonly partitions: number;
  readonly startedAt: number;
  readonly log: InvalidationLog & Pick<Membership, 'view'>;
  readonly cache: Cache;
  readonly metrics: Metrics;
  /** The ring it routes with; undefined: standalone (it owns every partition). */
  readonly table: () => OwnerTable | undefined;
  readonly ready: () => boolean;
  readonly draining: () => boolean;
}

async function total(metric: { get(): Promise<{ values: readonly { value: number }[] }> }): Promise<number> {
  let n = 0;
  for (const v of (await metric.get()).values) n += v.value;
  return n;
}

export function hitRatioOf(r: Readonly<Record<CacheOutcome, number>>): number | null {
  const hits = r.hit + r.stale;
  const lookups = hits + r.miss + r.collapsed + r.revalidated + r.forwarded;
  return lookups === 0 ? null : hits / lookups;
}

export async function memberStatus(s: MemberStatusSources): Promise<MemberStatus> {
  const view = s.log.view;
  const table = s.table();
  let primary = 0;
  let replica = 0;
  if (table === undefined) {
    primary = s.partitions;
  } else {
    for (const owners of table.owners) {
      const i = owners.indexOf(s.id);
      if (i === 0) primary++;
      else if (i > 0) replica++;
    }
  }
  const requests = s.metrics.requests.counts();
  const m = s.metrics;
  const [originRequests, forwardedRequests, degradedFetches, purges, invalidationsApplied] = await Promise.all([
    total(m.originRequests), total(m.peerRequests), total(m.degradedFetches), total(m.purges), total(m.invalidationsApplied),
  ]);
  return {
    id: s.id,
    version: PACKAGE_VERSION,
    at: Date.now(),
    startedAt: s.startedAt,
    state: view.members.find((x) => x.id === s.id)?.state ?? 'absent',
    ready: s.ready(),
    draining: s.draining(),
    attached: s.log.attached,
    epoch: table?.epoch ?? view.epoch,
    ring: table?.members ?? [s.id],
    incarnation: s.log.incarnation,
    appliedSeq: s.log.appliedSeq,
    knownSeq: s.log.knownSeq,
    partitions: { total: s.partitions, primary, replica },
    cache: s.cache.stats,
    requests,
    hitRatio: hitRatioOf(requests),
    originRequests,
    forwardedRequests,
    degradedFetches,
    purges,
    invalidationsApplied,
  };
}
