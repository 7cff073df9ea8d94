// Requests by outcome and their latency: counted in plain arrays, exported as prom-client would.
import t from 'tap';
import { Counter, Histogram, Registry } from 'prom-client';
import { Metrics } from '../../src/core/metrics.js';

const sources = {
  bytes: () => 0, entries: () => 0, hotBytes: () => 0, appliedSeq: () => 0, epoch: () => 0, members: () => 0,
  partitionsOwned: () => 0, attached: () => 0, fills: () => ({ published: 0, dropped: 0, undecodable: 0 }),
};
const BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const OBSERVED: Array<['hit' | 'miss' | 'pass', number]> = [
  ['hit', 0.00005], ['hit', 0.0001], ['hit', 0.0003], ['miss', 0.02], ['hit', 20], ['pass', 0.5], ['miss', 10],
];

function lines(text: string): string {
  return text.split('\n').filter((l) => /^(# (HELP|TYPE) )?sidecache_request(s_total|_duration_seconds)/.test(l)).join('\n');
}

t.test('metrics - requests and latency read the same as prom-client counters and histograms', async (t) => {
  const m = new Metrics(sources);
  for (const [o, v] of OBSERVED) m.requests.observe(o, v);

  const r = new Registry();
  const counter = new Counter({ name: 'sidecache_requests_total', help: 'Client requests by cache outcome', labelNames: ['outcome'], registers: [r] });
  const histogram = new Histogram({
    name: 'sidecache_request_duration_seconds', help: 'Time to response end by cache outcome', labelNames: ['outcome'], buckets: BUCKETS, registers: [r],
  });
  for (const [o, v] of OBSERVED) {
    counter.labels(o).inc();
    histogram.labels(o).observe(v);
  }
  // prom-client lists label sets in the order first seen; ours are in outcome order: compare as sets of lines.
  const ours = lines(await m.registry.metrics()).split('\n').sort();
  const theirs = lines(await r.metrics()).split('\n').sort();
  t.same(ours, theirs);
  t.match(await m.registry.metrics(), /^sidecache_requests_total\{outcome="hit"\} 4$/m);
  t.match(await m.registry.metrics(), /^sidecache_request_duration_seconds_bucket\{le="0.0001",outcome="hit"\} 2$/m, 'a value on a bound is in that bucket');
  t.notMatch(await m.registry.metrics(), /outcome="stale"/, 'outcomes never seen are not exported');
});

t.test('metrics - observeAt by index, reset through the registry', async (t) => {
  const m = new Metrics(sources);
  const hit = m.requests.indexOf('hit');
  m.requests.observeAt(hit, 0.002);
  m.requests.observeAt(hit, Number.NaN);
  const json = await m.registry.getMetricsAsJSON();
  const requests = json.find((x) => x.name === 'sidecache_requests_total')!;
  t.same(requests.values, [{ labels: { outcome: 'hit' }, value: 1 }], 'a non-finite latency is not counted');
  const latency = json.find((x) => x.name === 'sidecache_request_duration_seconds')!;
  t.equal(latency.type, 'histogram');
  t.equal(latency.values.length, BUCKETS.length + 3, 'buckets, +Inf, _sum and _count');
  m.registry.resetMetrics();
  t.notMatch(await m.registry.metrics(), /sidecache_requests_total\{/);
});

t.test('metrics - process metrics, with the garbage-collection histogram only when asked for', async (t) => {
  const plain = await new Metrics(sources).registry.metrics();
  for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_space_size_total_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_version_info']) {
    t.match(plain, new RegExp(`^# TYPE sidecache_process_${name} `, 'm'), `${name} is exported`);
  }
  t.notMatch(plain, /nodejs_gc_duration_seconds/, 'no GC histogram by default');
  const withGc = await new Metrics(sources, { gcDurations: true }).registry.metrics();
  t.match(withGc, /^# TYPE sidecache_process_nodejs_gc_duration_seconds histogram$/m);
});
