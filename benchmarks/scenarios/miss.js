// Scenario "miss": CPU per request of the proxy process on the miss path, standalone.
// Two variants: the same URL answered with Cache-Control: no-store (every request passes through),
// and unique URLs of cacheable responses (every request is a miss that is fetched and stored).
// Two loads: a modest fixed rate and a closed loop. "direct" is wrk against the origin itself (the
// origin's own cost); node-proxy is the cheapest Node reverse proxy (node:http + undici, no
// cache: lib/node-proxy.js). Target (issue 14): sidecache's CPU per request at most 1.25 x
// node-proxy's, for each variant and load.
import fs from 'node:fs';
import { startOrigin, startNamed, SIDECACHE_MAIN } from '../lib/servers.js';
import { measure, MAX_OTHER_PCT } from '../lib/measure.js';
import { httpGet } from '../lib/http.js';
import { fmt } from '../lib/results.js';

export const description = 'miss path: CPU µs per request of the proxy process against node-proxy (node:http + undici, no cache), no-store and unique URLs, fixed rate and closed loop';

export const MODES = {
  dry: { connections: 4, delayMs: 10, durationSec: 1, warmSec: 0 },
  quick: { connections: 16, delayMs: 8, durationSec: 3, warmSec: 1 },
  full: { connections: 16, delayMs: 8, durationSec: 10, warmSec: 2 },
};
// Two loads per variant. "rate": each connection pauses delayMs between requests (about
// connections / delay requests/s), so every request wakes the proxy on its own. "max": closed loop,
// no pause, so per-request costs are amortised over batches. The target is checked on both.
const LOADS = ['rate', 'max'];
export const BODY_BYTES = 1024;
const BASELINE = 'node-proxy';
const TARGET_RATIO = 1.25;
// node-proxy right before sidecache: the two runs the target compares are the closest in time.
const ALL_SERVERS = ['direct', 'node-proxy', 'sidecache', 'nginx', 'varnish'];

/**
 * The two miss variants for bodies of `bytes`: one no-store path (every request passes through)
 * and unique cacheable paths under a prefix new to this process (wrk's unique-paths.lua appends a
 * counter). profile.js loads the same paths.
 */
export function missVariants(bytes) {
  const nonce = Date.now().toString(36);
  return [
    { name: 'no-store', path: `/nostore/${bytes}/pass` },
    { name: 'unique', path: `/obj/${bytes}/u`, uniquePrefix: `/obj/${bytes}/${nonce}-` },
  ];
}

/** Requests the origin has served so far (not counting this one). */
async function originRequests(origin) {
  const res = await httpGet(origin.url('/__stats'), { keepBody: true });
  return JSON.parse(res.body).requests - 1;
}

