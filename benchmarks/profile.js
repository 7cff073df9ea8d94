#!/usr/bin/env node
// Where a standalone sidecache spends its CPU under one benchmark load: node benchmarks/profile.js
// hit|miss-nostore|miss-unique [options]. Starts the benchmark origin and one sidecache under
// `node --cpu-prof` as the hit and miss scenarios start theirs (same settings, same cores), warms
// it, runs wrk, stops it with SIGTERM (node writes the profile on exit), then sums up the samples
// taken while wrk ran: self time by category, the top functions, our functions by inclusive time.
// Writes results/profile-<mode>-latest.md and the raw profile-<mode>-<timestamp>.cpuprofile.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pinSelf, canPin, SERVER_CPU, LOAD_CPU } from './lib/cpu.js';
import { ensureWrk, wrkVersion } from './lib/wrk.js';
import { measure, waitForQuiet, setQuietWaitSec, MAX_OTHER_PCT } from './lib/measure.js';
import { startOrigin, startSidecache, warmAndCheckHit, SIDECACHE_MAIN } from './lib/servers.js';
import { makeTempDir } from './lib/processes.js';
import { httpGet } from './lib/http.js';
import { fmt, markdownTable, resultsDir } from './lib/results.js';
import { summarize, CATEGORY_HELP } from './lib/cpuprofile.js';
import { hitPath, WARM_CONNECTIONS, MODES as HIT_MODES } from './scenarios/hit.js';
import { missVariants, MODES as MISS_MODES } from './scenarios/miss.js';

const MODES_ = ['hit', 'miss-nostore', 'miss-unique'];
const USAGE = `usage: node benchmarks/profile.js ${MODES_.join('|')} [options]

  --size=1024      body bytes (default 1024)
  --conns=64       wrk connections (default 64)
  --seconds=10     seconds of the profiled wrk run (default 10)
  --warm=N         seconds of wrk before it, not profiled (default: the quick scenario's, hit 5, miss 1)
  --quiet-wait=20  seconds to wait at most for other processes' CPU load to settle first
  --out=DIR        where the summary and the raw profile go (default benchmarks/results/)
  --no-install     never apt-get install wrk
`;

class UsageError extends Error {}

function parseArgs(argv) {
  const o = { mode: null, size: 1024, conns: 64, seconds: 10, warm: null, quietWait: 20, out: resultsDir(false), install: true };
  const int = (a, min) => {
    const v = Number(a.slice(a.indexOf('=') + 1));
    if (!Number.isInteger(v) || v < min) throw new UsageError(`${a.slice(0, a.indexOf('='))}: expected an integer >= ${min}`);
    return v;
  };
  for (const a of argv) {
    if (a.startsWith('--size=')) o.size = int(a, 1);
    else if (a.startsWith('--conns=')) o.conns = int(a, 1);
    else if (a.startsWith('--seconds=')) o.seconds = int(a, 1);
    else if (a.startsWith('--warm=')) o.warm = int(a, 0);
    else if (a.startsWith('--quiet-wait=')) o.quietWait = int(a, 0);
    else if (a.startsWith('--out=')) o.out = path.resolve(a.slice('--out='.length));
    else if (a === '--no-install') o.install = false;
    else if (a === '-h' || a === '--help') o.help = true;
    else if (!a.startsWith('-') && o.mode === null && MODES_.includes(a)) o.mode = a;
    else throw new UsageError(`unknown argument "${a}"`);
  }
  if (!o.help && o.mode === null) throw new UsageError(`which load? one of ${MODES_.join(', ')}`);
  o.warm ??= o.mode === 'hit' ? HIT_MODES.quick.warmSec : MISS_MODES.quick.warmSec;
  return o;
}

/** The monotonic clock in µs: the clock of a .cpuprofile's startTime and endTime. */
const nowUs = () => Number(process.hrtime.bigint() / 1000n);

