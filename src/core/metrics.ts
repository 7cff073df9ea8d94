// Prometheus metrics (prom-client) in one registry per sidecar. Requests by outcome and their
// latency are counted in plain arrays (RequestStats): the hit path pays a few additions, not
// prom-client's label hashing and allocations (about 250 ns per hit); they are exported through
// the same registry in prom-client's counter and histogram format.
import { createRequire } from 'node:module';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

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

const requireCjs = createRequire(import.meta.url);
type DefaultCollector = (registry: Registry, config: { prefix: string; eventLoopMonitoringPrecision: number }) => void;

/**
 * prom-client's default process metrics, with or without its garbage-collection histogram. That
 * one observes every collection through a perf_hooks observer, and Node builds a performance entry
 * in JavaScript per collection: with the young generation held small, 5-6 % of a hit's or a miss's CPU
 * (benchmarks/README.md). collectDefaultMetrics cannot leave one out, so its collectors, listed by
 * prom-client itself, are registered one by one.
 */
function registerProcessMetrics(registry: Registry, gcDurations: boolean): void {
  // Event-loop delay sampled every 100 ms, not prom-client's 10: its timer would wake an idle
  // sidecar 100 times a second (about 1 % of a core here, with the young-generation check). A
  // stall still shows in full, as the lateness of the sample it delays.
  const config = { prefix: 'sidecache_process_', eventLoopMonitoringPrecision: 100 };
  let collectors: DefaultCollector[];
  try {
    collectors = collectDefaultMetrics.metricsList
      .filter((name) => name !== 'gc' || gcDurations)
      .map((name) => requireCjs(`prom-client/lib/metrics/${name}.js`) as DefaultCollector);
  } catch {
    // A prom-client whose files are laid out otherwise: all of its defaults, the costly one too,
    // rather than no start-up.
    collectDefaultMetrics({ register: registry, ...config });
    return;
  }
  for (const collect of collectors) collect(registry, config);
}

const OUTCOMES: readonly CacheOutcome[] = Object.values(CacheOutcome);
const LATENCY_BUCKETS: readonly number[] = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * sidecache_requests_total and sidecache_request_duration_seconds, by outcome. `observe` does
 * not allocate. Only outcomes seen since the start (or the last reset) are exported, as
 * prom-client does for label values it has not been given yet.
 */
export class RequestStats {
  readonly #index = new Map<CacheOutcome, number>(OUTCOMES.map((o, i) => [o, i]));
  readonly #counts = new Float64Array(OUTCOMES.length);
  readonly #sums = new Float64Array(OUTCOMES.length);
  /** Per outcome, LATENCY_BUCKETS.length + 1 slots (the last one: above every bound); not cumulative. */
  readonly #buckets = new Float64Array(OUTCOMES.length * (LATENCY_BUCKETS.length + 1));

  /** Index of an outcome, for observeAt on hot paths. */
  indexOf(o: CacheOutcome): number {
    return this.#index.get(o)!;
  }

