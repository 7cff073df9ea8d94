// Scenario "migration": what membership changes cost a warm 3-sidecar cluster, with handoff
// (SIDECACHE_HANDOFF=true: gained partitions are replayed from the log before the new ring is
// used) and without (false: they start cold, as in groupcache or mcrouter). Four changes in turn,
// while client loops keep reading the cached keys at the sidecars that stay:
//   scale-out  a 4th sidecar joins
//   drain      back to 3: one sidecar gets SIGTERM (it drains, then leaves the view)
//   rolling    each of the 3 is restarted in turn (SIGTERM, then started again with its id)
//   sigkill    one sidecar is SIGKILLed
// After each change every key is read at every sidecar. Figures per change: origin requests from
// the start of the change to the end of the reads, as a share of the cached keys; client errors
// (network errors and non-2xx) at the sidecars that stayed; seconds until every sidecar agreed on
// the new ring. Two clusters on one 3-node NATS, each with its own counting origin, sampled every
// 100 ms for the plot.
import { SERVER_CPU, LOAD_CPU } from '../lib/cpu.js';
import { fmt } from '../lib/results.js';
import { sleep } from '../lib/processes.js';
import { natsAvailable, NATS_SERVER_BIN } from '../../support/nats-server.ts';
import { startNatsCluster, sidecacheBuilt, startClusterSidecars, startClusterSidecar, waitForRing, uniqueCluster, startVersionedOrigin, loadLoop, pool } from '../lib/cluster.js';

export const description = 'cluster: origin fetches and client errors when a warm cluster scales out, drains back, restarts one by one and loses a sidecar to SIGKILL, with and without handoff';