export async function run(ctx) {
  const { mode, log, tmpDir, options } = ctx;
  if (!fs.existsSync(SIDECACHE_MAIN)) return { skipped: 'dist/main.js not found: the miss scenario needs sidecache (npm run build, or npm run bench)' };
  const cfg = { ...MODES[mode], ...(options.durationSec && { durationSec: options.durationSec }) };
  const serverNames = ALL_SERVERS.filter((s) => !options.servers || options.servers.includes(s) || s === 'direct');
  const peersInstall = ctx.install && mode !== 'dry';
  const variants = missVariants(BODY_BYTES);
  const servers = [];
  const rows = [];
  const notes = [];

  const origin = await startOrigin({ tmpDir });
  try {
    for (const name of serverNames) {
      let srv = origin;
      if (name === 'direct') servers.push({ name, status: 'ran', version: origin.version });
      else srv = await startNamed(name, { tag: 'miss', origin, tmpDir, install: peersInstall, nginxSendfile: options.nginxSendfile, log, servers, notes });
      if (!srv) continue;
      try {
        for (const v of variants) {
          // Two requests: the second must not be a hit (no-store) or reach a new URL (unique).
          const probe = v.uniquePrefix ? `${v.uniquePrefix}probe` : v.path;
          await httpGet(srv.url(probe));
          const res = await httpGet(srv.url(probe));
          const isHit = name !== 'direct' && srv.isHit(res).hit;
          const probeOk = res.status === 200 && res.bodyBytes === BODY_BYTES && (v.uniquePrefix !== undefined || !isHit);
          log(`[miss] ${name} ${v.name}: probe ${probeOk ? 'ok' : 'FAILED'} (status ${res.status}, ${res.bodyBytes} bytes${name === 'direct' ? '' : `, ${srv.isHit(res).detail}`})`);
          if (!probeOk) notes.push(`${name} ${v.name}: probe failed (status ${res.status}, ${srv.isHit(res).detail})`);
          if (!ctx.wrkAvailable) continue;
          // A retried run reuses its prefix: the retry then hits what the first run stored, so
          // unique URLs get a fresh prefix per call.
          let calls = 0;
          const wrkOpts = (prefixTag, load) => ({
            connections: cfg.connections,
            ...(load === 'rate' && { delayMs: cfg.delayMs }),
            tmpDir,
            ...(v.uniquePrefix && { uniquePrefix: () => `${v.uniquePrefix}${prefixTag}${calls++}-` }),
          });
          if (cfg.warmSec > 0) {
            log(`[miss] ${name} ${v.name}: warm-up ${cfg.warmSec} s`);
            await measure({ url: srv.url(v.path), quiet: false, wrk: { ...wrkOpts('w', 'max'), durationSec: cfg.warmSec } });
          }
          for (const load of LOADS) {
            log(`[miss] ${name} ${v.name} ${load}: measuring ${cfg.durationSec} s, c=${cfg.connections}${load === 'rate' ? `, ${cfg.delayMs} ms pause per connection` : ', closed loop'}`);
            const originBefore = await originRequests(origin);
            const pidGroups = name === 'direct' ? { origin: origin.pids } : { proxy: srv.pids, origin: origin.pids };
            const m = await measure({ url: srv.url(v.path), pidGroups, wrk: { ...wrkOpts(load, load), durationSec: cfg.durationSec }, log });
            const originAfter = await originRequests(origin);
            const proxyUs = name === 'direct' ? null : m.cpuUsPerReq.proxy;
            const row = {
              server: name,
              variant: v.name,
              load,
              rps: m.rps,
              requests: m.requests,
              durationSec: m.durationSec,
              latencyMs: m.latencyMs,
              proxyCpuUsPerReq: proxyUs,
              originCpuUsPerReq: m.cpuUsPerReq.origin,
              totalCpuUsPerReq: (proxyUs ?? 0) + m.cpuUsPerReq.origin,
              // Over every attempt: a retried run sent its requests twice.
              originFetchesPerReq: m.totalRequests > 0 ? (originAfter - originBefore) / m.totalRequests : null,
              probeOk,
              otherPct: m.otherPct,
              attempts: m.attempts,
              errors: m.errors,
              errorCount: m.errorCount,
              addedUsPerReq: null,
              ratioToBaseline: null,
            };
            rows.push(row);
            log(`[miss] ${name} ${v.name} ${load}: ${fmt.int(m.rps)} req/s, p50 ${fmt.ms(m.latencyMs.p50)} ms, p99 ${fmt.ms(m.latencyMs.p99)} ms, proxy ${fmt.us(proxyUs)} µs/req, origin ${fmt.us(row.originCpuUsPerReq)} µs/req, other ${fmt.pct(m.otherPct)}`);
          }
        }
      } finally {
        if (srv !== origin) await srv.stop();
      }
    }
  } finally {
    await origin.stop();
  }

  for (const r of rows) {
    const direct = rows.find((d) => d.server === 'direct' && d.variant === r.variant && d.load === r.load);
    r.addedUsPerReq = direct && r.server !== 'direct' ? r.totalCpuUsPerReq - direct.totalCpuUsPerReq : null;
    if (r.otherPct > MAX_OTHER_PCT) notes.push(`${r.server} ${r.variant} ${r.load}: processes outside the benchmark used ${fmt.pct(r.otherPct)} of a core during the run; treat that figure as disturbed`);
    if (r.errorCount > 0) notes.push(`${r.server} ${r.variant} ${r.load}: ${r.errorCount} errors ${JSON.stringify(r.errors)}`);
  }

  const targets = [];
  const why = (n) => {
    const st = servers.find((x) => x.name === n);
    return st ? `${n} ${st.status}${st.reason ? ` (${st.reason})` : ''}` : `${n} not run`;
  };
  for (const v of variants) {
    for (const load of LOADS) {
      const sc = rows.find((r) => r.server === 'sidecache' && r.variant === v.name && r.load === load);
      const np = rows.find((r) => r.server === BASELINE && r.variant === v.name && r.load === load);
      const name = `sidecache miss CPU/req <= ${TARGET_RATIO} x node-proxy's (${v.name}, ${load === 'rate' ? 'fixed rate' : 'closed loop'})`;
      if (!sc || !np) {
        targets.push({ name, status: 'n/a', detail: !sc ? why('sidecache') : why(BASELINE) });
        continue;
      }
      sc.ratioToBaseline = np.proxyCpuUsPerReq > 0 ? sc.proxyCpuUsPerReq / np.proxyCpuUsPerReq : null;
      const probesOk = sc.probeOk && np.probeOk;
      targets.push({
        name,
        status: !probesOk || sc.ratioToBaseline === null ? 'n/a' : sc.ratioToBaseline <= TARGET_RATIO ? 'met' : 'missed',
        detail: `${fmt.ratio(sc.ratioToBaseline)} x (${fmt.us(sc.proxyCpuUsPerReq)} vs ${fmt.us(np.proxyCpuUsPerReq)} µs/req of the proxy process, at ${fmt.int(sc.rps)} and ${fmt.int(np.rps)} req/s)${probesOk ? '' : ' (a probe failed: not the miss path?)'}`,
      });
    }
  }

  rows.sort((a, b) => a.variant.localeCompare(b.variant) || LOADS.indexOf(a.load) - LOADS.indexOf(b.load) || ALL_SERVERS.indexOf(a.server) - ALL_SERVERS.indexOf(b.server));
  const columns = [
    { title: 'server', get: (r) => r.server, align: 'l' },
    { title: 'variant', get: (r) => r.variant, align: 'l' },
    { title: 'load', get: (r) => r.load, align: 'l' },
    { title: 'req/s', get: (r) => fmt.int(r.rps) },
    { title: 'p50 ms', get: (r) => fmt.ms(r.latencyMs.p50) },
    { title: 'p99 ms', get: (r) => fmt.ms(r.latencyMs.p99) },
    { title: 'proxy µs/req', get: (r) => fmt.us(r.proxyCpuUsPerReq) },
    { title: `x ${BASELINE}`, get: (r) => fmt.ratio(r.ratioToBaseline) },
    { title: 'origin µs/req', get: (r) => fmt.us(r.originCpuUsPerReq) },
    { title: 'added µs/req', get: (r) => fmt.us(r.addedUsPerReq) },
    { title: 'origin fetches/req', get: (r) => fmt.ratio(r.originFetchesPerReq) },
    { title: 'other', get: (r) => fmt.pct(r.otherPct) },
    { title: 'errors', get: (r) => r.errorCount },
  ];
  const plotRows = rows.map((r) => ({ server: r.server, variant: `${r.variant}, ${r.load === 'rate' ? 'modest rate' : 'closed loop'}`, part: r.server === 'direct' ? 'origin' : 'proxy', us: r.server === 'direct' ? r.originCpuUsPerReq : r.proxyCpuUsPerReq }));
  const vlSpec = rows.length === 0 ? null : {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `sidecache bench: miss path CPU per request (${mode})`, subtitle: `proxy process CPU (origin's own for "direct"); target: sidecache <= ${TARGET_RATIO} x node-proxy` },
    data: { values: plotRows },
    facet: { column: { field: 'variant', type: 'nominal', title: null } },
    spec: {
      width: 220,
      height: 180,
      layer: [
        {
          mark: { type: 'bar', tooltip: true },
          encoding: {
            x: { field: 'server', type: 'nominal', sort: ALL_SERVERS, title: null, axis: { labelAngle: -30 } },
            y: { field: 'us', type: 'quantitative', title: 'CPU µs per request' },
            color: { field: 'server', type: 'nominal', sort: ALL_SERVERS, legend: null },
          },
        },
      ],
    },
  };
  return { config: { ...cfg, bodyBytes: BODY_BYTES, baseline: BASELINE, targetRatio: TARGET_RATIO, nginxSendfile: options.nginxSendfile }, servers, rows, columns, targets, notes, vlSpec };
}
