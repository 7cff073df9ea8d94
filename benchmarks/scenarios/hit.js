// Scenario "hit": the cache-hit path of one node against bare node:http (the Node baseline),
// nginx answering the same bytes from memory (nginx-static, the ceiling), nginx proxy_cache and
// varnish. Every server on the server core, wrk on the load core, keep-alive, cache warmed and
// checked. Targets (issue 14): sidecache >= 0.95 x bare-node req/s as the median of >= 5
// interleaved rounds, with the paired CPU ratio (lib/paired.js, as ab.js) beside it; at 1 KiB
// c=16 >= 0.95 x varnish req/s with p99 no worse. sidecache-gzip (compression on store) gives
// figures only.
import { startOrigin, startNamed, warmAndCheckHit, NO_COMPRESS } from '../lib/servers.js';
import { measure, MAX_OTHER_PCT } from '../lib/measure.js';
import { pairedCpu, median } from '../lib/paired.js';
import { httpGet } from '../lib/http.js';
import { sleep } from '../lib/processes.js';
import { fmt } from '../lib/results.js';

export const description = 'cache hits: sidecache vs bare node:http (baseline), nginx from memory (ceiling), nginx proxy_cache, varnish; sidecache with compression on store';

export const MODES = {
  dry: { sizes: [1024], connections: [16], durationSec: 1, warmSec: 0, rounds: 1, paired: { rounds: 1, durationSec: 1, warmSec: 0 } },
  quick: { sizes: [1024, 65536], connections: [16, 64], durationSec: 3, warmSec: 5, rounds: 5, paired: { rounds: 4, durationSec: 2, warmSec: 2 } },
  full: { sizes: [1024, 16384, 65536, 262144], connections: [1, 16, 64], durationSec: 5, warmSec: 5, rounds: 5, paired: { rounds: 6, durationSec: 3, warmSec: 2 } },
};
export const WARM_CONNECTIONS = 16;
const BASELINE = 'bare-node';
const CEILING = 'nginx-static';
/** Table order; every one but sidecache-gzip is measured in the interleaved rounds. */
const ALL_SERVERS = ['bare-node', 'nginx-static', 'sidecache', 'sidecache-gzip', 'nginx', 'varnish'];
const GZIP = 'sidecache-gzip';
const MIN_ROUNDS = 5;
const RATIO = 0.95;
const VARNISH_CELL = { size: 1024, connections: 16 };
const ACCEPT_GZIP = { 'Accept-Encoding': 'gzip' };

/** The path of the binary hit rows: one cached object of `size` bytes (profile.js loads it too). */
export const hitPath = (size) => `/obj/${size}/hit`;

/** The compression rows' path: a compressible text/html body of `size` bytes from the origin. */
const htmlPath = (size) => `/html/${size}/hit`;

/**
 * Warms the html path with Accept-Encoding: gzip until the answer is a gzip hit. Compression on
 * store may run after the entry is stored (a thread-pool job), so the first hits can be
 * identity: up to a second of tries.
 */
async function warmAndCheckGzip(srv, urlPath, size) {
  let last;
  for (let i = 0; i < 20; i++) {
    const res = await httpGet(srv.url(urlPath), { headers: ACCEPT_GZIP });
    const ce = res.headers['content-encoding'];
    const { hit, detail } = srv.isHit(res);
    last = {
      ok: res.status === 200 && hit && ce === 'gzip' && res.bodyBytes < size,
      gzip: ce === 'gzip',
      bodyBytes: res.bodyBytes,
      detail: `status ${res.status}, ${res.bodyBytes} bytes for ${size}, Content-Encoding: ${ce ?? '(none)'}, ${detail}`,
    };
    if (last.ok && i >= 1) return last;
    await sleep(50);
  }
  return last;
}

