// Scenario "memory": RSS of sidecache against its byte budget once it has been asked to hold twice
// the budget in unique 16 KiB entries. Target: RSS <= 1.25 x budget + the RSS of an idle sidecache.
// Also the CPU the full sidecar uses while idle afterwards (no target: a figure to watch).
import fs from 'node:fs';
import http from 'node:http';
import { startOrigin, startSidecache, SIDECACHE_MAIN } from '../lib/servers.js';
import { memoryOf, cpuSnapshot, cpuMsBetween } from '../lib/procstat.js';
import { httpGet } from '../lib/http.js';
import { sleep } from '../lib/processes.js';
import { fmt } from '../lib/results.js';

export const description = 'memory: sidecache RSS vs its byte budget after filling it twice over with unique 16 KiB entries';

const MODES = {
  dry: { budget: '8MiB', budgetBytes: 8 * 1024 ** 2, settleSec: 0, idleSec: 1 },
  quick: { budget: '64MiB', budgetBytes: 64 * 1024 ** 2, settleSec: 15, idleSec: 10 },
  full: { budget: '64MiB', budgetBytes: 64 * 1024 ** 2, settleSec: 15, idleSec: 30 },
};
const ENTRY_BYTES = 16 * 1024;
const CONCURRENCY = 8;
const FILL_DEADLINE_MS = 120_000;
const SLACK = 1.25;

/** GETs every path with `CONCURRENCY` keep-alive connections; bounded by FILL_DEADLINE_MS. */
async function fill(baseUrl, paths, onProgress) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const deadline = Date.now() + FILL_DEADLINE_MS;
  let next = 0;
  let done = 0;
  let bytes = 0;
  let failures = 0;
  const worker = async () => {
    while (next < paths.length && Date.now() < deadline) {
      const p = paths[next++];
      try {
        const r = await httpGet(baseUrl + p, { agent });
        if (r.status === 200) bytes += r.bodyBytes;
        else failures++;
      } catch {
        failures++;
      }
      done++;
      if (done % 1024 === 0) onProgress(done, bytes);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
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
      await sleep(3000);
      const after = memoryOf(srv.pids[0]);
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
  } finally {
    await origin.stop();
  }

  const columns = [
    { title: 'budget', get: (r) => fmt.mib(r.budgetBytes) },
    { title: 'requested', get: (r) => fmt.mib(r.requestedBytes) },
    { title: 'requests', get: (r) => fmt.int(r.requests) },
    { title: 'idle RSS', get: (r) => fmt.mib(r.baseRssBytes) },
    { title: 'RSS after', get: (r) => fmt.mib(r.rssBytes) },
    { title: 'peak RSS', get: (r) => fmt.mib(r.peakRssBytes) },
    { title: 'limit', get: (r) => fmt.mib(r.limitBytes) },
    { title: '(RSS - idle) / budget', get: (r) => fmt.ratio(r.growthOverBudget) },
    { title: 'fill s', get: (r) => r.fillSec.toFixed(1) },
    { title: 'idle CPU', get: (r) => fmt.pct2(r.idleCpuPct) },
  ];
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
  return { config: { ...cfg, entryBytes: ENTRY_BYTES, slack: SLACK, concurrency: CONCURRENCY }, servers, rows, columns, targets, notes, vlSpec };
}