  observe(o: CacheOutcome, seconds: number): void {
    this.observeAt(this.#index.get(o)!, seconds);
  }

  observeAt(i: number, seconds: number): void {
    if (!Number.isFinite(seconds)) return;
    this.#counts[i]! += 1;
    this.#sums[i]! += seconds;
    const n = LATENCY_BUCKETS.length;
    let b = 0;
    while (b < n && seconds > LATENCY_BUCKETS[b]!) b++;
    this.#buckets[i * (n + 1) + b]! += 1;
  }

  /** Requests counted so far, by outcome (GET /cluster/members, sidecache top). */
  counts(): Record<CacheOutcome, number> {
    const out = {} as Record<CacheOutcome, number>;
    OUTCOMES.forEach((o, i) => { out[o] = this.#counts[i]!; });
    return out;
  }

  reset(): void {
    this.#counts.fill(0);
    this.#sums.fill(0);
    this.#buckets.fill(0);
  }

  /** Registry view of the request counter. */
  counter(name: string, help: string): RegistryMetric {
    return this.#view(name, help, 'counter', () => {
      const values: MetricValue[] = [];
      OUTCOMES.forEach((outcome, i) => {
        if (this.#counts[i]! > 0) values.push({ labels: { outcome }, value: this.#counts[i]! });
      });
      return values;
    });
  }

  /** Registry view of the latency histogram (cumulative buckets, +Inf, _sum, _count). */
  histogram(name: string, help: string): RegistryMetric {
    return this.#view(name, help, 'histogram', () => {
      const values: MetricValue[] = [];
      const n = LATENCY_BUCKETS.length;
      OUTCOMES.forEach((outcome, i) => {
        const count = this.#counts[i]!;
        if (count === 0) return;
        let acc = 0;
        for (let b = 0; b < n; b++) {
          acc += this.#buckets[i * (n + 1) + b]!;
          values.push({ labels: { le: LATENCY_BUCKETS[b]!, outcome }, value: acc, metricName: `${name}_bucket` });
        }
        values.push({ labels: { le: '+Inf', outcome }, value: count, metricName: `${name}_bucket` });
        values.push({ labels: { outcome }, value: this.#sums[i]!, metricName: `${name}_sum` });
        values.push({ labels: { outcome }, value: count, metricName: `${name}_count` });
      });
      return values;
    });
  }

  #view(name: string, help: string, type: RegistryMetric['type'], values: () => MetricValue[]): RegistryMetric {
    return {
      name,
      help,
      type,
      aggregator: 'sum',
      get: async () => ({ name, help, type, aggregator: 'sum', values: values() }),
      reset: () => this.reset(),
    };
  }
}

/** One exported sample, as prom-client's metrics return them from get(). */
interface MetricValue {
  readonly labels: Record<string, string | number>;
  readonly value: number;
  readonly metricName?: string;
}

/** What Registry needs of a metric: registerMetric, metrics(), getMetricsAsJSON(), resetMetrics(). */
interface RegistryMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly aggregator: 'sum';
  get(): Promise<{ name: string; help: string; type: 'counter' | 'histogram'; aggregator: 'sum'; values: MetricValue[] }>;
  reset(): void;
}

export class Metrics {
  readonly registry = new Registry();
  /** Requests and their latency by outcome (sidecache_requests_total, sidecache_request_duration_seconds). */
  readonly requests = new RequestStats();
  readonly originRequests: Counter<string>;
  readonly originErrors: Counter<string>;
  readonly clientErrors: Counter<string>;
  readonly purges: Counter<string>;
  readonly invalidationsApplied: Counter<string>;
  readonly entriesInvalidated: Counter<string>;
  readonly evictions: Counter<string>;
  readonly fillsRejected: Counter<string>;
  readonly fencesUntrusted: Counter<string>;
  readonly compressions: Counter<string>;
  readonly gaps: Counter<string>;
  readonly flushedEntries: Counter<string>;
  readonly peerRequests: Counter<string>;
  readonly peerErrors: Counter<string>;
  readonly degradedFetches: Counter<string>;
  readonly replicaFillsApplied: Counter<string>;
  readonly handoffKeysReplayed: Counter<string>;
  readonly peerRejected: Counter<string>;
  readonly writeInvalidationsCoalesced: Counter<string>;
  readonly clientConnectionsDropped: Counter<string>;
  readonly peerConnectionsDropped: Counter<string>;