function runOf(m, extra = {}) {
  return {
    rps: m.rps,
    requests: m.requests,
    durationSec: m.durationSec,
    bytesPerResponse: m.requests > 0 ? m.bytes / m.requests : null,
    latencyMs: m.latencyMs,
    cpuUsPerReq: m.cpuUsPerReq.server,
    serverCorePct: m.serverCorePct,
    loadCorePct: m.loadCorePct,
    otherPct: m.otherPct,
    attempts: m.attempts,
    errors: m.errors,
    errorCount: m.errorCount,
    ...extra,
  };
}

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
  const paired = [];
  const targets = [];

  const origin = await startOrigin({ tmpDir });
  const started = [];
  try {
    // All servers up at once (idle ones cost nothing), then for each size and connection count
    // the servers are measured back to back, so every ratio compares runs minutes apart at most,
    // not a whole scenario apart: on a shared machine the background changes faster than that.
    for (const name of serverNames) {
      const srv = await startNamed(name, { tag: 'hit', origin, tmpDir, install: peersInstall, nginxSendfile: options.nginxSendfile, sizes: cfg.sizes, log, servers, notes });
      if (srv) started.push(srv);
    }
    const byName = (n) => started.find((s) => s.name === n);
    for (const size of cfg.sizes) {
      const urlPath = hitPath(size);
      const checks = new Map();
      let gzip = byName(GZIP);
      for (const srv of started) {
        const isGzip = srv.name === GZIP;
        if (isGzip && !gzip) continue;
        const path = isGzip ? htmlPath(size) : urlPath;
        const check = isGzip ? await warmAndCheckGzip(srv, path, size) : await warmAndCheckHit(srv, path, size);
        checks.set(srv, check);
        log(`[hit] ${srv.name} ${fmt.size(size)}: hit check ${check.ok ? 'ok' : 'FAILED'} (${check.detail})`);
        if (isGzip && !check.gzip) {
          // Started, but it does not compress (a build that accepts the variable and ignores it):
          // no row for it rather than identity figures under its name.
          notes.push(`${GZIP} ${fmt.size(size)}: n/a, the answers to Accept-Encoding: gzip were not gzip (${check.detail})`);
          gzip = null;
          continue;
        }
        if (!ctx.wrkAvailable || cfg.warmSec === 0) continue;
        log(`[hit] ${srv.name} ${fmt.size(size)}: warm-up ${cfg.warmSec} s, c=${WARM_CONNECTIONS}`);
        await measure({ url: srv.url(path), quiet: false, wrk: { connections: WARM_CONNECTIONS, durationSec: cfg.warmSec, tmpDir, ...(isGzip && { headers: ACCEPT_GZIP }) } });
      }
      if (!ctx.wrkAvailable) continue;
      const rounded = started.filter((s) => s.name !== GZIP);
      for (const c of cfg.connections) {
        const cell = `${fmt.size(size)} c=${c}`;
        const runs = new Map(rounded.map((srv) => [srv, []]));
        for (let round = 0; round < cfg.rounds; round++) {
          // Each round starts with a different server, so none is always first or last.
          const order = rounded.map((_, i) => rounded[(i + round) % rounded.length]);
          for (const srv of order) {
            const tag = `[hit] ${srv.name} ${cell}${cfg.rounds > 1 ? ` round ${round + 1}/${cfg.rounds}` : ''}`;
            log(`${tag}: measuring ${cfg.durationSec} s`);
            const m = await measure({ url: srv.url(urlPath), pidGroups: { server: srv.pids }, wrk: { connections: c, durationSec: cfg.durationSec, tmpDir }, log });
            runs.get(srv).push(runOf(m));
            if (!srv.handle.isAlive()) notes.push(`${srv.name} exited during ${cell}: see its figures with suspicion`);
            log(`${tag}: ${fmt.int(m.rps)} req/s, p50 ${fmt.ms(m.latencyMs.p50)} ms, p99 ${fmt.ms(m.latencyMs.p99)} ms, p99.9 ${fmt.ms(m.latencyMs.p999)} ms, ${fmt.us(m.cpuUsPerReq.server)} µs CPU/req, server core ${fmt.pct(m.serverCorePct)}, wrk core ${fmt.pct(m.loadCorePct)}, other ${fmt.pct(m.otherPct)}${m.errorCount ? `, ${m.errorCount} errors` : ''}`);
          }
        }
        // Ratios are taken round by round (both runs of a round minutes apart at most), then
        // their median: a drift of the machine between rounds then moves no ratio.
        const roundRatios = (srv, ref) => (ref && runs.has(ref) ? runs.get(srv).map((r, i) => (runs.get(ref)[i]?.rps > 0 ? r.rps / runs.get(ref)[i].rps : null)).filter((x) => x !== null) : []);
        for (const srv of rounded) {
          // The run with the median req/s stands for the server; all runs stay in the JSON.
          const all = runs.get(srv);
          const med = [...all].sort((x, y) => x.rps - y.rps)[Math.floor((all.length - 1) / 2)];
          const toBase = roundRatios(srv, byName(BASELINE));
          const toCeiling = roundRatios(srv, byName(CEILING));
          const check = checks.get(srv);
          rows.push({
            server: srv.name, body: 'binary', sizeBytes: size, connections: c, hit: check.ok, hitDetail: check.detail, ...med,
            roundsRun: all.length,
            p99Median: median(all.map((r) => r.latencyMs.p99)),
            ratioToBaseline: toBase.length ? median(toBase) : null,
            roundRatiosToBaseline: toBase,
            ratioToCeiling: toCeiling.length ? median(toCeiling) : null,
            pairedCpuRatio: null,
            rounds: all.length > 1 ? all : undefined,
          });
        }
        // The paired CPU ratio (what ab.js measures): sidecache and bare-node loaded at once.
        const sc = byName('sidecache');
        const bare = byName(BASELINE);
        if (sc && bare) {
          log(`[hit] paired CPU per request, ${cell}: ${BASELINE} (A) and sidecache (B) at once, ${cfg.paired.rounds} x ${cfg.paired.durationSec} s`);
          const p = await pairedCpu({ a: bare, b: sc, urlPath, rounds: cfg.paired.rounds, durationSec: cfg.paired.durationSec, conns: c, warmSec: cfg.paired.warmSec, tmpDir, log: (l) => log(`    ${l}`), tag: '[hit] paired' });
          paired.push({ sizeBytes: size, connections: c, ...p });
          rows.find((r) => r.server === 'sidecache' && r.sizeBytes === size && r.connections === c).pairedCpuRatio = p.summary.medianRatio;
        }
        // Compression on store: the html body through sidecache without and with it, once each
        // (figures, no target).
        if (gzip) {
          for (const srv of [sc, gzip].filter(Boolean)) {
            const path = htmlPath(size);
            // Compression off: the origin's identity bytes, whatever the client accepts.
            const check = srv === gzip ? checks.get(gzip) : await warmAndCheckHit(srv, path, size);
            const m = await measure({ url: srv.url(path), pidGroups: { server: srv.pids }, wrk: { connections: c, durationSec: cfg.durationSec, tmpDir, headers: ACCEPT_GZIP }, log });
            rows.push({ server: srv.name, body: srv === gzip ? 'html, gzip' : 'html', sizeBytes: size, connections: c, hit: check.ok, hitDetail: check.detail, ...runOf(m), roundsRun: 1, ratioToBaseline: null, ratioToCeiling: null, pairedCpuRatio: null });
            log(`[hit] ${srv.name} html ${cell}, Accept-Encoding: gzip: ${fmt.int(m.rps)} req/s, ${fmt.us(m.cpuUsPerReq.server)} µs CPU/req, ${fmt.int(m.requests > 0 ? m.bytes / m.requests : null)} bytes/response`);
          }
        }
      }
    }
  } finally {
    for (const srv of started) await srv.stop();
    await origin.stop();
  }

  const find = (server, size, c, body = 'binary') => rows.find((r) => r.server === server && r.sizeBytes === size && r.connections === c && r.body === body);
  for (const r of rows) {
    const at = `${r.server}${r.body === 'binary' ? '' : ` (${r.body})`} ${fmt.size(r.sizeBytes)} c=${r.connections}`;
    if (r.loadCorePct !== null && r.loadCorePct > 95) notes.push(`${at}: the wrk core was ${fmt.pct(r.loadCorePct)} busy; that figure may be bounded by the load generator`);
    if (r.otherPct > MAX_OTHER_PCT) notes.push(`${at}: processes outside the benchmark used ${fmt.pct(r.otherPct)} of a core during the run; treat that figure as disturbed`);
    if (r.errorCount > 0) notes.push(`${at}: ${r.errorCount} errors ${JSON.stringify(r.errors)}`);
    if (!r.hit) notes.push(`${at}: responses were not checked hits (${r.hitDetail})`);
  }

  const statusOf = (name) => servers.find((s) => s.name === name);
  const why = (name) => {
    const s = statusOf(name);
    return s ? `${name} ${s.status}${s.reason ? ` (${s.reason})` : ''}` : `${name} not selected`;
  };
  // A target judged on fewer rounds than the issue asks for is reported, not claimed (a dry run's
  // figures are no measurement anyway, and run.js says so).
  const enough = (rounds) => rounds >= MIN_ROUNDS || mode === 'dry';
  const judged = (ok, rounds) => (enough(rounds) ? (ok ? 'met' : 'missed') : 'n/a');
  const fewer = (ok, rounds) => (enough(rounds) ? '' : ` (would be ${ok ? 'met' : 'missed'}; the target needs the median of >= ${MIN_ROUNDS} interleaved rounds, this run had ${rounds}: --rounds)`);
  for (const size of cfg.sizes) {
    for (const c of cfg.connections) {
      const at = `${fmt.size(size)}, c=${c}`;
      const sc = find('sidecache', size, c);
      const bare = find(BASELINE, size, c);
      const invalid = sc && !sc.hit ? 'sidecache answers were not hits' : null;
      const name = `sidecache >= ${RATIO} x bare-node req/s, median of interleaved rounds (${at})`;
      if (!sc || !bare || sc.ratioToBaseline === null) {
        targets.push({ name, status: 'n/a', detail: !sc ? why('sidecache') : !bare ? why(BASELINE) : 'not measured' });
      } else {
        const ok = sc.ratioToBaseline >= RATIO;
        const rr = sc.roundRatiosToBaseline;
        targets.push({
          name,
          status: invalid ? 'n/a' : judged(ok, sc.roundsRun),
          detail: `${invalid ? `${invalid}; ` : ''}${fmt.ratio3(sc.ratioToBaseline)} x (rounds ${fmt.ratio(Math.min(...rr))}-${fmt.ratio(Math.max(...rr))}; median runs ${fmt.int(sc.rps)} vs ${fmt.int(bare.rps)} req/s); CPU per hit ${fmt.ratio(sc.pairedCpuRatio)} x bare-node's (paired)${fewer(ok, sc.roundsRun)}`,
        });
      }
    }
  }
  {
    const { size, connections: c } = VARNISH_CELL;
    const at = `${fmt.size(size)}, c=${c}`;
    const sc = find('sidecache', size, c);
    const va = find('varnish', size, c);
    const inMatrix = cfg.sizes.includes(size) && cfg.connections.includes(c);
    const missing = !inMatrix ? `${at} is not in this run's matrix (--sizes, --conns)` : !sc ? why('sidecache') : !va ? why('varnish') : null;
    const ratioToVarnish = sc && va && sc.rounds && va.rounds
      ? median(sc.rounds.map((r, i) => (va.rounds[i]?.rps > 0 ? r.rps / va.rounds[i].rps : null)).filter((x) => x !== null))
      : sc && va && va.rps > 0 ? sc.rps / va.rps : null;
    const rounds = sc ? sc.roundsRun : 0;
    const t = (name, ok, detail) => targets.push({ name: `${name} (${at})`, status: missing ? 'n/a' : judged(ok, rounds), detail: missing ?? `${detail}${fewer(ok, rounds)}` });
    t(`sidecache >= ${RATIO} x varnish req/s, median of interleaved rounds`, ratioToVarnish >= RATIO, `${fmt.ratio3(ratioToVarnish)} x (median runs ${fmt.int(sc?.rps)} vs ${fmt.int(va?.rps)} req/s)`);
    t('sidecache p99 <= varnish p99, medians over the rounds', sc && va && sc.p99Median <= va.p99Median, `${fmt.ms(sc?.p99Median)} ms vs ${fmt.ms(va?.p99Median)} ms`);
    t('stretch: sidecache req/s >= varnish', ratioToVarnish >= 1, `${fmt.ratio3(ratioToVarnish)} x`);
  }
  // The ceiling and compression as figures beside the targets.
  for (const r of rows.filter((x) => x.server === 'sidecache' && x.body === 'binary')) {
    targets.push({ name: `figure: sidecache as a fraction of nginx-static, the C ceiling (${fmt.size(r.sizeBytes)}, c=${r.connections})`, status: '-', detail: r.ratioToCeiling === null ? why(CEILING) : `${fmt.ratio(r.ratioToCeiling)} x (bare-node ${fmt.ratio(find(BASELINE, r.sizeBytes, r.connections)?.ratioToCeiling)} x)` });
  }
  const gz = statusOf(GZIP);
  const gzRows = rows.filter((x) => x.server === GZIP);
  if (gzRows.length > 0) {
    for (const r of gzRows) {
      const plain = find('sidecache', r.sizeBytes, r.connections, 'html');
      targets.push({ name: `figure: sidecache-gzip hits (${fmt.size(r.sizeBytes)} html, c=${r.connections})`, status: '-', detail: `${fmt.int(r.rps)} req/s, ${fmt.us(r.cpuUsPerReq)} µs CPU/hit, ${fmt.int(r.bytesPerResponse)} bytes/response${plain ? `; compression off: ${fmt.int(plain.rps)} req/s, ${fmt.us(plain.cpuUsPerReq)} µs, ${fmt.int(plain.bytesPerResponse)} bytes` : ''}` });
    }
  } else if (gz || serverNames.includes(GZIP)) {
    targets.push({ name: 'figure: sidecache-gzip hits (compression on store)', status: 'n/a', detail: gz?.status === 'skipped' && gz.reason === NO_COMPRESS ? NO_COMPRESS : gz ? `${gz.status}${gz.reason ? `: ${gz.reason}` : ''}${gz.status === 'ran' ? ': answers were not gzip (see notes)' : ''}` : 'not run' });
  }

  const columns = [
    { title: 'server', get: (r) => r.server, align: 'l' },
    { title: 'body', get: (r) => r.body, align: 'l' },
    { title: 'size', get: (r) => fmt.size(r.sizeBytes) },
    { title: 'conns', get: (r) => r.connections },
    { title: 'req/s', get: (r) => fmt.int(r.rps) },
    { title: `x ${BASELINE}`, get: (r) => fmt.ratio(r.ratioToBaseline) },
    { title: `x ${CEILING}`, get: (r) => fmt.ratio(r.ratioToCeiling) },
    { title: 'p50 ms', get: (r) => fmt.ms(r.latencyMs.p50) },
    { title: 'p99 ms', get: (r) => fmt.ms(r.latencyMs.p99) },
    { title: 'p99.9 ms', get: (r) => fmt.ms(r.latencyMs.p999) },
    { title: 'CPU µs/req', get: (r) => fmt.us(r.cpuUsPerReq) },
    { title: 'CPU x bare (paired)', get: (r) => fmt.ratio3(r.pairedCpuRatio) },
    { title: 'bytes/resp', get: (r) => fmt.int(r.bytesPerResponse) },
    { title: 'srv core', get: (r) => fmt.pct(r.serverCorePct) },
    { title: 'wrk core', get: (r) => fmt.pct(r.loadCorePct) },
    { title: 'other', get: (r) => fmt.pct(r.otherPct) },
    { title: 'errors', get: (r) => r.errorCount },
    { title: 'hit', get: (r) => (r.hit ? 'yes' : 'NO') },
  ];
  // Sorted for reading: size, then connections, the binary body before the html rows, then
  // server in the order above.
  rows.sort((a, b) => a.sizeBytes - b.sizeBytes || a.connections - b.connections || (a.body !== 'binary') - (b.body !== 'binary') || ALL_SERVERS.indexOf(a.server) - ALL_SERVERS.indexOf(b.server));
  // For the run's summary (run.js): the hit table in short, beside the targets.
  const summaryTable = rows.length === 0 ? null : {
    title: 'hits (req/s as medians; ratios are medians of per-round ratios)',
    columns: columns.filter((c) => ['server', 'body', 'size', 'conns', 'req/s', `x ${BASELINE}`, `x ${CEILING}`, 'p99 ms', 'CPU µs/req', 'CPU x bare (paired)', 'bytes/resp'].includes(c.title)),
    rows,
  };

  const PLOTTED = ALL_SERVERS.filter((n) => n !== GZIP);
  const plotRows = rows.filter((r) => r.body === 'binary').map((r) => ({ server: r.server, size: fmt.size(r.sizeBytes), sizeBytes: r.sizeBytes, connections: r.connections, rps: Math.round(r.rps), p99: r.latencyMs.p99 }));
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
        xOffset: { field: 'server', type: 'nominal', sort: PLOTTED },
        y: { field, type: 'quantitative', title },
        color: { field: 'server', type: 'nominal', sort: PLOTTED, scale: { domain: PLOTTED }, legend: { orient: 'top', title: null } },
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
    config: { ...cfg, warmConnections: WARM_CONNECTIONS, baseline: BASELINE, ceiling: CEILING, minRounds: MIN_ROUNDS, ratio: RATIO, varnishCell: VARNISH_CELL, nginxSendfile: options.nginxSendfile },
    servers,
    rows,
    columns,
    targets,
    notes,
    vlSpec,
    summaryTable,
    raw: { paired },
  };
}
