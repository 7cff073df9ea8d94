// Scenario "memory": RSS of sidecache against its byte budget once it has been asked to hold twice
// the budget in unique 16 KiB entries. Target: RSS <= 1.25 x budget + the RSS of an idle sidecache.
// Also the CPU the full sidecar uses while idle afterwards (no target: a figure to watch), the
// bytes the store charges per entry, and, with compression on store (SIDECACHE_COMPRESS=on) and
// compressible text/html bodies, the same fill's RSS and bytes per entry (figures; skipped with
// a note when the sidecar does not know the variable).
import fs from 'node:fs';
import http from 'node:http';
import { startOrigin, startSidecache, startSidecacheGzip, NO_COMPRESS, SIDECACHE_MAIN } from '../lib/servers.js';
import { memoryOf, cpuSnapshot, cpuMsBetween } from '../lib/procstat.js';
import { httpGet, scrapeMetrics } from '../lib/http.js';
import { sleep } from '../lib/processes.js';
import { fmt } from '../lib/results.js';

export const description = 'memory: sidecache RSS vs its byte budget after filling it twice over with unique 16 KiB entries';

const MODES = {
  dry: { budget: '8MiB', budgetBytes: 8 * 1024 ** 2, settleSec: 0, idleSec: 1, readAfterMs: 1000 },
  quick: { budget: '64MiB', budgetBytes: 64 * 1024 ** 2, settleSec: 15, idleSec: 10, readAfterMs: 3000 },
  full: { budget: '64MiB', budgetBytes: 64 * 1024 ** 2, settleSec: 15, idleSec: 30, readAfterMs: 3000 },
};
const ENTRY_BYTES = 16 * 1024;
const CONCURRENCY = 8;
const FILL_DEADLINE_MS = 120_000;
const SLACK = 1.25;

const ACCEPT_GZIP = { 'Accept-Encoding': 'gzip' };

/** The store's own count: sidecache_cache_bytes / sidecache_cache_entries from admin /metrics. */
async function storeFigures(srv) {
  const value = await scrapeMetrics(`http://127.0.0.1:${srv.adminPort}`);
  const bytes = value('sidecache_cache_bytes');
  const entries = value('sidecache_cache_entries');
  return { storeBytes: bytes, entries, storeBytesPerEntry: bytes !== null && entries > 0 ? bytes / entries : null };
}

