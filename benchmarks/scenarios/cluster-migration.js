// Scenario "migration": origin fetches caused by scale-out (a 4th sidecar joins a warm 3-sidecar
// cluster) with handoff (SIDECACHE_HANDOFF=true: gained partitions are replayed from the log
// before the new ring is used) and without (false: they start cold), then a SIGKILL of one sidecar
// under client load at the survivors. Two separate clusters on one 3-node NATS; the origin counts
// requests and is sampled every 100 ms for the plot.
import { SERVER_CPU, LOAD_CPU } from '../lib/cpu.js';
import { fmt } from '../lib/results.js';
import { sleep } from '../lib/processes.js';
import { startNatsCluster, natsAvailable, NATS_SERVER_BIN } from '../lib/nats.js';
import { sidecacheBuilt, startClusterSidecars, startClusterSidecar, waitForRing, uniqueCluster, startVersionedOrigin, loadLoop, pool } from '../lib/cluster.js';

export const description = 'cluster: origin fetches when a 4th sidecar joins, with and without handoff, and client errors when one is SIGKILLed';

const MODES = {
  dry: { keys: 50, killLoadSec: 3, concurrency: 8 },
  quick: { keys: 2000, killLoadSec: 5, concurrency: 16 },
  full: { keys: 10000, killLoadSec: 8, concurrency: 16 },
};
const SAMPLE_MS = 100;
const SETTLE_MS = 1500;

async function fetchStatus(url) {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
    await r.arrayBuffer();
    return r.status;
  } catch (err) {
    return err.cause?.code ?? err.name;
  }
}

async function oneRun({ handoff, cfg, nats, tmpDir, log, notes }) {
  const tag = `[migration handoff=${handoff}]`;
  const label = handoff ? 'handoff on' : 'handoff off';
  const origin = await startVersionedOrigin({ bytes: 1024 });
  const sidecars = [];
  const series = [];
  let sampler;
  let load;
  try {
    const env = { SIDECACHE_HANDOFF: String(handoff) };
    const common = { tmpDir, upstream: origin.url, natsUrls: nats.urls, cluster: uniqueCluster(handoff ? 'migh' : 'mign'), cpu: SERVER_CPU, extraEnv: env };
    const p = handoff ? 'h' : 'n';
    log(`${tag} starting 3 sidecars`);
    sidecars.push(...(await startClusterSidecars(3, { ...common, ids: [`mig${p}-a`, `mig${p}-b`, `mig${p}-c`] })));
    const keys = Array.from({ length: cfg.keys }, (_, i) => `/mig/k${i}`);
    log(`${tag} warming ${cfg.keys} keys of 1 KiB at ${sidecars[0].id}`);
    const warmBad = [];
    await pool(keys, cfg.concurrency, async (k) => {
      const s = await fetchStatus(sidecars[0].url(k));
      if (s !== 200) warmBad.push(`${k}: ${s}`);
    });
    const warmFetches = origin.requests;
    await sleep(SETTLE_MS); // fills reach the replicas through the log

    // Origin requests sampled every 100 ms from here on (t = 0: the 4th sidecar is started).
    const t0 = performance.now();
    let last = origin.requests;
    sampler = setInterval(() => {
      const now = origin.requests;
      series.push({ run: label, t: Math.round(performance.now() - t0) / 1000, originRps: ((now - last) * 1000) / SAMPLE_MS, originTotal: now });
      last = now;
    }, SAMPLE_MS);
    const base = origin.requests;
    log(`${tag} adding a 4th sidecar`);
    const fourth = await startClusterSidecar({ ...common, id: `mig${p}-d` });
    sidecars.push(fourth);
    const epoch = await waitForRing(sidecars, 4);
    const joinSec = (performance.now() - t0) / 1000;
    const duringJoin = origin.requests - base;
    log(`${tag} ring of 4 (epoch ${epoch}) after ${joinSec.toFixed(2)} s; reading every key at every sidecar`);
    const readBad = [];
    const reads = sidecars.flatMap((s) => keys.map((k) => s.url(k)));
    await pool(reads, cfg.concurrency, async (u) => {
      const s = await fetchStatus(u);
      if (s !== 200) readBad.push(`${u}: ${s}`);
    });
    const readSec = (performance.now() - t0) / 1000 - joinSec;
    const afterJoin = origin.requests - base - duringJoin;
    await sleep(300);

    // Crash: SIGKILL one of the original sidecars while clients load the three survivors.
    const victim = sidecars[1];
    const survivors = sidecars.filter((s) => s !== victim);
    let i = 0;
    load = loadLoop({ workers: 4, pauseMs: 2, maxMs: (cfg.killLoadSec + 2) * 1000, maxRequests: 500_000, nextUrl: () => survivors[i++ % 3].url(keys[Math.floor(Math.random() * keys.length)]) });
    await sleep(1000);
    const beforeKill = origin.requests;
    const killAt = (performance.now() - t0) / 1000;
    log(`${tag} SIGKILL ${victim.id} under load at the survivors; ${cfg.killLoadSec} s more`);
    await victim.kill();
    await sleep(cfg.killLoadSec * 1000);
    const killStats = await load.stop();
    load = undefined;
    const afterKill = origin.requests - beforeKill;
    let ring3 = null;
    try {
      ring3 = await waitForRing(survivors, 3, 5000);
    } catch (err) {
      notes.push(`${label}: survivors had not agreed on a ring of 3 within ${cfg.killLoadSec + 5} s of the kill (${err.message})`);
    }
    clearInterval(sampler);
    sampler = undefined;
    if (warmBad.length) notes.push(`${label}: ${warmBad.length} warm-up requests failed (${warmBad.slice(0, 3).join('; ')})`);
    if (readBad.length) notes.push(`${label}: ${readBad.length} reads after the join failed (${readBad.slice(0, 3).join('; ')})`);
    if (killStats.errorSamples.length) notes.push(`${label}: client errors at the survivors: ${killStats.errorSamples.join('; ')}`);
    notes.push(`${label}: 4th sidecar started at t=0, ring of 4 at t=${joinSec.toFixed(2)} s, all ${reads.length} reads done ${readSec.toFixed(2)} s later; SIGKILL of ${victim.id} at t=${killAt.toFixed(2)} s${ring3 !== null ? `, survivors on a ring of 3 (epoch ${ring3}) by the end` : ''}`);
    return {
      run: label,
      handoff,
      keys: cfg.keys,
      warmFetches,
      duringJoin,
      afterJoin,
      originShare: (duringJoin + afterJoin) / cfg.keys,
      joinSec,
      reads: reads.length,
      readErrors: readBad.length,
      killRequests: killStats.requests,
      killErrors: killStats.errors + killStats.badStatus,
      killOriginFetches: afterKill,
      series,
    };
  } finally {
    if (sampler) clearInterval(sampler);
    if (load) await load.stop();
    for (const s of sidecars) await s.stop().catch(() => undefined);
    await origin.stop();
  }
}