/** Warms `srv` for the load and returns { urlPath, wrk options, check }: what wrk then loads. */
async function prepare(mode, srv, o, tmpDir, log) {
  if (mode === 'hit') {
    const urlPath = hitPath(o.size);
    const check = await warmAndCheckHit(srv, urlPath, o.size);
    if (o.warm > 0) {
      log(`warm-up ${o.warm} s, c=${WARM_CONNECTIONS}`);
      await measure({ url: srv.url(urlPath), quiet: false, wrk: { connections: WARM_CONNECTIONS, durationSec: o.warm, tmpDir } });
    }
    return { urlPath, wrk: {}, check };
  }
  const v = missVariants(o.size).find((x) => x.name === (mode === 'miss-unique' ? 'unique' : 'no-store'));
  // As the miss scenario: two requests; the second must not be a hit (no-store) or must reach a new URL (unique).
  const probe = v.uniquePrefix ? `${v.uniquePrefix}probe` : v.path;
  await httpGet(srv.url(probe));
  const res = await httpGet(srv.url(probe));
  const ok = res.status === 200 && res.bodyBytes === o.size && (v.uniquePrefix !== undefined || !srv.isHit(res).hit);
  const check = { ok, detail: `status ${res.status}, ${res.bodyBytes} bytes, ${srv.isHit(res).detail}${v.uniquePrefix ? '; the probe URL asked twice, so a hit: the load asks new ones' : ''}` };
  // Every wrk run gets a prefix of its own (unique-paths.lua counts from 1 in each).
  let calls = 0;
  const wrk = v.uniquePrefix ? { uniquePrefix: () => `${v.uniquePrefix}${calls++}-` } : {};
  if (o.warm > 0) {
    log(`warm-up ${o.warm} s, c=${o.conns}`);
    await measure({ url: srv.url(v.path), quiet: false, wrk: { ...wrk, connections: o.conns, durationSec: o.warm, tmpDir } });
  }
  return { urlPath: v.path, wrk, check };
}

/** A table cell: a `|` in a function name would end it. */
const cell = (text) => text.replaceAll('|', '\\|');
const pct = (x) => `${(100 * x).toFixed(1)}%`;
const ms = (x) => x.toFixed(0);

