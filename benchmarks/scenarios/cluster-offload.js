// Scenario "offload": three apps request a Zipf(1.0) workload over 100k keys, each through its own
// cache, and we count what reaches the origin. Three systems with the same total memory, one after
// the other, each against a fresh origin and the same request sequence:
//   sidecache ring      3 sidecars, one cluster on a 3-node NATS (keys placed on the ring)
//   ring off            the same 3 sidecars with SIDECACHE_RING=false: 3 independent caches
//   shared redis        every app does cache-aside against one Redis (Debian's redis-server on a
//                       free port, allkeys-lru, maxmemory = the sidecars' three budgets)
// Figures: origin requests per unique key (whole run, and in the second half: "steady state"),
// cluster hit ratio, hit latency seen by the app. Sidecars and Redis on the server core; the apps
// (this harness), the origin and NATS on the load core.
import { Pool } from 'undici';
import { SERVER_CPU, LOAD_CPU } from '../lib/cpu.js';
import { sleep } from '../lib/processes.js';
import { fmt } from '../lib/results.js';
import { natsAvailable, NATS_SERVER_BIN } from '../../support/nats-server.ts';
import { ensureRedisServer, startRedis } from '../lib/redis.js';
import { scrapeMetrics } from '../lib/http.js';
import { startNatsCluster, sidecacheBuilt, startClusterSidecars, uniqueCluster, startVersionedOrigin, percentile } from '../lib/cluster.js';

export const description = 'cluster offload: Zipf(1.0) over 100k keys from 3 apps; sidecache ring vs 3 independent caches (ring off) vs one shared Redis, same total memory';

const MiB = 1024 * 1024;
const MODES = {
  dry: { keys: 1000, requests: 3000, ratePerSec: 1500, workersPerApp: 4, mainBytes: 4 * MiB, hotBytes: 1 * MiB, originDelayMs: 2 },
  quick: { keys: 100_000, requests: 90_000, ratePerSec: 2000, workersPerApp: 8, mainBytes: 48 * MiB, hotBytes: 16 * MiB, originDelayMs: 2 },
  full: { keys: 100_000, requests: 450_000, ratePerSec: 2000, workersPerApp: 8, mainBytes: 96 * MiB, hotBytes: 32 * MiB, originDelayMs: 2 },
};
const APPS = 3;
const BODY_BYTES = 1024;
const ZIPF_S = 1.0;
const SEED = 20261125;
const MAX_RUN_MS = 15 * 60_000;
const SYSTEMS = ['sidecache ring', 'ring off (3 independent)', 'shared redis'];

/** mulberry32: a small seeded PRNG, so every system gets the same request sequence. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` key ranks (0 = most popular) drawn from Zipf(s) over `keys` keys by inverse CDF. */
export function zipfSequence(keys, count, s = ZIPF_S, seed = SEED) {
  const cdf = new Float64Array(keys);
  let sum = 0;
  for (let k = 0; k < keys; k++) cdf[k] = sum += 1 / (k + 1) ** s;
  const rand = prng(seed);
  const seq = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    const u = rand() * sum;
    let lo = 0;
    let hi = keys - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    seq[i] = lo;
  }
  return seq;
}

const pathOf = (rank) => `/zipf/k${rank}`;

/** An app that reads through its sidecar: hit when the owner's Cache-Status entry (the first) says hit. */
function sidecarApp(sc, connections) {
  const pool = new Pool(`http://127.0.0.1:${sc.port}`, { connections, keepAliveTimeout: 60_000 });
  return {
    async get(p) {
      const r = await pool.request({ path: p, method: 'GET' });
      const body = await r.body.text();
      const cs = String(r.headers['cache-status'] ?? '');
      const first = cs.split(',')[0] ?? '';
      return { status: r.statusCode, bytes: body.length, hit: /;\s*hit\b/.test(first), forwarded: cs.split(',').length > 1 };
    },
    close: () => pool.close(),
  };
}

/** An app doing cache-aside against Redis: GET; on a miss fetch the origin and SET with the response's max-age. */
function redisApp(client, originUrl, connections) {
  const pool = new Pool(originUrl, { connections, keepAliveTimeout: 60_000 });
  return {
    async get(p) {
      const cached = await client.get(p);
      if (cached !== null) return { status: 200, bytes: cached.length, hit: true, forwarded: false };
      const r = await pool.request({ path: p, method: 'GET' });
      const body = await r.body.text();
      if (r.statusCode === 200) await client.set(p, body, { EX: 3600 });
      return { status: r.statusCode, bytes: body.length, hit: false, forwarded: false };
    },
    close: () => pool.close(),
  };
}

