// Scenario "invalidation": purge latency (call to return; the admin API returns once every member
// applied the purge) and read-your-purge: right after each return, the purged key is read at all
// three sidecars and must carry the origin's new version. 3 sidecars on a 3-node NATS under a light
// bounded client load.
import { SERVER_CPU, LOAD_CPU } from '../lib/cpu.js';
import { fmt } from '../lib/results.js';
import { coreTimes, machineBusy, ownTicks } from '../lib/procstat.js';
import { natsAvailable, NATS_SERVER_BIN } from '../../support/nats-server.ts';
import { startNatsCluster, sidecacheBuilt, startClusterSidecars, uniqueCluster, startVersionedOrigin, versionOfBody, purge, get, loadLoop, percentile } from '../lib/cluster.js';

export const description = 'cluster: purge latency until every member applied it, and stale reads right after (3 sidecars, 3-node NATS)';

const MODES = {
  dry: { purges: 10, groups: 3, keysPerGroup: 5, loadWorkers: 2 },
  quick: { purges: 200, groups: 5, keysPerGroup: 20, loadWorkers: 3 },
  full: { purges: 1000, groups: 10, keysPerGroup: 50, loadWorkers: 3 },
};
const LOAD_PAUSE_MS = 5;
const KINDS = ['url', 'tags', 'prefix', 'url', 'tags', 'prefix', 'url', 'tags', 'prefix', 'all'];