function markdownOf({ o, stamp, started, m, check, s, profileName, window }) {
  const busyShare = (x) => (s.busyMs > 0 ? pct(x / s.busyMs) : '-');
  const cats = s.categories.map((c) => ({ ...c, help: CATEGORY_HELP[c.name] ?? (c.name.startsWith('node_modules: ') ? 'a dependency of ours' : '') }));
  return [
    `# sidecache profile: ${o.mode}`,
    '',
    `${started}: one standalone sidecache (\`node --cpu-prof dist/main.js\`, the hit and miss scenarios' settings) on core ${SERVER_CPU}${canPin() ? '' : ' (NOT pinned)'}, origin and wrk on core ${LOAD_CPU}; ${fmt.size(o.size)} bodies, wrk c=${o.conns} for ${o.seconds} s after ${o.warm} s of warm-up (${wrkVersion()}, node ${process.version}).`,
    '',
    `- load: ${fmt.int(m.rps)} req/s, p50 ${fmt.ms(m.latencyMs.p50)} ms, p99 ${fmt.ms(m.latencyMs.p99)} ms, ${fmt.us(m.cpuUsPerReq.proxy)} µs of sidecache CPU per request (with the profiler's own cost), ${m.errorCount} errors; other processes ${fmt.pct(m.otherPct)} of a core${m.otherPct > MAX_OTHER_PCT ? ' (disturbed)' : ''}`,
    `- check before the load: ${check.ok ? 'ok' : 'FAILED'} (${check.detail})`,
    `- samples: **${s.totalSamples} samples, ${ms(s.totalMs)} ms**, of which busy (not idle) ${ms(s.busyMs)} ms; ${window}`,
    `- raw profile: \`${profileName}\` (git-ignored; open it in Chrome DevTools or speedscope)`,
    '',
    '## Self time by category',
    '',
    markdownTable([
      { title: 'category', get: (c) => c.name, align: 'l' },
      { title: 'ms', get: (c) => ms(c.ms) },
      { title: 'share', get: (c) => pct(c.share) },
      { title: 'of busy', get: (c) => (c.name === '(idle)' ? '-' : busyShare(c.ms)) },
      { title: 'what it is', get: (c) => c.help, align: 'l' },
    ], cats),
    '',
    `## Top ${s.topSelf.length} functions by self time`,
    '',
    markdownTable([
      { title: '#', get: (f) => s.topSelf.indexOf(f) + 1 },
      { title: 'function', get: (f) => `\`${cell(f.name)}\``, align: 'l' },
      { title: 'where', get: (f) => cell(f.where) || '-', align: 'l' },
      { title: 'category', get: (f) => f.category, align: 'l' },
      { title: 'self ms', get: (f) => ms(f.selfMs) },
      { title: 'share', get: (f) => pct(f.share) },
    ], s.topSelf),
    '',
    `## Our functions by total (inclusive) time, top ${s.topOwnTotal.length}`,
    '',
    markdownTable([
      { title: '#', get: (f) => s.topOwnTotal.indexOf(f) + 1 },
      { title: 'function', get: (f) => `\`${cell(f.name)}\``, align: 'l' },
      { title: 'where', get: (f) => cell(f.where), align: 'l' },
      { title: 'total ms', get: (f) => ms(f.totalMs) },
      { title: 'share', get: (f) => pct(f.share) },
      { title: 'self ms', get: (f) => ms(f.selfMs) },
    ], s.topOwnTotal),
    '',
    `Shares are of all samples in the window (idle included); "of busy" leaves idle out. How to read this: benchmarks/README.md, "Profiles". Stamp ${stamp}.`,
    '',
  ].join('\n');
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.help) return void process.stdout.write(USAGE);
  const log = (l) => console.error(`[profile ${o.mode}] ${l}`);
  if (!fs.existsSync(SIDECACHE_MAIN)) throw new UsageError('dist/main.js not found: npm run build first');
  setQuietWaitSec(o.quietWait);
  pinSelf(LOAD_CPU);
  if (!ensureWrk({ install: o.install, log })) throw new Error('wrk is required (apt-get install -y wrk)');
  const tmpDir = makeTempDir('profile');
  const profDir = path.join(tmpDir, 'cpuprofile');
  fs.mkdirSync(profDir);
  const started = new Date().toISOString();
  const stamp = started.replace(/[:]/g, '-').replace(/\.\d+Z$/, 'Z');

  const origin = await startOrigin({ tmpDir });
  let srv;
  let measured;
  try {
    srv = await startSidecache({ tmpDir, originPort: origin.port, nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`] });
    if (srv.skipped) throw new Error(srv.reason);
    log(`sidecache up on port ${srv.port} (pid ${srv.handle.pid}), profiling into ${profDir}`);
    const { urlPath, wrk, check } = await prepare(o.mode, srv, o, tmpDir, log);
    log(`check: ${check.ok ? 'ok' : 'FAILED'} (${check.detail})`);
    await waitForQuiet(log);
    log(`profiled run: ${o.seconds} s, c=${o.conns}, ${urlPath}${wrk.uniquePrefix ? '<n> (unique)' : ''}`);
    const fromUs = nowUs();
    const m = await measure({ url: srv.url(urlPath), quiet: false, pidGroups: { proxy: srv.pids }, wrk: { ...wrk, connections: o.conns, durationSec: o.seconds, tmpDir } });
    const toUs = nowUs();
    measured = { m, check, fromUs, toUs };
    log(`${fmt.int(m.rps)} req/s, ${fmt.us(m.cpuUsPerReq.proxy)} µs CPU/req, ${m.errorCount} errors`);
  } finally {
    // SIGTERM, and time to drain and to write the profile: SIGKILL would leave none.
    if (srv && !srv.skipped) await srv.handle.stop(60_000);
    await origin.stop();
  }
  const files = fs.readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length !== 1) throw new Error(`expected one .cpuprofile in ${profDir}, found ${files.length}: did sidecache exit cleanly? ${srv.handle.tail()}`);
  const profile = JSON.parse(fs.readFileSync(path.join(profDir, files[0]), 'utf8'));

  const distDir = path.dirname(SIDECACHE_MAIN);
  // The profile and process.hrtime share the monotonic clock: keep the samples of the wrk run only
  // (not start-up, warm-up or shutdown). Should the clocks disagree, everything is counted.
  const { fromUs, toUs } = measured;
  const sameClock = profile.startTime <= fromUs && profile.endTime >= toUs;
  const s = summarize(profile, { distDir, ...(sameClock && { fromUs, toUs }) });
  const window = sameClock
    ? `the ${((toUs - fromUs) / 1e6).toFixed(1)} s of the profiled wrk run out of ${(s.profileMs / 1000).toFixed(1)} s profiled (start-up, warm-up and shutdown left out)`
    : `the whole profile (${(s.profileMs / 1000).toFixed(1)} s, start-up, warm-up and shutdown included: its clock did not match this process's)`;

  fs.mkdirSync(o.out, { recursive: true });
  const profileName = `profile-${o.mode}-${stamp}.cpuprofile`;
  fs.copyFileSync(path.join(profDir, files[0]), path.join(o.out, profileName));
  const md = markdownOf({ o, stamp, started, m: measured.m, check: measured.check, s, profileName, window });
  const mdPath = path.join(o.out, `profile-${o.mode}-latest.md`);
  fs.writeFileSync(mdPath, md);
  process.stdout.write(md);
  log(`wrote ${path.relative(process.cwd(), mdPath)} and ${path.relative(process.cwd(), path.join(o.out, profileName))}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof UsageError) console.error(`${err.message}\n\n${USAGE}`);
    else console.error(`profile: ${err.stack ?? err}`);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
