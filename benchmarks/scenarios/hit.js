// Scenario "hit": the cache-hit path of one node against bare node:http, nginx and varnish.
// Every server on the server core, wrk on the load core, keep-alive, cache warmed and checked.
import { startOrigin, startNamed, warmAndCheckHit, SERVER_NAMES as ALL_SERVERS } from '../lib/servers.js';
import { measure, MAX_OTHER_PCT } from '../lib/measure.js';
import { fmt } from '../lib/results.js';

export const description = 'cache hits: sidecache vs bare node:http (baseline), nginx proxy_cache, varnish';

const MODES = {
  dry: { sizes: [1024], connections: [8], durationSec: 1, warmSec: 1, rounds: 1 },
  quick: { sizes: [1024, 65536], connections: [16], durationSec: 3, warmSec: 5, rounds: 3 },
  full: { sizes: [1024, 16384, 262144], connections: [1, 16, 64], durationSec: 10, warmSec: 5, rounds: 1 },
};
const WARM_CONNECTIONS = 16;
const BASELINE = 'bare-node';

export async function run(ctx) {
  const { mode, log, tmpDir, options } = ctx;
  const cfg = {
    ...MODES[mode],
    ...(options.sizes && { sizes: options.sizes }),
    ...(options.connections && { connections: options.connections }),
    ...(options.durationSec && { durationSec: options.durationSec }),
    ...(options.rounds && { rounds: options.rounds }),
  };
  const serverNames = ALL_SERVERS.filter((s) => !options.servers || options.servers.includes(s));
  const peersInstall = ctx.install && mode !== 'dry';
  const servers = [];
  const rows = [];
  const notes = [];

  const origin = await startOrigin({ tmpDir });
  const started = [];
  try {
    // All servers up at once (idle ones cost nothing), then for each size and connection count
    // the servers are measured back to back, so every ratio compares runs minutes apart at most,
    // not a whole scenario apart: on a shared machine the background changes faster than that.
    for (const name of serverNames) {
      const srv = await startNamed(name, { tag: 'hit', origin, tmpDir, install: peersInstall, nginxSendfile: options.nginxSendfile, log, servers, notes });
      if (srv) started.push(srv);
    }
    for (const size of cfg.sizes) {
      const urlPath = `/obj/${size}/hit`;
      const checks = new Map();
      for (const srv of started) {
        const check = await warmAndCheckHit(srv, urlPath, size);
        checks.set(srv, check);
        log(`[hit] ${srv.name} ${fmt.size(size)}: hit check ${check.ok ? 'ok' : 'FAILED'} (${check.detail})`);
        if (!ctx.wrkAvailable) continue;
        log(`[hit] ${srv.name} ${fmt.size(size)}: warm-up ${cfg.warmSec} s, c=${WARM_CONNECTIONS}`);
        await measure({ url: srv.url(urlPath), quiet: false, wrk: { connections: WARM_CONNECTIONS, durationSec: cfg.warmSec, tmpDir } });
      }
      if (!ctx.wrkAvailable) continue;
      for (const c of cfg.connections) {
        const runs = new Map(started.map((srv) => [srv, []]));
        for (let round = 0; round < cfg.rounds; round++) {
          // Each round starts with a different server, so none is always first or last.
          const order = started.map((_, i) => started[(i + round) % started.length]);
          for (const srv of order) {
            const tag = `[hit] ${srv.name} ${fmt.size(size)} c=${c}${cfg.rounds > 1 ? ` round ${round + 1}/${cfg.rounds}` : ''}`;
            log(`${tag}: measuring ${cfg.durationSec} s`);
            const m = await measure({ url: srv.url(urlPath), pidGroups: { server: srv.pids }, wrk: { connections: c, durationSec: cfg.durationSec, tmpDir }, log });
            const run = {
              rps: m.rps,
              requests: m.requests,
              durationSec: m.durationSec,
              latencyMs: m.latencyMs,
              cpuUsPerReq: m.cpuUsPerReq.server,
              serverCorePct: m.serverCorePct,
              loadCorePct: m.loadCorePct,
              otherPct: m.otherPct,
              attempts: m.attempts,
              errors: m.errors,
              errorCount: m.errorCount,
            };
            runs.get(srv).push(run);
            if (!srv.handle.isAlive()) notes.push(`${srv.name} exited during ${fmt.size(size)} c=${c}: see its figures with suspicion`);
            log(`${tag}: ${fmt.int(m.rps)} req/s, p50 ${fmt.ms(m.latencyMs.p50)} ms, p99 ${fmt.ms(m.latencyMs.p99)} ms, p99.9 ${fmt.ms(m.latencyMs.p999)} ms, ${fmt.us(run.cpuUsPerReq)} µs CPU/req, server core ${fmt.pct(m.serverCorePct)}, wrk core ${fmt.pct(m.loadCorePct)}, other ${fmt.pct(m.otherPct)}${m.errorCount ? `, ${m.errorCount} errors` : ''}`);
          }
        }
        for (const srv of started) {
          // The run with the median req/s stands for the server; all runs stay in the JSON.
          const all = runs.get(srv);
          const median = [...all].sort((x, y) => x.rps - y.rps)[Math.floor((all.length - 1) / 2)];
          const check = checks.get(srv);
          rows.push({ server: srv.name, sizeBytes: size, connections: c, hit: check.ok, hitDetail: check.detail, ...median, ratioToBaseline: null, rounds: all.length > 1 ? all : undefined });
        }
      }
    }
  } finally {
    for (const srv of started) await srv.stop();
    await origin.stop();
  }

  const find = (server, size, c) => rows.find((r) => r.server === server && r.sizeBytes === size && r.connections === c);
  for (const r of rows) {
    const base = find(BASELINE, r.sizeBytes, r.connections);
    r.ratioToBaseline = base && base.rps > 0 ? r.rps / base.rps : null;
  }
  for (const r of rows) {
    if (r.loadCorePct !== null && r.loadCorePct > 95) notes.push(`${r.server} ${fmt.size(r.sizeBytes)} c=${r.connections}: the wrk core was ${fmt.pct(r.loadCorePct)} busy; that figure may be bounded by the load generator`);
    if (r.otherPct > MAX_OTHER_PCT) notes.push(`${r.server} ${fmt.size(r.sizeBytes)} c=${r.connections}: processes outside the benchmark used ${fmt.pct(r.otherPct)} of a core during the run; treat that figure as disturbed`);
    if (r.errorCount > 0) notes.push(`${r.server} ${fmt.size(r.sizeBytes)} c=${r.connections}: ${r.errorCount} errors ${JSON.stringify(r.errors)}`);
    if (!r.hit) notes.push(`${r.server} ${fmt.size(r.sizeBytes)}: responses were not checked hits (${r.hitDetail})`);
  }

  const targets = [];
  const statusOf = (name) => servers.find((s) => s.name === name);
  const why = (name) => {
    const s = statusOf(name);
    return s ? `${name} ${s.status}${s.reason ? ` (${s.reason})` : ''}` : `${name} not selected`;
  };
  for (const size of cfg.sizes) {
    for (const c of cfg.connections) {
      const at = `${fmt.size(size)}, c=${c}`;
      const sc = find('sidecache', size, c);
      const bare = find(BASELINE, size, c);
      const va = find('varnish', size, c);
      const invalid = sc && !sc.hit ? 'sidecache answers were not hits' : null;
      const t = (name, ok, detail, missing) => targets.push({
        name: `${name} (${at})`,
        status: missing ? 'n/a' : invalid ? 'n/a' : ok ? 'met' : 'missed',
        detail: missing ?? invalid ?? detail,
      });
      t('sidecache >= 0.9 x bare-node req/s', sc && bare && sc.rps >= 0.9 * bare.rps,
        sc && bare ? `${fmt.ratio(sc.ratioToBaseline)} x (${fmt.int(sc.rps)} vs ${fmt.int(bare.rps)})` : '',
        !sc ? why('sidecache') : !bare ? why(BASELINE) : null);
      t('sidecache req/s >= varnish', sc && va && sc.rps >= va.rps,
        sc && va ? `${fmt.int(sc.rps)} vs ${fmt.int(va.rps)}` : '',
        !sc ? why('sidecache') : !va ? why('varnish') : null);
      t('sidecache p99 <= varnish p99', sc && va && sc.latencyMs.p99 <= va.latencyMs.p99,
        sc && va ? `${fmt.ms(sc.latencyMs.p99)} ms vs ${fmt.ms(va.latencyMs.p99)} ms` : '',
        !sc ? why('sidecache') : !va ? why('varnish') : null);
    }
  }

  const columns = [
    { title: 'server', get: (r) => r.server, align: 'l' },
    { title: 'size', get: (r) => fmt.size(r.sizeBytes) },
    { title: 'conns', get: (r) => r.connections },
    { title: 'req/s', get: (r) => fmt.int(r.rps) },
    { title: 'p50 ms', get: (r) => fmt.ms(r.latencyMs.p50) },
    { title: 'p99 ms', get: (r) => fmt.ms(r.latencyMs.p99) },
    { title: 'p99.9 ms', get: (r) => fmt.ms(r.latencyMs.p999) },
    { title: 'CPU µs/req', get: (r) => fmt.us(r.cpuUsPerReq) },
    { title: `x ${BASELINE}`, get: (r) => fmt.ratio(r.ratioToBaseline) },
    { title: 'srv core', get: (r) => fmt.pct(r.serverCorePct) },
    { title: 'wrk core', get: (r) => fmt.pct(r.loadCorePct) },
    { title: 'other', get: (r) => fmt.pct(r.otherPct) },
    { title: 'errors', get: (r) => r.errorCount },
    { title: 'hit', get: (r) => (r.hit ? 'yes' : 'NO') },
  ];
  // Sorted for reading: size, then connections, then server in the order above.
  rows.sort((a, b) => a.sizeBytes - b.sizeBytes || a.connections - b.connections || ALL_SERVERS.indexOf(a.server) - ALL_SERVERS.indexOf(b.server));

  const plotRows = rows.map((r) => ({ server: r.server, size: fmt.size(r.sizeBytes), sizeBytes: r.sizeBytes, connections: r.connections, rps: Math.round(r.rps), p99: r.latencyMs.p99 }));
  // Grouped bars: one panel per body size, connections on x, one bar per server.
  const panel = (field, title) => ({
    data: { values: plotRows },
    facet: { column: { field: 'size', type: 'ordinal', sort: { field: 'sizeBytes' }, title: null, header: { labelFontSize: 12, labelFontWeight: 'bold' } } },
    spec: {
      width: { step: 22 },
      height: 170,
      mark: { type: 'bar', tooltip: true },
      encoding: {
        x: { field: 'connections', type: 'ordinal', title: 'connections', axis: { labelAngle: 0 } },
        xOffset: { field: 'server', type: 'nominal', sort: ALL_SERVERS },
        y: { field, type: 'quantitative', title },
        color: { field: 'server', type: 'nominal', sort: ALL_SERVERS, scale: { domain: ALL_SERVERS }, legend: { orient: 'top', title: null } },
      },
    },
    // Independent x axes too: a shared one is drawn in a footer far below the shortest panels.
    resolve: { scale: { y: 'independent' }, axis: { x: 'independent' } },
  });
  const vlSpec = rows.length === 0 ? null : {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `sidecache bench: hit path, single node (${mode})`, subtitle: 'servers on core 0, wrk on core 1, keep-alive' },
    vconcat: [panel('rps', 'requests/s (higher is better)'), panel('p99', 'p99 latency, ms (lower is better)')],
  };

  return {
    config: { ...cfg, warmConnections: WARM_CONNECTIONS, baseline: BASELINE, nginxSendfile: options.nginxSendfile },
    servers,
    rows,
    columns,
    targets,
    notes,
    vlSpec,
  };
}
