// Scenario "forward": cache hits through a non-owner (forwarded to the owner over the peer port)
// against local hits at the owner, in a 3-sidecar cluster on a 3-node NATS. Sidecars on the server
// core, wrk on the load core; NATS and the origin on the load core too (both idle while measuring).
import { startOrigin, startBareNode } from '../lib/servers.js';
import { SERVER_CPU, LOAD_CPU } from '../lib/cpu.js';
import { measure, MAX_OTHER_PCT } from '../lib/measure.js';
import { fmt } from '../lib/results.js';
import { sleep } from '../lib/processes.js';
import { natsAvailable, NATS_SERVER_BIN } from '../../support/nats-server.ts';
import { startNatsCluster, sidecacheBuilt, startClusterSidecars, uniqueCluster, get, cacheStatusHops, clusterInfo } from '../lib/cluster.js';

export const description = 'cluster: hits forwarded through a non-owner vs local hits at the owner (3 sidecars, 3-node NATS)';

const MODES = {
  dry: { connections: [8], durationSec: 1, warmSec: 1, rounds: 1 },
  quick: { connections: [1, 16], durationSec: 3, warmSec: 3, rounds: 3 },
  full: { connections: [1, 16, 64], durationSec: 10, warmSec: 5, rounds: 1 },
};
const SIZE = 1024;
let KEY = null;
const CASES = ['bare-node', 'local hit (owner)', 'forwarded hit (non-owner)'];