/**
 * Drives the sequence: request i goes to app i % 3 and is sent at t0 + i / rate (or as soon as
 * one of the app's `workers` concurrent requests is free, when the system falls behind). Paced,
 * so that latencies compare systems at the same load rather than each at its own saturation.
 */
async function drive({ seq, apps, workers, rate, origin, tag, log }) {
  const n = seq.length;
  const half = Math.floor(n / 2);
  const hitLat = [];
  const forwardedHitLat = [];
  const missLat = [];
  const stats = { done: 0, hits: 0, forwardedHits: 0, errors: 0, badStatus: 0, badBody: 0, samples: [] };
  const curve = [];
  let halfSnapshot = null;
  const step = Math.max(1, Math.floor(n / 100));
  const nextOf = Array.from({ length: APPS }, (_, a) => a);
  const t0 = performance.now();
  const deadline = Date.now() + MAX_RUN_MS;
  let lastLog = t0;
  const worker = async (a) => {
    while (nextOf[a] < n && Date.now() < deadline) {
      const i = nextOf[a];
      nextOf[a] += APPS;
      const p = pathOf(seq[i]);
      const due = t0 + (i * 1000) / rate - performance.now();
      if (due > 1) await sleep(due);
      const started = performance.now();
      try {
        const r = await apps[a].get(p);
        const ms = performance.now() - started;
        if (r.status !== 200) {
          stats.badStatus++;
          if (stats.samples.length < 5) stats.samples.push(`${p}: status ${r.status}`);
        } else if (r.bytes !== BODY_BYTES) {
          stats.badBody++;
          if (stats.samples.length < 5) stats.samples.push(`${p}: ${r.bytes} bytes`);
        } else if (r.hit) {
          stats.hits++;
          if (r.forwarded) {
            stats.forwardedHits++;
            forwardedHitLat.push(ms);
          }
          hitLat.push(ms);
        } else missLat.push(ms);
      } catch (err) {
        stats.errors++;
        if (stats.samples.length < 5) stats.samples.push(`${p}: ${err.code ?? err.message}`);
      }
      stats.done++;
      if (stats.done % step === 0) curve.push({ requests: stats.done, originRequests: origin.requests });
      if (stats.done === half) halfSnapshot = new Map(origin.state.perPath);
      const now = performance.now();
      if (now - lastLog > 5000) {
        lastLog = now;
        log(`${tag} ${stats.done.toLocaleString('en-US')}/${n.toLocaleString('en-US')} requests, ${origin.requests.toLocaleString('en-US')} origin requests, ${Math.round((stats.done * 1000) / (now - t0))} req/s`);
      }
    }
  };
  await Promise.all(apps.flatMap((_, a) => Array.from({ length: workers }, () => worker(a))));
  const seconds = (performance.now() - t0) / 1000;
  return { stats, seconds, hitLat, forwardedHitLat, missLat, curve, halfSnapshot: halfSnapshot ?? new Map(), half, completed: stats.done === n };
}

/**
 * Origin requests per unique key over the whole run, and over its second half ("steady state"):
 * the origin requests made after the half-way snapshot per distinct key they were for. A cluster
 * that never fetches a key twice scores 1.00 on both.
 */
function originFigures(seq, perPath, halfSnapshot) {
  const unique = new Set(seq);
  let total = 0;
  let keysFetchedTwice = 0;
  let secondHalf = 0;
  let secondHalfKeys = 0;
  for (const [p, c] of perPath) {
    total += c;
    if (c > 1) keysFetchedTwice++;
    const later = c - (halfSnapshot.get(p) ?? 0);
    if (later > 0) {
      secondHalf += later;
      secondHalfKeys++;
    }
  }
  return {
    uniqueKeys: unique.size,
    originRequests: total,
    perUniqueKey: total / unique.size,
    keysFetchedTwice,
    secondHalfOrigin: secondHalf,
    secondHalfKeys,
    secondHalfPerKey: secondHalfKeys > 0 ? secondHalf / secondHalfKeys : null,
  };
}

