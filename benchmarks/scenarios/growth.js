// Scenario "growth": what more keys cost.
//   (a) One sidecar filled step by step to 10k ... 1M keys of 1 KiB: at each step, hit throughput
//       with wrk picking keys uniformly at random over the whole set (against bare-node answering
//       the same paths from memory, in the same run), and the sidecar's RSS and bytes per key.
//   (b) Handoff: a 2-sidecar cluster (3-node NATS) holding N keys, then a 3rd sidecar joins and
//       replays the partitions it gains from the FILLS log: bytes in the log per partition and
//       the time of the replay, as N grows.
import fs from 'node:fs';
import { Pool } from 'undici';
import { startOrigin, startBareNode, startSidecache } from '../lib/servers.js';
import { SERVER_CPU, LOAD_CPU } from '../lib/cpu.js';
import { measure, MAX_OTHER_PCT } from '../lib/measure.js';
import { memoryOf } from '../lib/procstat.js';
import { scrapeMetrics } from '../lib/http.js';
import { fmt } from '../lib/results.js';
import { sleep } from '../lib/processes.js';
import { natsAvailable } from '../../support/nats-server.ts';
import { startNatsCluster, sidecacheBuilt, startClusterSidecars, startClusterSidecar, waitForRing, uniqueCluster, clusterInfo, startVersionedOrigin } from '../lib/cluster.js';

export const description = 'growth: hit throughput and memory of one sidecar from 10k to 1M keys; log bytes and replay time per partition as the log grows';

const MiB = 1024 * 1024;
const MODES = {
  dry: { steps: [1000, 3000], durationSec: 1, warmSec: 1, replaySizes: [500], budget: 64 * MiB },
  quick: { steps: [10_000, 100_000, 300_000], durationSec: 3, warmSec: 2, replaySizes: [10_000, 50_000], budget: 2048 * MiB },
  full: { steps: [10_000, 100_000, 300_000, 1_000_000], durationSec: 10, warmSec: 3, replaySizes: [10_000, 100_000, 300_000], budget: 4096 * MiB },
};
const BODY = 1024;
const PREFIX = `/obj/${BODY}/g`;
const CONNECTIONS = 16;
const FILL_CONCURRENCY = 32;
const PARTITIONS = 256;
const FILL_DEADLINE_MS = 10 * 60_000;

/** GETs <base><prefix>from..to with FILL_CONCURRENCY requests in flight; returns { ok, failed, seconds }. */
async function fillKeys({ baseUrl, prefix, from, to, log, tag, urlFor }) {
  const pools = new Map();
  const poolOf = (origin) => {
    let p = pools.get(origin);
    if (!p) pools.set(origin, (p = new Pool(origin, { connections: FILL_CONCURRENCY })));
    return p;
  };
  let next = from;
  let ok = 0;
  let failed = 0;
  const samples = [];
  const t0 = performance.now();
  let lastLog = t0;
  const deadline = Date.now() + FILL_DEADLINE_MS;
  const worker = async () => {
    while (next <= to && Date.now() < deadline) {
      const n = next++;
      const target = urlFor ? urlFor(n) : { origin: baseUrl, path: `${prefix}${n}` };
      try {
        const r = await poolOf(target.origin).request({ path: target.path, method: 'GET' });
        await r.body.dump();
        if (r.statusCode === 200) ok++;
        else {
          failed++;
          if (samples.length < 3) samples.push(`${target.path}: ${r.statusCode}`);
        }
      } catch (err) {
        failed++;
        if (samples.length < 3) samples.push(`${target.path}: ${err.code ?? err.message}`);
      }
      const now = performance.now();
      if (now - lastLog > 10_000) {
        lastLog = now;
        log(`${tag} filled ${(n - from + 1).toLocaleString('en-US')} of ${(to - from + 1).toLocaleString('en-US')} (${Math.round(((n - from + 1) * 1000) / (now - t0))} req/s)`);
      }
    }
  };
  await Promise.all(Array.from({ length: FILL_CONCURRENCY }, worker));
  for (const p of pools.values()) await p.close();
  return { ok, failed, samples, seconds: (performance.now() - t0) / 1000, complete: next > to };
}

async function metrics(adminUrl) {
  const value = await scrapeMetrics(adminUrl);
  return { bytes: value('sidecache_cache_bytes'), entries: value('sidecache_cache_entries'), evictions: value('sidecache_evictions_total'), heapUsed: value('nodejs_heap_size_used_bytes') };
}

async function isHit(url) {
  const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
  await r.arrayBuffer();
  return /\bhit\b/.test(r.headers.get('cache-status') ?? '');
}