export async function run(ctx) {
  const { mode, log, tmpDir } = ctx;
  if (!sidecacheBuilt()) return { skipped: 'dist/main.js not found: npm run build first' };
  if (!natsAvailable()) return { skipped: `nats-server not found at ${NATS_SERVER_BIN}` };
  const cfg = { ...MODES[mode], sampleMs: SAMPLE_MS, settleMs: SETTLE_MS };
  const rows = [];
  const notes = [];
  const servers = [];
  const targets = [];
  log('[migration] starting a 3-node NATS cluster');
  const nats = await startNatsCluster({ tmpDir, nodes: 3, cpu: LOAD_CPU });
  servers.push({ name: 'nats-server x3', status: 'ran', version: nats.version });
  try {
    for (const handoff of [true, false]) rows.push(await oneRun({ handoff, cfg, nats, tmpDir, log, notes }));
  } finally {
    await nats.stop();
  }
  servers.push({ name: 'sidecache x4 per run', status: 'ran', version: `node ${process.version}` });

  for (const r of rows) {
    if (r.handoff) targets.push({ name: 'origin fetches on scale-out with handoff < 2% of keys', status: r.originShare < 0.02 ? 'met' : 'missed', detail: `${r.duringJoin + r.afterJoin} of ${r.keys} (${(100 * r.originShare).toFixed(2)}%)` });
    targets.push({ name: `no client errors at the survivors of a SIGKILL (${r.run})`, status: r.killErrors === 0 ? 'met' : 'missed', detail: `${r.killErrors} of ${r.killRequests} requests` });
  }
  const off = rows.find((r) => !r.handoff);
  if (off) notes.push(`without handoff (the comparison): ${off.duringJoin + off.afterJoin} origin fetches, ${(100 * off.originShare).toFixed(2)}% of the keys`);
  notes.push('origin fetches during = from starting the 4th sidecar to a ring of 4 agreed by all; after = while every key was read at every sidecar');

  const columns = [
    { title: 'run', get: (r) => r.run, align: 'l' },
    { title: 'keys', get: (r) => fmt.int(r.keys) },
    { title: 'warm fetches', get: (r) => fmt.int(r.warmFetches) },
    { title: 'join s', get: (r) => r.joinSec.toFixed(2) },
    { title: 'origin during', get: (r) => r.duringJoin },
    { title: 'origin after', get: (r) => r.afterJoin },
    { title: '% of keys', get: (r) => `${(100 * r.originShare).toFixed(2)}%` },
    { title: 'read errors', get: (r) => `${r.readErrors}/${r.reads}` },
    { title: 'kill: client errors', get: (r) => `${r.killErrors}/${r.killRequests}` },
    { title: 'kill: origin', get: (r) => r.killOriginFetches },
  ];
  const series = rows.flatMap((r) => r.series);
  const vlSpec = series.length === 0 ? null : {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `sidecache bench: origin requests/s around scale-out and a crash (${mode}, ${fmt.int(cfg.keys)} keys)`, subtitle: 't = 0: a 4th sidecar is started; later one sidecar is SIGKILLed under load (see notes for times)' },
    data: { values: series },
    mark: { type: 'line', interpolate: 'step-after', tooltip: true },
    encoding: {
      x: { field: 't', type: 'quantitative', title: 'seconds since the 4th sidecar was started' },
      y: { field: 'originRps', type: 'quantitative', title: 'origin requests/s (100 ms samples)' },
      color: { field: 'run', type: 'nominal', legend: { orient: 'top', title: null } },
    },
    width: 560,
    height: 240,
  };
  // The series go to the JSON apart from the rows, to keep the rows readable.
  for (const r of rows) delete r.series;
  return { config: cfg, servers, rows, columns, targets, notes, vlSpec, series };
}