async function runSidecars({ system, ring, cfg, nats, seq, tmpDir, log }) {
  const tag = `[offload ${system}]`;
  const origin = await startVersionedOrigin({ bytes: BODY_BYTES, delayMs: cfg.originDelayMs, countPaths: true });
  let sidecars = [];
  const apps = [];
  try {
    // Same memory per sidecar: with the ring, the owned store plus the hot set of non-owned keys;
    // without it, one store of the two budgets together.
    const extraEnv = { SIDECACHE_MAX_ENTRY_BYTES: '64KiB', ...(ring
      ? { SIDECACHE_MAX_BYTES: String(cfg.mainBytes), SIDECACHE_HOT_MAX_BYTES: String(cfg.hotBytes) }
      : { SIDECACHE_MAX_BYTES: String(cfg.mainBytes + cfg.hotBytes), SIDECACHE_HOT_MAX_BYTES: '1', SIDECACHE_RING: 'false' }) };
    log(`${tag} starting 3 sidecars (${Object.entries(extraEnv).map(([k, v]) => `${k}=${v}`).join(' ')})`);
    sidecars = await startClusterSidecars(3, { tmpDir, upstream: origin.url, natsUrls: nats.urls, cluster: uniqueCluster(ring ? 'offr' : 'offi'), cpu: SERVER_CPU, extraEnv, ids: ['a', 'b', 'c'].map((x) => `off${ring ? 'r' : 'i'}-${x}`) });
    apps.push(...sidecars.map((s) => sidecarApp(s, cfg.workersPerApp)));
    const run = await drive({ seq, apps, workers: cfg.workersPerApp, rate: cfg.ratePerSec, origin, tag, log });
    const held = await Promise.all(sidecars.map(async (s) => {
      const value = await scrapeMetrics(s.adminUrl);
      return { bytes: (value('sidecache_cache_bytes') ?? 0) + (value('sidecache_hot_bytes') ?? 0), evictions: value('sidecache_evictions_total') };
    }));
    return { run, origin, heldBytes: held.reduce((a, h) => a + h.bytes, 0), evictions: held.reduce((a, h) => a + (h.evictions ?? 0), 0), memoryBytes: 3 * (cfg.mainBytes + cfg.hotBytes) };
  } finally {
    for (const a of apps) await a.close().catch(() => undefined);
    for (const s of sidecars) await s.stop().catch(() => undefined);
    await origin.stop();
  }
}

async function runRedis({ cfg, seq, tmpDir, log, redisBin }) {
  const tag = '[offload shared redis]';
  const origin = await startVersionedOrigin({ bytes: BODY_BYTES, delayMs: cfg.originDelayMs, countPaths: true });
  const memoryBytes = 3 * (cfg.mainBytes + cfg.hotBytes);
  let redis;
  const clients = [];
  const apps = [];
  try {
    log(`${tag} starting redis-server (maxmemory ${memoryBytes}, allkeys-lru)`);
    redis = await startRedis({ bin: redisBin, tmpDir, cpu: SERVER_CPU, maxmemoryBytes: memoryBytes });
    const { createClient } = await import('redis');
    for (let a = 0; a < APPS; a++) {
      const c = createClient({ url: redis.url });
      c.on('error', () => {});
      await c.connect();
      clients.push(c);
      apps.push(redisApp(c, origin.url, cfg.workersPerApp));
    }
    const run = await drive({ seq, apps, workers: cfg.workersPerApp, rate: cfg.ratePerSec, origin, tag, log });
    const info = await clients[0].info();
    const num = (k) => Number((new RegExp(`^${k}:(\\d+)`, 'm').exec(info) ?? [])[1] ?? NaN);
    return { run, origin, heldBytes: num('used_memory'), evictions: num('evicted_keys'), memoryBytes, version: redis.version };
  } finally {
    for (const a of apps) await a.close().catch(() => undefined);
    for (const c of clients) await c.quit().catch(() => undefined);
    await redis?.stop();
    await origin.stop();
  }
}