async function hitsAndMemory({ cfg, ctx, rows, notes, servers }) {
  const { log, tmpDir, mode } = ctx;
  const origin = await startOrigin({ tmpDir });
  const stoppers = [() => origin.stop()];
  try {
    const bare = await startBareNode({ tmpDir });
    stoppers.push(() => bare.stop());
    const sc = await startSidecache({ tmpDir, originPort: origin.port, extraEnv: { SIDECACHE_MAX_BYTES: String(cfg.budget) } });
    if (sc.skipped) {
      notes.push(`sidecache: ${sc.reason}`);
      return;
    }
    stoppers.push(() => sc.stop());
    servers.push({ name: 'bare-node', status: 'ran', version: `node ${process.version}` }, { name: 'sidecache', status: 'ran', version: sc.version });
    const base = `http://127.0.0.1:${sc.port}`;
    await fetch(`${base}/obj/${BODY}/warm`).then((r) => r.arrayBuffer());
    const idleRss = memoryOf(sc.pids[0]).rssBytes;
    let filled = 0;
    for (const keys of cfg.steps) {
      const tag = `[growth ${fmt.int(keys)} keys]`;
      log(`${tag} filling keys ${fmt.int(filled + 1)}..${fmt.int(keys)} through sidecache`);
      const f = await fillKeys({ baseUrl: base, prefix: PREFIX, from: filled + 1, to: keys, log, tag });
      if (f.failed > 0 || !f.complete) notes.push(`${fmt.int(keys)} keys: ${f.failed} fills failed${f.complete ? '' : ', fill stopped at the deadline'} (${f.samples.join('; ')})`);
      filled = keys;
      await sleep(500);
      const m = await metrics(`http://127.0.0.1:${sc.adminPort}`);
      const mem = memoryOf(sc.pids[0]);
      const firstHit = await isHit(`${base}${PREFIX}1`);
      const lastHit = await isHit(`${base}${PREFIX}${keys}`);
      if (!firstHit || !lastHit) notes.push(`${fmt.int(keys)} keys: first key ${firstHit ? 'hit' : 'MISS'}, last key ${lastHit ? 'hit' : 'MISS'}`);
      if (!ctx.wrkAvailable) continue;
      const measured = {};
      for (const [name, srv] of [['bare-node', bare], ['sidecache', sc]]) {
        const url = `http://127.0.0.1:${srv.port}/`;
        const wrk = { connections: CONNECTIONS, durationSec: cfg.warmSec, tmpDir, randomKeys: { prefix: PREFIX, keys } };
        await measure({ url, quiet: false, wrk });
        measured[name] = await measure({ url, pidGroups: { server: srv.pids }, wrk: { ...wrk, durationSec: cfg.durationSec }, log, quiet: mode !== 'dry' });
        const r = measured[name];
        log(`${tag} ${name}: ${fmt.int(r.rps)} req/s, p50 ${fmt.ms(r.latencyMs.p50)} ms, p99 ${fmt.ms(r.latencyMs.p99)} ms, ${fmt.us(r.cpuUsPerReq.server)} µs CPU/req, other ${fmt.pct(r.otherPct)}`);
      }
      const s = measured.sidecache;
      const b = measured['bare-node'];
      const afterMem = memoryOf(sc.pids[0]);
      rows.push({
        part: 'hits', keys, rps: s.rps, bareRps: b.rps, ratioToBare: s.rps / b.rps, p50: s.latencyMs.p50, p99: s.latencyMs.p99, cpuUsPerReq: s.cpuUsPerReq.server,
        rssBytes: Math.max(mem.rssBytes, afterMem.rssBytes), idleRssBytes: idleRss, cacheBytes: m.bytes, entries: m.entries, evictions: m.evictions, heapUsed: m.heapUsed,
        rssPerKey: (Math.max(mem.rssBytes, afterMem.rssBytes) - idleRss) / keys, fillSeconds: f.seconds, fillRps: f.ok / f.seconds,
        otherPct: Math.max(s.otherPct, b.otherPct), errorCount: s.errorCount + b.errorCount, loadCorePct: s.loadCorePct, serverCorePct: s.serverCorePct,
      });
    }
  } finally {
    for (const stop of stoppers.reverse()) await stop().catch(() => undefined);
  }
}

async function fillsStreamInfo(natsUrls, cluster) {
  const { connect } = await import('@nats-io/transport-node');
  const { jetstreamManager } = await import('@nats-io/jetstream');
  const nc = await connect({ servers: natsUrls });
  try {
    const jsm = await jetstreamManager(nc);
    const si = await jsm.streams.info(`SC_${cluster}_FILLS`);
    return { bytes: si.state.bytes, messages: si.state.messages, subjects: si.state.num_subjects ?? null };
  } finally {
    await nc.close();
  }
}