export async function run(ctx) {
  const { mode, log, tmpDir, options } = ctx;
  if (!sidecacheBuilt()) return { skipped: 'dist/main.js not found: npm run build first' };
  if (!natsAvailable()) return { skipped: `nats-server not found at ${NATS_SERVER_BIN}` };
  const cfg = {
    ...MODES[mode],
    ...(options.connections && { connections: options.connections }),
    ...(options.durationSec && { durationSec: options.durationSec }),
    ...(options.rounds && { rounds: options.rounds }),
  };
  const rows = [];
  const notes = [];
  const servers = [];
  const targets = [];
  const stoppers = [];
  let owner;
  let nonOwner;
  try {
    log('[forward] starting a 3-node NATS cluster, the origin and bare-node');
    const nats = await startNatsCluster({ tmpDir, nodes: 3, cpu: LOAD_CPU });
    stoppers.push(nats.stop);
    servers.push({ name: 'nats-server x3', status: 'ran', version: nats.version });
    const origin = await startOrigin({ tmpDir });
    stoppers.push(() => origin.stop());
    const bare = await startBareNode({ tmpDir });
    stoppers.push(() => bare.stop());
    // Every sidecar gets SIDECACHE_HOT_MAX_BYTES=1: the non-owner then keeps no hot copy and
    // forwards every request; owners serve keys they own from their main store, not the hot set.
    log('[forward] starting 3 sidecars (SIDECACHE_HOT_MAX_BYTES=1)');
    const cluster = uniqueCluster('fwd');
    const sidecars = await startClusterSidecars(3, {
      tmpDir, upstream: `http://127.0.0.1:${origin.port}`, natsUrls: nats.urls, cluster, cpu: SERVER_CPU,
      ids: ['fwd-a', 'fwd-b', 'fwd-c'], extraEnv: { SIDECACHE_HOT_MAX_BYTES: '1' },
    });
    stoppers.push(async () => {
      for (const s of sidecars) await s.stop();
    });
    servers.push({ name: 'sidecache x3', status: 'ran', version: `node ${process.version}` });
    const info = await clusterInfo(sidecars[0]);
    log(`[forward] ring epoch ${info.ringEpoch}: ${info.ring.join(', ')}`);

    // Warm a key, then ask every sidecar twice: one sidecache entry = served locally, two =
    // forwarded. Entries applied while the ring was still forming can leave a copy on a sidecar
    // that no longer owns the key: try keys until one has a forwarding sidecar.
    await sleep(1000);
    for (let k = 0; k < 20 && !owner; k++) {
      const key = `/obj/${SIZE}/forward-${k}`;
      await get(sidecars[k % 3].url(key));
      const seen = [];
      for (const s of sidecars) {
        await get(s.url(key));
        const r = await get(s.url(key));
        seen.push({ s, hops: cacheStatusHops(r.cacheStatus), cs: r.cacheStatus, len: r.body.length });
        log(`[forward] ${key} at ${s.id}: ${r.status}, ${r.body.length} bytes, Cache-Status: ${r.cacheStatus}`);
      }
      const fwd = seen.find((x) => x.hops >= 2);
      const locals = seen.filter((x) => x.hops === 1 && /\bhit\b/i.test(x.cs));
      if (!fwd || locals.length === 0) continue;
      KEY = key;
      nonOwner = fwd.s;
      // The inner Cache-Status entry of the forwarded answer names the owner that served it.
      owner = locals.find((x) => fwd.cs.includes(`node="${x.s.id}"`))?.s ?? locals[0].s;
      notes.push(`key ${key}: owner ${owner.id} (local: ${seen.find((x) => x.s === owner).cs}); non-owner ${nonOwner.id} (forwarded: ${fwd.cs})`);
    }
    if (!owner) notes.push('no key out of 20 had a forwarding non-owner: every sidecar served them locally');

    if (owner && ctx.wrkAvailable) {
      const targetsOf = { 'bare-node': { url: bare.url(KEY), pids: bare.pids }, 'local hit (owner)': { url: owner.url(KEY), pids: sidecars.flatMap((s) => s.pids) }, 'forwarded hit (non-owner)': { url: nonOwner.url(KEY), pids: sidecars.flatMap((s) => s.pids) } };
      await get(bare.url(KEY));
      for (const name of CASES) {
        log(`[forward] ${name}: warm-up ${cfg.warmSec} s, c=16`);
        await measure({ url: targetsOf[name].url, quiet: false, wrk: { connections: 16, durationSec: cfg.warmSec, tmpDir } });
      }
      for (const c of cfg.connections) {
        const runs = new Map(CASES.map((n) => [n, []]));
        for (let round = 0; round < cfg.rounds; round++) {
          const order = CASES.map((_, i) => CASES[(i + round) % CASES.length]);
          for (const name of order) {
            const t = targetsOf[name];
            const m = await measure({ url: t.url, pidGroups: { server: t.pids }, wrk: { connections: c, durationSec: cfg.durationSec, tmpDir }, log, quiet: mode !== 'dry' });
            runs.get(name).push({ rps: m.rps, requests: m.requests, latencyMs: m.latencyMs, cpuUsPerReq: m.cpuUsPerReq.server, serverCorePct: m.serverCorePct, loadCorePct: m.loadCorePct, otherPct: m.otherPct, errorCount: m.errorCount, errors: m.errors });
            log(`[forward] ${name} c=${c}${cfg.rounds > 1 ? ` round ${round + 1}/${cfg.rounds}` : ''}: ${fmt.int(m.rps)} req/s, p50 ${fmt.ms(m.latencyMs.p50)} ms, p99 ${fmt.ms(m.latencyMs.p99)} ms, ${fmt.us(m.cpuUsPerReq.server)} µs CPU/req, srv core ${fmt.pct(m.serverCorePct)}, other ${fmt.pct(m.otherPct)}${m.errorCount ? `, ${m.errorCount} errors` : ''}`);
          }
        }
        for (const name of CASES) {
          const all = runs.get(name);
          const median = [...all].sort((x, y) => x.rps - y.rps)[Math.floor((all.length - 1) / 2)];
          rows.push({ case: name, connections: c, ...median, rounds: all.length > 1 ? all : undefined });
        }
      }
      // Still forwarded after the load? (a hot copy would turn (b) into local hits)
      const after = await get(nonOwner.url(KEY));
      if (cacheStatusHops(after.cacheStatus) < 2) notes.push(`after the runs the non-owner answered with one hop (${after.cacheStatus}): it may have served local copies`);
    } else if (!ctx.wrkAvailable) notes.push('wrk missing: cluster started and checked, nothing measured');
  } finally {
    for (const stop of stoppers.reverse()) await stop().catch((err) => log(`[forward] stop: ${err.message}`));
  }

  const find = (name, c) => rows.find((r) => r.case === name && r.connections === c);
  const bare1 = find('bare-node', 1) ?? find('bare-node', cfg.connections[0]);
  for (const c of cfg.connections) {
    const a = find('local hit (owner)', c);
    const b = find('forwarded hit (non-owner)', c);
    if (!a || !b) continue;
    b.ratioToLocal = b.rps / a.rps;
    a.ratioToLocal = 1;
    const bn = find('bare-node', c);
    if (bn) bn.ratioToLocal = bn.rps / a.rps;
    targets.push({ name: `forwarded req/s >= 0.5 x local (c=${c})`, status: b.rps >= 0.5 * a.rps ? 'met' : 'missed', detail: `${fmt.ratio(b.rps / a.rps)} x (${fmt.int(b.rps)} vs ${fmt.int(a.rps)})` });
    const dp50 = b.latencyMs.p50 - a.latencyMs.p50;
    if (c === 1 || cfg.connections.length === 1) {
      targets.push({ name: `forwarded p50 - local p50 <= one loopback round trip (bare-node p50 at c=${bare1.connections}) (c=${c})`, status: dp50 <= bare1.latencyMs.p50 ? 'met' : 'missed', detail: `+${fmt.ms(dp50)} ms vs ${fmt.ms(bare1.latencyMs.p50)} ms` });
    } else {
      notes.push(`c=${c}: forwarded p50 - local p50 = ${fmt.ms(dp50)} ms (closed-loop at saturation: queueing, not a round trip)`);
    }
  }
  if (rows.length === 0 && ctx.wrkAvailable) targets.push({ name: 'forwarded req/s >= 0.5 x local', status: 'n/a', detail: 'not measured (see notes)' });
  for (const r of rows) {
    if (r.otherPct > MAX_OTHER_PCT) notes.push(`${r.case} c=${r.connections}: processes outside the benchmark used ${fmt.pct(r.otherPct)} of a core; treat as disturbed`);
    if (r.errorCount > 0) notes.push(`${r.case} c=${r.connections}: ${r.errorCount} errors ${JSON.stringify(r.errors)}`);
  }
  notes.push('CPU µs/req of the sidecache rows is the three sidecars together (the forwarded hit costs the non-owner and the owner)');

  const columns = [
    { title: 'case', get: (r) => r.case, align: 'l' },
    { title: 'conns', get: (r) => r.connections },
    { title: 'req/s', get: (r) => fmt.int(r.rps) },
    { title: 'x local', get: (r) => fmt.ratio(r.ratioToLocal) },
    { title: 'p50 ms', get: (r) => fmt.ms(r.latencyMs.p50) },
    { title: 'p99 ms', get: (r) => fmt.ms(r.latencyMs.p99) },
    { title: 'p99.9 ms', get: (r) => fmt.ms(r.latencyMs.p999) },
    { title: 'CPU µs/req', get: (r) => fmt.us(r.cpuUsPerReq) },
    { title: 'srv core', get: (r) => fmt.pct(r.serverCorePct) },
    { title: 'wrk core', get: (r) => fmt.pct(r.loadCorePct) },
    { title: 'other', get: (r) => fmt.pct(r.otherPct) },
    { title: 'errors', get: (r) => r.errorCount },
  ];
  const plotRows = rows.map((r) => ({ case: r.case, connections: r.connections, rps: Math.round(r.rps), p50: r.latencyMs.p50, p99: r.latencyMs.p99 }));
  const panel = (field, title) => ({
    width: { step: 26 },
    height: 170,
    mark: { type: 'bar', tooltip: true },
    encoding: {
      x: { field: 'connections', type: 'ordinal', title: 'connections', axis: { labelAngle: 0 } },
      xOffset: { field: 'case', type: 'nominal', sort: CASES },
      y: { field, type: 'quantitative', title },
      color: { field: 'case', type: 'nominal', sort: CASES, scale: { domain: CASES }, legend: { orient: 'top', title: null } },
    },
  });
  const vlSpec = rows.length === 0 ? null : {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `sidecache bench: forwarded vs local hits, 1 KiB (${mode})`, subtitle: 'sidecars on core 0, wrk on core 1' },
    data: { values: plotRows },
    hconcat: [panel('rps', 'requests/s'), panel('p50', 'p50 ms'), panel('p99', 'p99 ms')],
  };
  return { config: { ...cfg, sizeBytes: SIZE, key: KEY, owner: owner?.id, nonOwner: nonOwner?.id, sidecarEnv: { SIDECACHE_HOT_MAX_BYTES: '1' } }, servers, rows, columns, targets, notes, vlSpec };
}