export async function run(ctx) {
  const { mode, log, tmpDir, install } = ctx;
  if (!sidecacheBuilt()) return { skipped: 'dist/main.js not found: npm run build first' };
  if (!natsAvailable()) return { skipped: `nats-server not found at ${NATS_SERVER_BIN}` };
  const cfg = { ...MODES[mode], apps: APPS, bodyBytes: BODY_BYTES, zipfS: ZIPF_S, seed: SEED };
  const rows = [];
  const notes = [];
  const servers = [];
  const targets = [];
  const curves = [];
  log(`[offload] ${cfg.requests.toLocaleString('en-US')} requests at ${cfg.ratePerSec} req/s, Zipf(${ZIPF_S}) over ${cfg.keys.toLocaleString('en-US')} keys of ${BODY_BYTES} B, ${APPS} apps x ${cfg.workersPerApp} concurrent requests, origin answers after ${cfg.originDelayMs} ms`);
  const seq = zipfSequence(cfg.keys, cfg.requests);
  const redisBin = ensureRedisServer({ install: install && mode !== 'dry', log });
  const results = [];
  const nats = await startNatsCluster({ tmpDir, nodes: 3, cpu: LOAD_CPU });
  servers.push({ name: 'nats-server x3', status: 'ran', version: nats.version });
  try {
    results.push({ system: SYSTEMS[0], ...(await runSidecars({ system: SYSTEMS[0], ring: true, cfg, nats, seq, tmpDir, log })) });
    results.push({ system: SYSTEMS[1], ...(await runSidecars({ system: SYSTEMS[1], ring: false, cfg, nats, seq, tmpDir, log })) });
  } finally {
    await nats.stop();
  }
  servers.push({ name: 'sidecache x3', status: 'ran', version: `node ${process.version}` });
  if (redisBin) {
    try {
      const r = await runRedis({ cfg, seq, tmpDir, log, redisBin });
      results.push({ system: SYSTEMS[2], ...r });
      servers.push({ name: 'redis-server', status: 'ran', version: r.version });
    } catch (err) {
      servers.push({ name: 'redis-server', status: 'failed', reason: err.message });
      notes.push(`shared redis: ${err.message}`);
    }
  } else {
    servers.push({ name: 'redis-server', status: 'skipped', reason: 'not installed (apt-get install -y redis-server)' });
    notes.push('shared redis skipped: redis-server is not installed (apt-get install -y redis-server)');
  }

  for (const r of results) {
    const f = originFigures(seq, r.origin.state.perPath, r.run.halfSnapshot);
    const st = r.run.stats;
    rows.push({
      system: r.system,
      requests: st.done,
      seconds: r.run.seconds,
      rps: st.done / r.run.seconds,
      ...f,
      hitRatio: 1 - f.originRequests / st.done,
      appHits: st.hits,
      forwardedHits: st.forwardedHits,
      hitP50: percentile(r.run.hitLat, 50),
      hitP99: percentile(r.run.hitLat, 99),
      forwardedHitP50: percentile(r.run.forwardedHitLat, 50),
      forwardedHitP99: percentile(r.run.forwardedHitLat, 99),
      missP50: percentile(r.run.missLat, 50),
      errors: st.errors + st.badStatus + st.badBody,
      errorSamples: st.samples,
      heldBytes: r.heldBytes,
      memoryBytes: r.memoryBytes,
      evictions: r.evictions,
    });
    for (const c of r.run.curve) curves.push({ system: r.system, requests: c.requests, originRequests: c.originRequests });
    if (!r.run.completed) notes.push(`${r.system}: stopped after ${MAX_RUN_MS / 60000} min at ${st.done} of ${seq.length} requests`);
    if (st.samples.length > 0) notes.push(`${r.system}: ${st.errors} errors, ${st.badStatus} bad statuses, ${st.badBody} short bodies (${st.samples.join('; ')})`);
  }

  const ring = rows.find((r) => r.system === SYSTEMS[0]);
  const off = rows.find((r) => r.system === SYSTEMS[1]);
  const redis = rows.find((r) => r.system === SYSTEMS[2]);
  if (ring) {
    targets.push({ name: 'sidecache ring: origin requests per unique key <= 1.05 in steady state (second half)', status: ring.secondHalfPerKey !== null && ring.secondHalfPerKey <= 1.05 ? 'met' : 'missed', detail: `${fmt.ratio3(ring.secondHalfPerKey)} (whole run ${fmt.ratio3(ring.perUniqueKey)}; ${ring.keysFetchedTwice} of ${ring.uniqueKeys} keys fetched more than once)` });
    targets.push({ name: 'sidecache ring: no client errors', status: ring.errors === 0 ? 'met' : 'missed', detail: `${ring.errors} of ${ring.requests}` });
    for (const other of [off, redis]) {
      if (!other) continue;
      other.originVsRing = other.originRequests / ring.originRequests;
      notes.push(`${other.system}: ${fmt.ratio(other.originVsRing)} x the origin requests of the sidecache ring; hit p50 ${fmt.ms(other.hitP50)} vs ${fmt.ms(ring.hitP50)} ms, p99 ${fmt.ms(other.hitP99)} vs ${fmt.ms(ring.hitP99)} ms`);
    }
    ring.originVsRing = 1;
    notes.push(`sidecache ring: ${fmt.int(ring.forwardedHits)} of ${fmt.int(ring.appHits)} hits were served by the owner through the app's sidecar (p50 ${fmt.ms(ring.forwardedHitP50)} ms, p99 ${fmt.ms(ring.forwardedHitP99)} ms), the rest from the app's own sidecar`);
  }
  notes.push(`same total memory for every system: ${fmt.mib(3 * (cfg.mainBytes + cfg.hotBytes))} (each sidecar ${fmt.mib(cfg.mainBytes)} owned + ${fmt.mib(cfg.hotBytes)} hot with the ring, ${fmt.mib(cfg.mainBytes + cfg.hotBytes)} in one store without; Redis maxmemory the sum). With the ring each key is held by its owner and one replica (SIDECACHE_REPLICAS=2)`);
  notes.push('"2nd half" (steady state): origin requests made after half of the sequence had been answered, per distinct key they were for; a cache that never fetches a key twice scores 1.00');
  notes.push(`latency is measured by the app (this harness, on the load core) from sending to the last byte, with requests paced at ${cfg.ratePerSec} req/s in all (at most ${cfg.workersPerApp} in flight per app): a sidecar hit is one HTTP round trip (two when forwarded to the owner), a Redis hit one GET over the app's connection`);
  for (const r of rows) if (r.rps < 0.9 * cfg.ratePerSec) notes.push(`${r.system}: ${fmt.int(r.rps)} req/s, below the paced ${cfg.ratePerSec}: it fell behind and its latencies include queueing`);

  const columns = [
    { title: 'system', get: (r) => r.system, align: 'l' },
    { title: 'requests', get: (r) => fmt.int(r.requests) },
    { title: 'unique keys', get: (r) => fmt.int(r.uniqueKeys) },
    { title: 'origin reqs', get: (r) => fmt.int(r.originRequests) },
    { title: 'origin/key', get: (r) => fmt.ratio3(r.perUniqueKey) },
    { title: 'origin/key 2nd half', get: (r) => fmt.ratio3(r.secondHalfPerKey) },
    { title: 'x ring', get: (r) => fmt.ratio(r.originVsRing) },
    { title: 'hit ratio', get: (r) => fmt.pct(100 * r.hitRatio) },
    { title: 'hit p50 ms', get: (r) => fmt.ms(r.hitP50) },
    { title: 'hit p99 ms', get: (r) => fmt.ms(r.hitP99) },
    { title: 'miss p50 ms', get: (r) => fmt.ms(r.missP50) },
    { title: 'req/s', get: (r) => fmt.int(r.rps) },
    { title: 'held', get: (r) => fmt.mib(r.heldBytes) },
    { title: 'evictions', get: (r) => fmt.int(r.evictions) },
    { title: 'errors', get: (r) => r.errors },
  ];
  const vlSpec = rows.length === 0 ? null : {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `sidecache bench: cluster offload, Zipf(${ZIPF_S}) over ${cfg.keys.toLocaleString('en-US')} keys (${mode})`, subtitle: `${fmt.int(cfg.requests)} requests from ${APPS} apps, same total memory` },
    hconcat: [
      {
        data: { values: curves },
        width: 320,
        height: 200,
        mark: { type: 'line', tooltip: true },
        encoding: {
          x: { field: 'requests', type: 'quantitative', title: 'requests made by the apps' },
          y: { field: 'originRequests', type: 'quantitative', title: 'origin requests (cumulative)' },
          color: { field: 'system', type: 'nominal', sort: SYSTEMS, scale: { domain: SYSTEMS }, legend: { orient: 'top', title: null } },
        },
      },
      {
        data: { values: rows.map((r) => ({ system: r.system, perUniqueKey: r.perUniqueKey })) },
        width: { step: 40 },
        height: 200,
        mark: { type: 'bar', tooltip: true },
        encoding: {
          x: { field: 'system', type: 'nominal', sort: SYSTEMS, title: null, axis: { labelAngle: -30 } },
          y: { field: 'perUniqueKey', type: 'quantitative', title: 'origin requests per unique key' },
          color: { field: 'system', type: 'nominal', sort: SYSTEMS, scale: { domain: SYSTEMS }, legend: null },
        },
      },
      {
        data: { values: rows.flatMap((r) => [{ system: r.system, q: 'p50', ms: r.hitP50 }, { system: r.system, q: 'p99', ms: r.hitP99 }]) },
        width: { step: 22 },
        height: 200,
        mark: { type: 'bar', tooltip: true },
        encoding: {
          x: { field: 'q', type: 'nominal', title: 'hit latency' },
          xOffset: { field: 'system', type: 'nominal', sort: SYSTEMS },
          y: { field: 'ms', type: 'quantitative', title: 'ms (seen by the app)' },
          color: { field: 'system', type: 'nominal', sort: SYSTEMS, scale: { domain: SYSTEMS }, legend: null },
        },
      },
    ],
  };
  return { config: cfg, servers, rows, columns, targets, notes, vlSpec, raw: { curves } };
}