/** The joiner's "partitions replayed from the log" line (info level), or null. */
function replayLine(logPath) {
  let text = '';
  try {
    text = fs.readFileSync(logPath, 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    if (!line.includes('partitions replayed from the log')) continue;
    try {
      return JSON.parse(line);
    } catch {
      // not JSON
    }
  }
  return null;
}

async function replay({ cfg, ctx, rows, notes, servers }) {
  const { log, tmpDir } = ctx;
  if (!natsAvailable()) {
    notes.push('handoff part skipped: nats-server is not installed');
    return;
  }
  const nats = await startNatsCluster({ tmpDir, nodes: 3, cpu: LOAD_CPU });
  servers.push({ name: 'nats-server x3', status: 'ran', version: nats.version });
  try {
    for (const keys of cfg.replaySizes) {
      const tag = `[growth replay ${fmt.int(keys)} keys]`;
      const origin = await startVersionedOrigin({ bytes: BODY });
      const cluster = uniqueCluster('grow');
      const sidecars = [];
      try {
        const common = { tmpDir, upstream: origin.url, natsUrls: nats.urls, cluster, cpu: SERVER_CPU };
        sidecars.push(...(await startClusterSidecars(2, { ...common, ids: [`${cluster}-a`, `${cluster}-b`] })));
        log(`${tag} filling ${fmt.int(keys)} keys through 2 sidecars`);
        const f = await fillKeys({ prefix: '/g/k', from: 1, to: keys, log, tag, urlFor: (n) => ({ origin: `http://127.0.0.1:${sidecars[n % 2].port}`, path: `/g/k${n}` }) });
        if (f.failed > 0 || !f.complete) notes.push(`replay ${fmt.int(keys)}: ${f.failed} fills failed (${f.samples.join('; ')})`);
        // Fills are published asynchronously: wait until the stream stops growing.
        let info = await fillsStreamInfo(nats.urls, cluster);
        for (let i = 0; i < 60; i++) {
          await sleep(500);
          const next = await fillsStreamInfo(nats.urls, cluster);
          if (next.messages === info.messages) break;
          info = next;
        }
        const published = await Promise.all(sidecars.map((s) => clusterInfo(s)));
        const dropped = published.reduce((a, p) => a + (p.logStats?.fillsDropped ?? 0), 0);
        log(`${tag} FILLS: ${fmt.int(info.messages)} messages, ${fmt.mib(info.bytes)}; a 3rd sidecar joins`);
        const t0 = performance.now();
        const joiner = await startClusterSidecar({ ...common, id: `${cluster}-c`, extraEnv: { SIDECACHE_LOG_LEVEL: 'info' } });
        sidecars.push(joiner);
        await waitForRing(sidecars, 3, 60_000);
        const joinSec = (performance.now() - t0) / 1000;
        const j = await clusterInfo(joiner);
        const line = replayLine(joiner.handle.logPath);
        if (!line) notes.push(`replay ${fmt.int(keys)}: the joiner logged no replay line`);
        rows.push({
          part: 'replay', keys, keysPerPartition: keys / PARTITIONS, logMessages: info.messages, logBytes: info.bytes, bytesPerPartition: info.bytes / PARTITIONS,
          fillsDropped: dropped, partitionsGained: line?.partitions ?? j.partitionsOwned, replayedKeys: line?.fills ?? j.replayedKeys, replayMs: line?.ms ?? null,
          msPerPartition: line ? line.ms / line.partitions : null, joinSec, joinerEntries: j.entries,
        });
        log(`${tag} joined in ${joinSec.toFixed(2)} s; replayed ${fmt.int(line?.fills)} fills of ${line?.partitions} partitions in ${line?.ms} ms`);
      } finally {
        for (const s of sidecars) await s.stop().catch(() => undefined);
        await origin.stop();
      }
    }
  } finally {
    await nats.stop();
  }
}

export async function run(ctx) {
  const { mode } = ctx;
  if (!sidecacheBuilt()) return { skipped: 'dist/main.js not found: npm run build first' };
  const cfg = { ...MODES[mode], bodyBytes: BODY, connections: CONNECTIONS, partitions: PARTITIONS };
  const rows = [];
  const notes = [];
  const servers = [];
  const targets = [];
  await hitsAndMemory({ cfg, ctx, rows, notes, servers });
  await replay({ cfg, ctx, rows, notes, servers });

  const hits = rows.filter((r) => r.part === 'hits');
  const reps = rows.filter((r) => r.part === 'replay');
  if (hits.length > 0) {
    const first = hits[0];
    for (const r of hits) r.ratioToFirst = r.ratioToBare / first.ratioToBare;
    const last = hits[hits.length - 1];
    targets.push({ name: `hit throughput at ${fmt.int(last.keys)} keys vs ${fmt.int(first.keys)} (each as a ratio to bare-node in the same step)`, status: 'n/a', detail: `${fmt.ratio(last.ratioToFirst)} x (no target set; reported)` });
    for (const r of hits) if (r.otherPct > MAX_OTHER_PCT) notes.push(`${fmt.int(r.keys)} keys: processes outside the benchmark used ${fmt.pct(r.otherPct)} of a core; treat as disturbed`);
    notes.push('bare-node answers every path from memory whatever the key count (one shared body per size): its row is the ceiling at each step, and the sidecache figures are ratios to it');
  }
  for (const r of reps) if (r.fillsDropped > 0) notes.push(`replay ${fmt.int(r.keys)}: ${r.fillsDropped} fills were dropped under publish pressure (not in the log, so not replayed)`);
  if (reps.length > 0) notes.push(`replay: the joiner reads the FILLS stream once with one last-per-subject consumer and keeps the fills of the partitions it gains, so its time grows with the whole log, not with the partitions it gains; per-partition figures divide by ${PARTITIONS} partitions (bytes) and by the partitions gained (time)`);

  const columns = [
    { title: 'part', get: (r) => r.part, align: 'l' },
    { title: 'keys', get: (r) => fmt.int(r.keys) },
    { title: 'hit req/s', get: (r) => fmt.int(r.rps) },
    { title: 'x bare', get: (r) => fmt.ratio(r.ratioToBare) },
    { title: 'x first step', get: (r) => fmt.ratio(r.ratioToFirst) },
    { title: 'p99 ms', get: (r) => fmt.ms(r.p99) },
    { title: 'CPU µs/req', get: (r) => fmt.us(r.cpuUsPerReq) },
    { title: 'RSS', get: (r) => fmt.mib(r.rssBytes) },
    { title: 'RSS B/key', get: (r) => fmt.int(r.rssPerKey) },
    { title: 'cache B/key', get: (r) => (r.cacheBytes && r.entries ? fmt.int(r.cacheBytes / r.entries) : '-') },
    { title: 'log B/partition', get: (r) => fmt.int(r.bytesPerPartition) },
    { title: 'keys/partition', get: (r) => fmt.int(r.keysPerPartition) },
    { title: 'replayed', get: (r) => fmt.int(r.replayedKeys) },
    { title: 'replay ms', get: (r) => fmt.int(r.replayMs) },
    { title: 'ms/partition', get: (r) => fmt.ms(r.msPerPartition) },
    { title: 'join s', get: (r) => (r.joinSec === undefined ? '-' : r.joinSec.toFixed(2)) },
  ];
  const line = (data, y, title, xTitle) => ({
    data: { values: data },
    width: 220,
    height: 170,
    mark: { type: 'line', point: true, tooltip: true },
    encoding: {
      x: { field: 'keys', type: 'quantitative', scale: { type: 'log' }, title: xTitle },
      y: { field: y, type: 'quantitative', title },
      ...(data[0]?.series ? { color: { field: 'series', type: 'nominal', legend: { orient: 'top', title: null } } } : {}),
    },
  });
  const panels = [];
  if (hits.length > 0) {
    panels.push(line(hits.flatMap((r) => [{ keys: r.keys, rps: r.rps, series: 'sidecache' }, { keys: r.keys, rps: r.bareRps, series: 'bare-node' }]), 'rps', 'hit requests/s', 'cached keys (log)'));
    panels.push(line(hits.map((r) => ({ keys: r.keys, mib: r.rssBytes / MiB })), 'mib', 'sidecache RSS (MiB)', 'cached keys (log)'));
  }
  if (reps.length > 0) panels.push(line(reps.map((r) => ({ keys: r.keys, replayMs: r.replayMs })), 'replayMs', 'replay time of the joiner (ms)', 'keys in the log (log)'));
  const vlSpec = panels.length === 0 ? null : {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `sidecache bench: cost of growth (${mode})`, subtitle: `1 KiB entries; hits with wrk c=${CONNECTIONS} over keys chosen at random; sidecars on core 0` },
    hconcat: panels,
  };
  return { config: cfg, servers, rows, columns, targets, notes, vlSpec };
}