/** GETs every path with `concurrency` keep-alive connections; bounded by FILL_DEADLINE_MS. */
async function fill(baseUrl, paths, onProgress, headers = {}, concurrency = CONCURRENCY) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const deadline = Date.now() + FILL_DEADLINE_MS;
  let next = 0;
  let done = 0;
  let bytes = 0;
  let failures = 0;
  const worker = async () => {
    while (next < paths.length && Date.now() < deadline) {
      const p = paths[next++];
      try {
        const r = await httpGet(baseUrl + p, { agent, headers });
        if (r.status === 200) bytes += r.bodyBytes;
        else failures++;
      } catch {
        failures++;
      }
      done++;
      if (done % 1024 === 0) onProgress(done, bytes);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  return { requests: done, bytes, failures, timedOut: done < paths.length };
}

export async function run(ctx) {
  const { mode, log, tmpDir } = ctx;
  if (!fs.existsSync(SIDECACHE_MAIN)) return { skipped: 'dist/main.js not found: the memory scenario needs sidecache (npm run build, or npm run bench)' };
  const cfg = { ...MODES[mode], ...ctx.options.budget };
  const count = Math.floor((2 * cfg.budgetBytes) / ENTRY_BYTES) + 1;
  const nonce = Date.now().toString(36);
  const paths = Array.from({ length: count }, (_, i) => `/obj/${ENTRY_BYTES}/mem-${nonce}-${i}`);
  const servers = [];
  const rows = [];
  const notes = [];
  const targets = [];

  const origin = await startOrigin({ tmpDir });
  try {
    log(`[memory] sidecache: starting with SIDECACHE_MAX_BYTES=${cfg.budget}`);
    let srv;
    try {
      srv = await startSidecache({ tmpDir, originPort: origin.port, extraEnv: { SIDECACHE_MAX_BYTES: cfg.budget } });
    } catch (err) {
      log(`[memory] sidecache: FAILED to start: ${err.message}`);
      servers.push({ name: 'sidecache', status: 'failed', reason: err.message.split('\n')[0] });
      notes.push(`sidecache failed to start: ${err.message.split('\n')[0]}`);
      targets.push({ name: `sidecache RSS <= ${SLACK} x budget + idle base`, status: 'n/a', detail: 'sidecache failed to start' });
      return { config: { ...cfg, entryBytes: ENTRY_BYTES }, servers, rows, columns: [], targets, notes, vlSpec: null };
    }
    servers.push({ name: 'sidecache', status: 'ran', version: srv.version });
    try {
      // Idle base: after start-up and one request (code paths loaded), before any filling.
      await httpGet(srv.url(`/obj/${ENTRY_BYTES}/mem-${nonce}-base`));
      await sleep(1000);
      const base = memoryOf(srv.pids[0]);
      log(`[memory] idle RSS ${fmt.mib(base.rssBytes)}; filling ${count} x ${fmt.size(ENTRY_BYTES)} = ${fmt.mib(count * ENTRY_BYTES)} (2 x budget ${fmt.mib(cfg.budgetBytes)})`);
      let peakRss = base.rssBytes;
      const sampler = setInterval(() => {
        peakRss = Math.max(peakRss, memoryOf(srv.pids[0]).rssBytes);
      }, 200);
      const started = Date.now();
      let f;
      try {
        f = await fill(`http://127.0.0.1:${srv.port}`, paths, (n, bytes) => log(`[memory] ${n}/${count} requests, ${fmt.mib(bytes)} received, RSS ${fmt.mib(memoryOf(srv.pids[0]).rssBytes)}`));
      } finally {
        clearInterval(sampler);
      }
      const fillSec = (Date.now() - started) / 1000;
      // A moment for in-flight writes and garbage collection to settle before the reading.
      await sleep(cfg.readAfterMs);
      const after = memoryOf(srv.pids[0]);
      const store = await storeFigures(srv);
      peakRss = Math.max(peakRss, after.rssBytes);
      // The first keys should have been evicted, the last ones kept.
      const first = await httpGet(srv.url(paths[0]));
      const last = await httpGet(srv.url(paths[count - 1]));
      const firstHit = srv.isHit(first);
      const lastHit = srv.isHit(last);
      const limitBytes = SLACK * cfg.budgetBytes + base.rssBytes;
      // CPU of the full, warm, idle sidecar: what it costs beside an application with no traffic.
      // Not in the first seconds after the load: V8 then still marks and sweeps what it left.
      await sleep(cfg.settleSec * 1000);
      const idle0 = cpuSnapshot(srv.pids);
      await sleep(cfg.idleSec * 1000);
      const idleCpuPct = (100 * cpuMsBetween(idle0, cpuSnapshot(srv.pids))) / (cfg.idleSec * 1000);
      log(`[memory] idle after the fill: ${fmt.pct2(idleCpuPct)} of a core over ${cfg.idleSec} s, from ${cfg.settleSec} s after it`);
      rows.push({
        run: 'binary, compression off',
        budgetBytes: cfg.budgetBytes,
        entryBytes: ENTRY_BYTES,
        requests: f.requests,
        requestedBytes: f.bytes,
        failures: f.failures,
        fillSec,
        baseRssBytes: base.rssBytes,
        rssBytes: after.rssBytes,
        peakRssBytes: peakRss,
        hwmBytes: after.hwmBytes,
        limitBytes,
        rssOverBudget: after.rssBytes / cfg.budgetBytes,
        // What the cache added over an idle process, per byte of budget: the target bounds it at 1.25.
        growthOverBudget: (after.rssBytes - base.rssBytes) / cfg.budgetBytes,
        idleCpuPct,
        ...store,
        rssPerEntry: store.entries > 0 ? (after.rssBytes - base.rssBytes) / store.entries : null,
        firstKey: firstHit.detail,
        lastKey: lastHit.detail,
      });
      log(`[memory] after fill: RSS ${fmt.mib(after.rssBytes)} (peak ${fmt.mib(peakRss)}), limit ${fmt.mib(limitBytes)}; first key: ${firstHit.detail}; last key: ${lastHit.detail}`);
      if (f.failures > 0) notes.push(`${f.failures} fill requests failed`);
      if (f.timedOut) notes.push(`the fill stopped at the ${FILL_DEADLINE_MS / 1000} s bound after ${f.requests} of ${count} requests`);
      if (firstHit.hit) notes.push(`the first key was still a hit after the fill: was anything evicted? (${firstHit.detail})`);
      if (!lastHit.hit) notes.push(`the last key was not a hit after the fill: is anything stored? (${lastHit.detail})`);
      targets.push({
        name: `sidecache RSS <= ${SLACK} x budget + idle base`,
        status: f.bytes <= 2 * cfg.budgetBytes || f.timedOut ? 'n/a' : after.rssBytes <= limitBytes ? 'met' : 'missed',
        detail: `${fmt.mib(after.rssBytes)} vs ${fmt.mib(limitBytes)} (${SLACK} x ${fmt.mib(cfg.budgetBytes)} + ${fmt.mib(base.rssBytes)}); peak ${fmt.mib(peakRss)}`,
      });
    } finally {
      await srv.stop();
    }
    await compressionRun({ cfg, count, nonce, origin, tmpDir, log, servers, rows, notes, targets });
  } finally {
    await origin.stop();
  }

  const columns = [
    { title: 'run', get: (r) => r.run, align: 'l' },
    { title: 'budget', get: (r) => fmt.mib(r.budgetBytes) },
    { title: 'requested', get: (r) => fmt.mib(r.requestedBytes) },
    { title: 'requests', get: (r) => fmt.int(r.requests) },
    { title: 'idle RSS', get: (r) => fmt.mib(r.baseRssBytes) },
    { title: 'RSS after', get: (r) => fmt.mib(r.rssBytes) },
    { title: 'peak RSS', get: (r) => fmt.mib(r.peakRssBytes) },
    { title: 'limit', get: (r) => fmt.mib(r.limitBytes) },
    { title: '(RSS - idle) / budget', get: (r) => fmt.ratio(r.growthOverBudget) },
    { title: 'entries', get: (r) => fmt.int(r.entries) },
    { title: 'store B/entry', get: (r) => fmt.int(r.storeBytesPerEntry) },
    { title: '(RSS - idle) / entry', get: (r) => fmt.int(r.rssPerEntry) },
    { title: 'fill s', get: (r) => r.fillSec.toFixed(1) },
    { title: 'idle CPU', get: (r) => fmt.pct2(r.idleCpuPct) },
  ];
  const summaryTable = rows.length === 0 ? null : { title: 'memory (beside the hits: RSS and bytes per entry, with compression on store where supported)', columns, rows };
  const r = rows[0];
  const vlSpec = !r ? null : {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `sidecache bench: memory (${mode})`, subtitle: `budget ${fmt.mib(r.budgetBytes)}, ${fmt.mib(r.requestedBytes)} requested in ${fmt.size(ENTRY_BYTES)} entries` },
    data: { values: [
      { what: 'idle RSS (base)', mib: r.baseRssBytes / 1048576 },
      { what: 'budget', mib: r.budgetBytes / 1048576 },
      { what: 'RSS after fill', mib: r.rssBytes / 1048576 },
      { what: 'peak RSS', mib: r.peakRssBytes / 1048576 },
    ] },
    width: 420,
    height: 180,
    layer: [
      { mark: { type: 'bar', tooltip: true }, encoding: { x: { field: 'what', type: 'nominal', sort: null, title: null, axis: { labelAngle: 0 } }, y: { field: 'mib', type: 'quantitative', title: 'MiB' }, color: { field: 'what', type: 'nominal', legend: null } } },
      { mark: { type: 'rule', color: 'red', strokeDash: [4, 3] }, encoding: { y: { datum: r.limitBytes / 1048576 } } },
      { mark: { type: 'text', color: 'red', align: 'left', dx: 4, dy: -6, x: 0 }, encoding: { y: { datum: r.limitBytes / 1048576 }, text: { value: `target: ${SLACK} x budget + base = ${fmt.mib(r.limitBytes)}` } } },
    ],
  };
  return { config: { ...cfg, entryBytes: ENTRY_BYTES, slack: SLACK, concurrency: CONCURRENCY }, servers, rows, columns, targets, notes, vlSpec, summaryTable };
}