  constructor(sources: {
    bytes: () => number;
    entries: () => number;
    hotBytes: () => number;
    appliedSeq: () => number;
    epoch: () => number;
    members: () => number;
    partitionsOwned: () => number;
    attached: () => number;
    fills: () => { published: number; dropped: number; undecodable: number };
    /** The invalidation history: its bytes and the records it forgot to stay within them. */
    history?: () => { bytes: number; forgotten: number };
    /** Write invalidations waiting for the log (log/write-queue.ts). */
    writesPending?: () => number;
    /** Client connections open on the proxy listener. */
    clientConnections?: () => number;
  }, options: { gcDurations?: boolean } = {}) {
    const r = this.registry;
    registerProcessMetrics(r, options.gcDurations ?? false);
    r.registerMetric(this.requests.counter('sidecache_requests_total', 'Client requests by cache outcome') as never);
    r.registerMetric(this.requests.histogram('sidecache_request_duration_seconds', 'Time to response end by cache outcome') as never);
    const counter = (name: string, help: string, labelNames: string[] = []) => new Counter({ name, help, labelNames, registers: [r] });
    this.originRequests = counter('sidecache_origin_requests_total', 'Requests sent to origins');
    this.originErrors = counter('sidecache_origin_errors_total', 'Origin requests that failed, by reason', ['reason']);
    this.clientErrors = counter('sidecache_client_errors_total', 'Requests refused with a 4xx, by reason', ['reason']);
    this.purges = counter('sidecache_purges_total', 'Purges requested through the admin API, by kind', ['kind']);
    this.invalidationsApplied = counter('sidecache_invalidations_applied_total', 'Invalidations applied from the log, by kind', ['kind']);
    this.entriesInvalidated = counter('sidecache_entries_invalidated_total', 'Entries removed or marked stale by invalidations');
    this.evictions = counter('sidecache_evictions_total', 'Entries evicted to stay within the byte budget');
    this.fillsRejected = counter('sidecache_fills_rejected_total', 'Fills not stored because a newer invalidation matched (no resurrection)');
    this.fencesUntrusted = counter('sidecache_fences_untrusted_total',
      'Fills and peer answers not stored because their fence cannot be checked here, by source (fill, peer) and reason ' +
      '(missing; unreadable: malformed or of another version; incarnation: of another INVAL stream; predates-purge: a peer\'s answer ' +
      'older than a purge applied here, not served either: the origin is asked)', ['source', 'reason']);
    this.compressions = counter('sidecache_compressions_total',
      'Entries offered a gzip form (SIDECACHE_COMPRESS), by outcome: stored; not-smaller (gzip saved under 10 %); ' +
      'gone (purged, evicted or replaced before gzip ended); queue-full (left identity-only under a burst); error', ['outcome']);
    this.gaps = counter('sidecache_log_gaps_total', 'Times the log no longer held the invalidations after the applied seq');
    this.flushedEntries = counter('sidecache_flushed_entries_total', 'Entries flushed because freshness could not be proven');
    this.peerRequests = counter('sidecache_forwarded_requests_total', 'Requests forwarded to the owning peer');
    this.peerErrors = counter('sidecache_peer_errors_total', 'Peer requests that failed, by peer', ['peer']);
    this.degradedFetches = counter('sidecache_degraded_fetches_total', 'Origin fetches made because no owner was reachable');
    this.replicaFillsApplied = counter('sidecache_replica_fills_applied_total', 'Fills from the log stored as replica entries');
    this.handoffKeysReplayed = counter('sidecache_handoff_keys_replayed_total', 'Fills replayed from the log for gained partitions');
    this.peerRejected = counter('sidecache_peer_rejected_total', 'Peer requests refused, by reason: missing, wrong-cluster, stale, bad-signature, replay; tls: a connection refused in the TLS handshake (plaintext, no certificate, or one of another CA)', ['reason']);
    this.writeInvalidationsCoalesced = counter('sidecache_write_invalidations_coalesced_total', 'Writes whose invalidation was coalesced into a soft one of their parent path or host (over SIDECACHE_WRITE_INVAL_RATE), or of their host while waiting for the log past the queue bound');
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
    gauge('sidecache_fills_undecodable', 'Fills ignored as unreadable: another fill version (rolling upgrade) or malformed', () => sources.fills().undecodable);
    const history = sources.history ?? (() => ({ bytes: 0, forgotten: 0 }));
    gauge('sidecache_inval_history_bytes', 'Bytes of recent invalidations kept to refuse late fills (SIDECACHE_INVAL_HISTORY_BYTES)', () => history().bytes);
    new Counter({
      name: 'sidecache_inval_history_forgotten_total',
      help: 'Invalidation records forgotten to stay within SIDECACHE_INVAL_HISTORY_BYTES (fills fetched before them are refused)',
      registers: [r],
      collect() {
        this.reset();
        this.inc(history().forgotten);
      },
    });
    gauge('sidecache_write_invalidations_pending', 'Write invalidations waiting for the log to take them', () => sources.writesPending?.() ?? 0);
    gauge('sidecache_client_connections', 'Client connections open on the proxy listener (at most SIDECACHE_MAX_CONNECTIONS)', sources.clientConnections ?? (() => 0));
    this.clientConnectionsDropped = counter('sidecache_client_connections_dropped_total', 'Client connections closed on arrival because SIDECACHE_MAX_CONNECTIONS were open');
    this.peerConnectionsDropped = counter('sidecache_peer_connections_dropped_total', 'Connections to the peer port closed on arrival because SIDECACHE_MAX_CONNECTIONS were open there');
  }
}