const MODES = {
  dry: { keys: 50, killLoadSec: 2, concurrency: 8 },
  quick: { keys: 2000, killLoadSec: 4, concurrency: 16 },
  full: { keys: 10000, killLoadSec: 8, concurrency: 16 },
};
const SAMPLE_MS = 100;
const SETTLE_MS = 1500;
const CHANGES = ['scale-out', 'drain', 'rolling', 'sigkill'];

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
  let sidecars = [];
  const series = [];
  const events = [];
  const rows = [];
  let sampler;
  let load;
  try {
    const env = { SIDECACHE_HANDOFF: String(handoff) };
    const common = { tmpDir, upstream: origin.url, natsUrls: nats.urls, cluster: uniqueCluster(handoff ? 'migh' : 'mign'), cpu: SERVER_CPU, extraEnv: env };
    const p = handoff ? 'h' : 'n';
    log(`${tag} starting 3 sidecars`);
    sidecars = await startClusterSidecars(3, { ...common, ids: [`mig${p}-a`, `mig${p}-b`, `mig${p}-c`] });
    const keys = Array.from({ length: cfg.keys }, (_, i) => `/mig/k${i}`);
    log(`${tag} warming ${cfg.keys} keys of 1 KiB at ${sidecars[0].id}`);
    const warmBad = [];
    await pool(keys, cfg.concurrency, async (k) => {
      const s = await fetchStatus(sidecars[0].url(k));
      if (s !== 200) warmBad.push(`${k}: ${s}`);
    });
    const warmFetches = origin.requests;
    if (warmBad.length) notes.push(`${label}: ${warmBad.length} warm-up requests failed (${warmBad.slice(0, 3).join('; ')})`);
    await sleep(SETTLE_MS); // fills reach the replicas through the log

    // From here on: origin requests sampled every 100 ms (t = 0 now), and client loops reading
    // random keys at the sidecars in `stay` (changed before each step to exclude the ones that go).
    const t0 = performance.now();
    const now = () => (performance.now() - t0) / 1000;
    let last = origin.requests;
    sampler = setInterval(() => {
      const n = origin.requests;
      series.push({ run: label, t: Math.round(now() * 10) / 10, originRps: ((n - last) * 1000) / SAMPLE_MS, originTotal: n });
      last = n;
    }, SAMPLE_MS);
    let stay = [...sidecars];
    let i = 0;
    load = loadLoop({ workers: 4, pauseMs: 2, maxMs: 15 * 60_000, maxRequests: 5_000_000, nextUrl: () => stay[i++ % stay.length].url(keys[Math.floor(Math.random() * keys.length)]) });

    /** Runs one change: `act` changes membership and returns the new member list (or { members,
     *  at, ringSec }: when the change took effect and how long the ring took, measured by act); then the ring is awaited
     *  (ring s counts from that time) and every key read at every member. */
    const change = async (name, act) => {
      await sleep(500);
      const origin0 = origin.requests;
      const load0 = { ...load.stats };
      const start = now();
      events.push({ run: label, change: name, t: start });
      const acted = await act();
      const members = Array.isArray(acted) ? acted : acted.members;
      const from = Array.isArray(acted) ? start : acted.at;
      let ringSec = null;
      try {
        await waitForRing(members, members.length, 60_000);
        ringSec = acted.ringSec ?? now() - from;
      } catch (err) {
        notes.push(`${label} ${name}: no agreed ring of ${members.length} (${err.message})`);
      }
      const duringChange = origin.requests - origin0;
      const reads = members.flatMap((s) => keys.map((k) => s.url(k)));
      const readBad = [];
      await pool(reads, cfg.concurrency, async (u) => {
        const s = await fetchStatus(u);
        if (s !== 200) readBad.push(`${u}: ${s}`);
      });
      const originFetches = origin.requests - origin0;
      const st = load.stats;
      const clientErrors = st.errors + st.badStatus - load0.errors - load0.badStatus;
      if (readBad.length) notes.push(`${label} ${name}: ${readBad.length} reads after the change failed (${readBad.slice(0, 3).join('; ')})`);
      log(`${tag} ${name}: ring after ${ringSec === null ? '-' : ringSec.toFixed(2)} s, ${originFetches} origin fetches (${(100 * originFetches / cfg.keys).toFixed(2)}% of keys), ${clientErrors} client errors of ${st.requests - load0.requests}`);
      rows.push({
        run: label, handoff, change: name, keys: cfg.keys, warmFetches, members: members.length, ringSec, duringChange, originFetches,
        originShare: originFetches / cfg.keys, reads: reads.length, readErrors: readBad.length,
        clientRequests: st.requests - load0.requests, clientErrors, startSec: start,
      });
      sidecars = members;
    };

    await change('scale-out', async () => {
      log(`${tag} scale-out: a 4th sidecar joins`);
      const fourth = await startClusterSidecar({ ...common, id: `mig${p}-d` });
      return [...sidecars, fourth];
    });
    await change('drain', async () => {
      const leaving = sidecars[1];
      log(`${tag} drain: SIGTERM to ${leaving.id}`);
      stay = sidecars.filter((s) => s !== leaving);
      await sleep(300);
      await leaving.stop();
      return stay;
    });
    await change('rolling', async () => {
      let members = [...sidecars];
      for (const old of [...members]) {
        log(`${tag} rolling: restarting ${old.id}`);
        stay = members.filter((s) => s !== old);
        await sleep(300);
        await old.stop();
        const again = await startClusterSidecar({ ...common, id: old.id });
        members = members.map((s) => (s === old ? again : s));
        await waitForRing(members, members.length, 60_000);
        stay = [...members];
      }
      return members;
    });
    await change('sigkill', async () => {
      const victim = sidecars[1];
      stay = sidecars.filter((s) => s !== victim);
      await sleep(1000);
      log(`${tag} sigkill: ${victim.id} under load at the survivors`);
      const at = now();
      await victim.kill();
      // Survivors must notice the silence (SIDECACHE_HEARTBEAT_TTL) and agree on a ring of 3;
      // the loops keep reading at them meanwhile and for a while after.
      let ringSec = null;
      await waitForRing(stay, stay.length, 60_000).then(() => (ringSec = now() - at), () => undefined);
      await sleep(cfg.killLoadSec * 1000);
      return { members: stay, at, ringSec };
    });
    const st = await load.stop();
    load = undefined;
    if (st.errorSamples.length) notes.push(`${label}: client errors: ${st.errorSamples.join('; ')}`);
    clearInterval(sampler);
    sampler = undefined;
    return { rows, series, events };
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
  const series = [];
  const events = [];
  log('[migration] starting a 3-node NATS cluster');
  const nats = await startNatsCluster({ tmpDir, nodes: 3, cpu: LOAD_CPU });
  servers.push({ name: 'nats-server x3', status: 'ran', version: nats.version });
  try {
    // A dry run only shows the script works: one pass, with handoff.
    for (const handoff of mode === 'dry' ? [true] : [true, false]) {
      const r = await oneRun({ handoff, cfg, nats, tmpDir, log, notes });
      rows.push(...r.rows);
      series.push(...r.series);
      events.push(...r.events);
    }
  } finally {
    await nats.stop();
  }
  servers.push({ name: 'sidecache x3-4 per run', status: 'ran', version: `node ${process.version}` });

  for (const c of CHANGES) {
    const on = rows.find((r) => r.handoff && r.change === c);
    const off = rows.find((r) => !r.handoff && r.change === c);
    if (on && c !== 'sigkill') targets.push({ name: `${c}: origin fetches with handoff < 2% of cached keys`, status: on.originShare < 0.02 ? 'met' : 'missed', detail: `${on.originFetches} of ${on.keys} (${(100 * on.originShare).toFixed(2)}%)${off ? `; without handoff ${off.originFetches} (${(100 * off.originShare).toFixed(2)}%)` : ''}` });
    for (const r of [on, off]) {
      if (r) targets.push({ name: `${c}: no client errors at the sidecars that stayed (${r.run})`, status: r.clientErrors === 0 ? 'met' : 'missed', detail: `${r.clientErrors} of ${r.clientRequests} requests` });
    }
  }
  notes.push('origin fetches count from the start of a change to the end of the reads of every key at every member; the SIGKILL row loses the victim\'s copies, which the replicas hold (no target, reported)');
  notes.push(`change start times (s since the first change): ${events.map((e) => `${e.run} ${e.change} ${e.t.toFixed(1)}`).join(', ')}`);

  const columns = [
    { title: 'run', get: (r) => r.run, align: 'l' },
    { title: 'change', get: (r) => r.change, align: 'l' },
    { title: 'keys', get: (r) => fmt.int(r.keys) },
    { title: 'members after', get: (r) => r.members },
    { title: 'ring s', get: (r) => (r.ringSec === null ? '-' : r.ringSec.toFixed(2)) },
    { title: 'origin during', get: (r) => r.duringChange },
    { title: 'origin total', get: (r) => r.originFetches },
    { title: '% of keys', get: (r) => `${(100 * r.originShare).toFixed(2)}%` },
    { title: 'read errors', get: (r) => `${r.readErrors}/${r.reads}` },
    { title: 'client errors', get: (r) => `${r.clientErrors}/${r.clientRequests}` },
  ];
  const vlSpec = series.length === 0 ? null : {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `sidecache bench: origin requests/s through membership changes (${mode}, ${fmt.int(cfg.keys)} cached keys)`, subtitle: 'vertical rules: scale-out to 4, drain back to 3, rolling restart, SIGKILL (each run has its own clock)' },
    vconcat: ['handoff on', 'handoff off'].map((run) => ({
      title: run,
      width: 560,
      height: 150,
      layer: [
        {
          data: { values: series.filter((s) => s.run === run) },
          mark: { type: 'line', interpolate: 'step-after', tooltip: true },
          encoding: {
            x: { field: 't', type: 'quantitative', title: 'seconds since the first change' },
            y: { field: 'originRps', type: 'quantitative', title: 'origin requests/s' },
          },
        },
        {
          data: { values: events.filter((e) => e.run === run) },
          mark: { type: 'rule', strokeDash: [4, 3], color: 'gray' },
          encoding: { x: { field: 't', type: 'quantitative' }, tooltip: { field: 'change', type: 'nominal' } },
        },
        {
          data: { values: events.filter((e) => e.run === run) },
          mark: { type: 'text', align: 'left', dx: 3, dy: -60, fontSize: 10 },
          encoding: { x: { field: 't', type: 'quantitative' }, text: { field: 'change', type: 'nominal' } },
        },
      ],
    })),
  };
  return { config: cfg, servers, rows, columns, targets, notes, vlSpec, raw: { series, events } };
}