/**
 * The same fill with SIDECACHE_COMPRESS=on and compressible text/html bodies of ENTRY_BYTES,
 * asked for with Accept-Encoding: gzip: RSS and the store's bytes per entry. Figures only.
 */
async function compressionRun({ cfg, count, nonce, origin, tmpDir, log, servers, rows, notes, targets }) {
  const figure = 'figure: memory per entry with compression on store (16 KiB html)';
  log(`[memory] sidecache-gzip: starting with SIDECACHE_COMPRESS=on, SIDECACHE_MAX_BYTES=${cfg.budget}`);
  let srv;
  try {
    srv = await startSidecacheGzip({ tmpDir, originPort: origin.port, extraEnv: { SIDECACHE_MAX_BYTES: cfg.budget } });
  } catch (err) {
    const reason = err.message.split('\n')[0];
    servers.push({ name: 'sidecache-gzip', status: 'failed', reason });
    notes.push(`sidecache-gzip failed to start: ${reason}`);
    targets.push({ name: figure, status: 'n/a', detail: `failed to start: ${reason}` });
    return;
  }
  if (srv.skipped) {
    log(`[memory] sidecache-gzip: skipped: ${srv.reason}`);
    servers.push({ name: 'sidecache-gzip', status: 'skipped', reason: srv.reason });
    notes.push(`compression run skipped: ${srv.reason}`);
    targets.push({ name: figure, status: 'n/a', detail: NO_COMPRESS });
    return;
  }
  servers.push({ name: 'sidecache-gzip', status: 'ran', version: srv.version });
  try {
    const paths = Array.from({ length: count }, (_, i) => `/html/${ENTRY_BYTES}/mem-gz-${nonce}-${i}`);
    await httpGet(srv.url(`/html/${ENTRY_BYTES}/mem-gz-${nonce}-base`), { headers: ACCEPT_GZIP });
    await sleep(1000);
    const base = memoryOf(srv.pids[0]);
    log(`[memory] sidecache-gzip: idle RSS ${fmt.mib(base.rssBytes)}; filling ${count} x ${fmt.size(ENTRY_BYTES)} of html`);
    const started = Date.now();
    // One request at a time: the sidecar's gzip runs in libuv's threads on the same pinned core,
    // and a faster fill leaves entries identity-only by design (its queue is bounded).
    const f = await fill(`http://127.0.0.1:${srv.port}`, paths, (n) => log(`[memory] sidecache-gzip: ${n}/${count} requests, RSS ${fmt.mib(memoryOf(srv.pids[0]).rssBytes)}`), ACCEPT_GZIP, 1);
    const fillSec = (Date.now() - started) / 1000;
    await sleep(cfg.readAfterMs);
    const after = memoryOf(srv.pids[0]);
    const store = await storeFigures(srv);
    const value = await scrapeMetrics(`http://127.0.0.1:${srv.adminPort}`);
    const outcome = (o) => value(`sidecache_compressions_total{outcome="${o}"}`) ?? 0;
    const made = { stored: outcome('stored'), queueFull: outcome('queue-full'), notSmaller: outcome('not-smaller'), gone: outcome('gone') };
    // Compressed or not? The last key, asked again as a browser would.
    const last = await httpGet(srv.url(paths[count - 1]), { headers: ACCEPT_GZIP });
    const ce = last.headers['content-encoding'];
    if (ce !== 'gzip' && made.stored === 0) {
      notes.push(`compression run: the last key came back with Content-Encoding: ${ce ?? '(none)'} (${srv.isHit(last).detail}) and no gzip form was stored: figures not shown`);
      targets.push({ name: figure, status: 'n/a', detail: `answers were not gzip (Content-Encoding: ${ce ?? '(none)'})` });
      return;
    }
    notes.push(`compression run: gzip forms stored ${made.stored}, left identity-only with the queue full ${made.queueFull}, not smaller ${made.notSmaller}, gone before gzip ended ${made.gone} (sidecache_compressions_total); the last key came back as ${ce ?? 'identity'}`);
    if (f.failures > 0) notes.push(`compression run: ${f.failures} fill requests failed`);
    const row = {
      run: 'html, SIDECACHE_COMPRESS=on',
      budgetBytes: cfg.budgetBytes,
      entryBytes: ENTRY_BYTES,
      requests: f.requests,
      requestedBytes: count * ENTRY_BYTES,
      gzipBytesReceived: f.bytes,
      failures: f.failures,
      fillSec,
      baseRssBytes: base.rssBytes,
      rssBytes: after.rssBytes,
      peakRssBytes: null,
      hwmBytes: after.hwmBytes,
      limitBytes: null,
      rssOverBudget: after.rssBytes / cfg.budgetBytes,
      growthOverBudget: (after.rssBytes - base.rssBytes) / cfg.budgetBytes,
      idleCpuPct: null,
      ...store,
      rssPerEntry: store.entries > 0 ? (after.rssBytes - base.rssBytes) / store.entries : null,
    };
    rows.push(row);
    log(`[memory] sidecache-gzip: RSS ${fmt.mib(after.rssBytes)}, ${fmt.int(store.entries)} entries, ${fmt.int(row.storeBytesPerEntry)} store bytes and ${fmt.int(row.rssPerEntry)} bytes of RSS over idle per entry`);
    targets.push({ name: figure, status: '-', detail: `RSS ${fmt.mib(after.rssBytes)} (idle ${fmt.mib(base.rssBytes)}); ${fmt.int(store.entries)} entries (${fmt.int(made.stored)} gzip forms made over the fill), ${fmt.int(row.storeBytesPerEntry)} store bytes / entry, ${fmt.int(row.rssPerEntry)} bytes of RSS over idle / entry` });
  } finally {
    await srv.stop();
  }
}