export async function run(ctx) {
  const { mode, log, tmpDir } = ctx;
  if (!sidecacheBuilt()) return { skipped: 'dist/main.js not found: npm run build first' };
  if (!natsAvailable()) return { skipped: `nats-server not found at ${NATS_SERVER_BIN}` };
  const cfg = { ...MODES[mode], loadPauseMs: LOAD_PAUSE_MS, kinds: KINDS };
  const keyOf = (g, i) => `/inv/g${g}/k${i}`;
  const tagsOf = (url) => {
    const m = /^\/inv\/g(\d+)\/k(\d+)/.exec(url);
    return m ? [`g${m[1]}`, `k${m[1]}-${m[2]}`] : [];
  };
  const rand = (n) => Math.floor(Math.random() * n);
  const rows = [];
  const notes = [];
  const servers = [];
  const targets = [];
  const stoppers = [];
  const samples = [];
  let load;
  let otherPct = null;
  let wallSec = 0;
  try {
    log('[invalidation] starting a 3-node NATS cluster and the origin');
    const nats = await startNatsCluster({ tmpDir, nodes: 3, cpu: LOAD_CPU });
    stoppers.push(nats.stop);
    servers.push({ name: 'nats-server x3', status: 'ran', version: nats.version });
    const origin = await startVersionedOrigin({ bytes: 1024, tagsOf });
    stoppers.push(() => origin.stop());
    log('[invalidation] starting 3 sidecars');
    const sidecars = await startClusterSidecars(3, { tmpDir, upstream: origin.url, natsUrls: nats.urls, cluster: uniqueCluster('inv'), cpu: SERVER_CPU, ids: ['inv-a', 'inv-b', 'inv-c'] });
    stoppers.push(async () => {
      for (const s of sidecars) await s.stop();
    });
    servers.push({ name: 'sidecache x3', status: 'ran', version: `node ${process.version}` });
    for (let g = 0; g < cfg.groups; g++) for (let i = 0; i < cfg.keysPerGroup; i++) await get(sidecars[(g + i) % 3].url(keyOf(g, i)));

    load = loadLoop({
      workers: cfg.loadWorkers,
      pauseMs: LOAD_PAUSE_MS,
      maxMs: 600_000,
      maxRequests: 2_000_000,
      nextUrl: () => sidecars[rand(3)].url(keyOf(rand(cfg.groups), rand(cfg.keysPerGroup))),
    });
    const t0 = machineBusy(coreTimes());
    const own0 = ownTicks();
    const wall0 = performance.now();
    log(`[invalidation] ${cfg.purges} purges under ${cfg.loadWorkers} client loops`);
    for (let n = 0; n < cfg.purges; n++) {
      const kind = KINDS[n % KINDS.length];
      const g = rand(cfg.groups);
      const i = rand(cfg.keysPerGroup);
      const key = keyOf(g, i);
      // The purged key is cached at every sidecar first, so a stale read is possible at all.
      for (const s of sidecars) await get(s.url(key));
      const version = origin.bump();
      const body = kind === 'url' ? { url: key } : kind === 'tags' ? { tags: [`g${g}`] } : kind === 'prefix' ? { prefix: `/inv/g${g}/` } : { all: true };
      const via = sidecars[rand(3)];
      const p = await purge(via, body);
      let stale = 0;
      const staleAt = [];
      for (const s of sidecars) {
        const r = await get(s.url(key));
        const v = versionOfBody(r.body);
        if (r.status !== 200 || v === null || v < version) {
          stale++;
          staleAt.push(`${s.id}: status ${r.status} v${v} < v${version} (${r.cacheStatus})`);
        }
      }
      const missing = Array.isArray(p.body.missing) ? p.body.missing.length : null;
      samples.push({ n, kind, via: via.id, ms: p.ms, status: p.status, seq: p.body.seq, missing, stale, staleAt: staleAt.length ? staleAt : undefined });
      if (stale > 0 && notes.length < 20) notes.push(`purge ${n} (${kind} ${JSON.stringify(body)} via ${via.id}): stale reads ${staleAt.join('; ')}`);
      if (p.status !== 200 && notes.length < 20) notes.push(`purge ${n} (${kind}) answered ${p.status}: ${JSON.stringify(p.body)}`);
    }
    wallSec = (performance.now() - wall0) / 1000;
    const own1 = ownTicks();
    const t1 = machineBusy(coreTimes());
    const elapsed = t1.total - t0.total;
    otherPct = elapsed > 0 ? (100 * Math.max(0, t1.busy - t0.busy - (own1 - own0))) / elapsed : 0;
  } finally {
    if (load) await load.stop();
    for (const stop of stoppers.reverse()) await stop().catch((err) => log(`[invalidation] stop: ${err.message}`));
  }

  const summarize = (label, list) => {
    const ms = list.map((s) => s.ms);
    const sum = ms.reduce((a, b) => a + b, 0);
    return {
      kind: label,
      purges: list.length,
      p50: percentile(ms, 50),
      p90: percentile(ms, 90),
      p99: percentile(ms, 99),
      max: ms.length ? Math.max(...ms) : null,
      purgesPerSec: sum > 0 ? (1000 * list.length) / sum : null,
      failed: list.filter((s) => s.status !== 200 || (s.missing ?? 0) > 0).length,
      staleReads: list.reduce((a, s) => a + s.stale, 0),
      reads: list.length * 3,
    };
  };
  if (samples.length > 0) {
    rows.push(summarize('all kinds', samples));
    for (const k of ['url', 'tags', 'prefix', 'all']) {
      const list = samples.filter((s) => s.kind === k);
      if (list.length > 0) rows.push(summarize(k, list));
    }
    const all = rows[0];
    all.wallPurgesPerSec = wallSec > 0 ? samples.length / wallSec : null;
    all.otherPct = otherPct;
    all.load = load ? { ...load.stats } : undefined;
    targets.push({ name: 'purge p99 < 50 ms (call to return, all members applied)', status: all.p99 < 50 ? 'met' : 'missed', detail: `p50 ${fmt.ms(all.p50)} ms, p99 ${fmt.ms(all.p99)} ms over ${all.purges} purges` });
    targets.push({ name: 'stale reads right after a purge returned = 0', status: all.staleReads === 0 ? 'met' : 'missed', detail: `${all.staleReads} of ${all.reads} reads` });
    targets.push({ name: 'every purge acknowledged by all members', status: all.failed === 0 ? 'met' : 'missed', detail: `${all.failed} purges failed or had missing members` });
    notes.push(`purges/s = purges / time inside the purge calls (one after another); with the pre-warm GETs and the 3 checking GETs per purge the wall rate was ${fmt.ratio(all.wallPurgesPerSec)} purges/s`);
    if (load) notes.push(`client load: ${cfg.loadWorkers} fetch loops (${LOAD_PAUSE_MS} ms pause) at random sidecars: ${load.stats.requests} requests, ${load.stats.ok} ok, ${load.stats.badStatus} bad status, ${load.stats.errors} errors${load.stats.errorSamples.length ? ` (${load.stats.errorSamples.join('; ')})` : ''}`);
    notes.push(`processes outside the benchmark used ${fmt.pct(otherPct)} of a core during the purges${otherPct > 10 ? ': treat the latencies as disturbed' : ''}`);
  }

  const columns = [
    { title: 'kind', get: (r) => r.kind, align: 'l' },
    { title: 'purges', get: (r) => r.purges },
    { title: 'p50 ms', get: (r) => fmt.ms(r.p50) },
    { title: 'p90 ms', get: (r) => fmt.ms(r.p90) },
    { title: 'p99 ms', get: (r) => fmt.ms(r.p99) },
    { title: 'max ms', get: (r) => fmt.ms(r.max) },
    { title: 'purges/s', get: (r) => fmt.int(r.purgesPerSec) },
    { title: 'failed', get: (r) => r.failed },
    { title: 'stale reads', get: (r) => `${r.staleReads}/${r.reads}` },
  ];
  const vlSpec = samples.length === 0 ? null : {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `sidecache bench: purge latency (${mode})`, subtitle: 'POST /purge until every member applied it; 3 sidecars, 3-node NATS, loopback' },
    data: { values: samples.map((s) => ({ n: s.n, kind: s.kind, ms: s.ms })) },
    layer: [
      { mark: { type: 'point', filled: true, size: 18, tooltip: true }, encoding: { x: { field: 'n', type: 'quantitative', title: 'purge #' }, y: { field: 'ms', type: 'quantitative', title: 'ms', scale: { type: 'log' } }, color: { field: 'kind', type: 'nominal', legend: { orient: 'top', title: null } } } },
      { data: { values: [{ y: 50 }] }, mark: { type: 'rule', strokeDash: [4, 4], color: 'red' }, encoding: { y: { field: 'y', type: 'quantitative' } } },
    ],
    width: 480,
    height: 220,
  };
  return { config: cfg, servers, rows, columns, targets, notes, vlSpec, samples };
}
