// Prometheus metrics (prom-client) in one registry per sidecar. Children with fixed label
// values are made once, so the hit path pays one increment, not a label lookup.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const CacheOutcome = {
  hit: 'hit',
  stale: 'stale',
  miss: 'miss',
  collapsed: 'collapsed',
  revalidated: 'revalidated',
  pass: 'pass',
  forwarded: 'forwarded',
  error: 'error',
} as const;
export type CacheOutcome = (typeof CacheOutcome)[keyof typeof CacheOutcome];

export class Metrics {
  readonly registry = new Registry();
  readonly requests: Record<CacheOutcome, Counter.Internal>;
  readonly latency: Record<CacheOutcome, Histogram.Internal<string>>;
  readonly originRequests: Counter<string>;
  readonly originErrors: Counter<string>;
  readonly clientErrors: Counter<string>;
  readonly purges: Counter<string>;
  readonly invalidationsApplied: Counter<string>;
  readonly entriesInvalidated: Counter<string>;
  readonly evictions: Counter<string>;
  readonly fillsRejected: Counter<string>;
  readonly gaps: Counter<string>;
  readonly flushedEntries: Counter<string>;
  readonly peerRequests: Counter<string>;
  readonly peerErrors: Counter<string>;
  readonly degradedFetches: Counter<string>;
  readonly replicaFillsApplied: Counter<string>;
  readonly handoffKeysReplayed: Counter<string>;
  readonly peerRejected: Counter<string>;

  constructor(sources: {
    bytes: () => number;
    entries: () => number;
    hotBytes: () => number;
    appliedSeq: () => number;
    epoch: () => number;
    members: () => number;
    partitionsOwned: () => number;
    attached: () => number;
    fills: () => { published: number; dropped: number };
  }) {
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: 'sidecache_process_' });
    const requests = new Counter({ name: 'sidecache_requests_total', help: 'Client requests by cache outcome', labelNames: ['outcome'], registers: [r] });
    const latency = new Histogram({
      name: 'sidecache_request_duration_seconds', help: 'Time to response end by cache outcome', labelNames: ['outcome'],
      buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [r],
    });
    const outcomes = Object.values(CacheOutcome);
    this.requests = Object.fromEntries(outcomes.map((o) => [o, requests.labels(o)])) as Record<CacheOutcome, Counter.Internal>;
    this.latency = Object.fromEntries(outcomes.map((o) => [o, latency.labels(o)])) as Record<CacheOutcome, Histogram.Internal<string>>;
    const counter = (name: string, help: string, labelNames: string[] = []) => new Counter({ name, help, labelNames, registers: [r] });
    this.originRequests = counter('sidecache_origin_requests_total', 'Requests sent to origins');
    this.originErrors = counter('sidecache_origin_errors_total', 'Origin requests that failed, by reason', ['reason']);
    this.clientErrors = counter('sidecache_client_errors_total', 'Requests refused with a 4xx, by reason', ['reason']);
    this.purges = counter('sidecache_purges_total', 'Purges requested through the admin API, by kind', ['kind']);
    this.invalidationsApplied = counter('sidecache_invalidations_applied_total', 'Invalidations applied from the log, by kind', ['kind']);
    this.entriesInvalidated = counter('sidecache_entries_invalidated_total', 'Entries removed or marked stale by invalidations');
    this.evictions = counter('sidecache_evictions_total', 'Entries evicted to stay within the byte budget');
    this.fillsRejected = counter('sidecache_fills_rejected_total', 'Fills not stored because a newer invalidation matched (no resurrection)');
    this.gaps = counter('sidecache_log_gaps_total', 'Times the log no longer held the invalidations after the applied seq');
    this.flushedEntries = counter('sidecache_flushed_entries_total', 'Entries flushed because freshness could not be proven');
    this.peerRequests = counter('sidecache_forwarded_requests_total', 'Requests forwarded to the owning peer');
    this.peerErrors = counter('sidecache_peer_errors_total', 'Peer requests that failed, by peer', ['peer']);
    this.degradedFetches = counter('sidecache_degraded_fetches_total', 'Origin fetches made because no owner was reachable');
    this.replicaFillsApplied = counter('sidecache_replica_fills_applied_total', 'Fills from the log stored as replica entries');
    this.handoffKeysReplayed = counter('sidecache_handoff_keys_replayed_total', 'Fills replayed from the log for gained partitions');
    this.peerRejected = counter('sidecache_peer_rejected_total', 'Peer requests refused (unsigned, forged, replayed, other cluster)', ['reason']);
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({ name, help, registers: [r], collect() { this.set(read()); } });
    gauge('sidecache_cache_bytes', 'Bytes held by the owned store', sources.bytes);
    gauge('sidecache_cache_entries', 'Keys held by the owned store', sources.entries);
    gauge('sidecache_hot_bytes', 'Bytes held by the hot set of non-owned keys', sources.hotBytes);
    gauge('sidecache_log_applied_seq', 'Last invalidation seq applied', sources.appliedSeq);
    gauge('sidecache_ring_epoch', 'Epoch of the membership view in use', sources.epoch);
    gauge('sidecache_ring_members', 'Active members in the ring', sources.members);
    gauge('sidecache_partitions_owned', 'Partitions this sidecar owns (primary or replica)', sources.partitionsOwned);
    gauge('sidecache_log_attached', '1 when the log (NATS) is reachable', sources.attached);
    gauge('sidecache_fills_published', 'Fills published to the log', () => sources.fills().published);
    gauge('sidecache_fills_dropped', 'Fills dropped under pressure (replicas miss once)', () => sources.fills().dropped);
  }
}
