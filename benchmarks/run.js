#!/usr/bin/env node
// Benchmark dispatcher: node benchmarks/run.js [scenario|all] [--full] [--dry-run] [options]
// Runs the scenario(s), prints one summary table each and, for several, one table of every
// target at the end; writes results under benchmarks/results/.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pinSelf, canPin, cpuCount, setNiceness, getNiceness, SERVER_CPU, LOAD_CPU } from './lib/cpu.js';
import { ensureWrk, wrkVersion } from './lib/wrk.js';
import { setQuietWaitSec } from './lib/measure.js';
import { SERVER_NAMES } from './lib/servers.js';
import { makeTempDir } from './lib/processes.js';
import { textTable, markdownTable, targetLines, writeResults, machineInfo, resultsDir } from './lib/results.js';

const SCENARIOS = ['hit', 'miss', 'memory', 'forward', 'offload', 'invalidation', 'migration', 'growth'];
/** Scenario name -> module under scenarios/ (default: <name>.js). */
const SCENARIO_FILES = { forward: 'cluster-forward.js', offload: 'cluster-offload.js', invalidation: 'cluster-invalidation.js', migration: 'cluster-migration.js' };
const HERE = path.dirname(fileURLToPath(import.meta.url));

const USAGE = `usage: node benchmarks/run.js [scenario] [options]

scenarios: ${SCENARIOS.join(', ')}, all   (default: all)

  --full                the full version of each scenario (hit: 1/16/64/256 KiB x 1/16/64
                        connections x 5 rounds of 5 s; offload 450k requests; growth to 1M keys);
                        default is quick (hit: 1 and 64 KiB x 16 and 64 connections x 5 rounds of
                        3 s; all scenarios in about 20 minutes)
  --dry-run             tiny sizes, 1 s runs, one connection count; peers that are not installed are
                        skipped; results go to benchmarks/results/tmp/; exit 0 when the harness works
  --servers=a,b         only these servers (${SERVER_NAMES.join(', ')}; "direct" for miss)
  --no-install          never apt-get install wrk, nginx or varnish
  --nginx-sendfile=off  serve nginx and nginx-static hits with read/write instead of sendfile (default on)
  --sizes=1024,65536    override the body sizes in bytes (hit)
  --conns=1,16          override the connection counts (hit)
  --duration=5          override the seconds of each measured run
  --rounds=5            hit: measure every server N times, interleaved; ratios are the medians of
                        per-round ratios, and the hit targets need N >= 5 (fewer: reported as n/a)
  --budget=64MiB        memory: the byte budget to fill twice over (default 64MiB; 8MiB dry)
  --quiet-wait=20       seconds to wait, before each run, for CPU load from other processes to settle
  --nice=-10            run servers, origin and wrk at this nice value (negative needs root): on a
                        machine shared with other work, the measured cores then go mostly to the
                        benchmark. The same for every server; recorded in the results
  --strict              exit 1 when a server is there but fails to start
  -h, --help            this text
`;

/** A bad command line: printed without a stack trace. */
class UsageError extends Error {}

function positiveInts(arg) {
  const [name, value] = arg.split('=');
  const list = value.split(',').map(Number);
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n <= 0)) throw new UsageError(`${name}: expected positive integers separated by commas, got "${value}"`);
  return list;
}

function parseArgs(argv) {
  const opts = { scenario: null, mode: 'quick', install: true, servers: null, nginxSendfile: true, strict: false };
  for (const a of argv) {
    if (a === '--full') opts.mode = opts.mode === 'dry' ? 'dry' : 'full';
    else if (a === '--dry-run') opts.mode = 'dry';
    else if (a === '--no-install') opts.install = false;
    else if (a === '--strict') opts.strict = true;
    else if (a.startsWith('--servers=')) {
      opts.servers = a.slice('--servers='.length).split(',').filter(Boolean);
      const bad = opts.servers.filter((s) => s !== 'direct' && !SERVER_NAMES.includes(s));
      if (bad.length > 0) throw new UsageError(`--servers: unknown ${bad.join(', ')}; expected some of ${[...SERVER_NAMES, 'direct'].join(', ')}`);
    }
    else if (a.startsWith('--sizes=')) opts.sizes = positiveInts(a);
    else if (a.startsWith('--conns=')) opts.connections = positiveInts(a);
    else if (a.startsWith('--duration=')) opts.durationSec = positiveInts(a)[0];
    else if (a.startsWith('--quiet-wait=')) opts.quietWaitSec = positiveInts(a)[0];
    else if (a.startsWith('--rounds=')) opts.rounds = positiveInts(a)[0];
    else if (a.startsWith('--budget=')) {
      const v = a.slice('--budget='.length);
      const m = /^(\d+)MiB$/.exec(v);
      if (!m || Number(m[1]) < 1) throw new UsageError(`--budget: expected a size in MiB (e.g. 256MiB), got "${v}"`);
      opts.budget = { budget: v, budgetBytes: Number(m[1]) * 1024 ** 2 };
    }
    else if (a.startsWith('--nice=')) {
      opts.nice = Number(a.slice('--nice='.length));
      if (!Number.isInteger(opts.nice) || opts.nice < -20 || opts.nice > 19) throw new UsageError(`--nice: expected an integer from -20 to 19, got "${a.slice(7)}"`);
    }
    else if (a.startsWith('--nginx-sendfile=')) {
      const v = a.slice('--nginx-sendfile='.length);
      if (v !== 'on' && v !== 'off') throw new UsageError(`--nginx-sendfile: expected on or off, got "${v}"`);
      opts.nginxSendfile = v === 'on';
    } else if (a === '-h' || a === '--help') opts.help = true;
    else if (!a.startsWith('-') && opts.scenario === null) {
      if (a !== 'all' && !SCENARIOS.includes(a)) throw new UsageError(`unknown scenario "${a}": expected one of ${SCENARIOS.join(', ')}, all`);
      opts.scenario = a;
    } else throw new UsageError(`unknown argument "${a}"`);
  }
  return opts;
}

function markdownOf(name, mode, out, result) {
  const m = result.machine;
  const lines = [
    `# sidecache benchmark: ${name} (${mode})`,
    '',
    `${out.description}. Run ${result.startedAt} on ${m.cpus} cores (${m.cpuModel}), ${m.kernel}, node ${m.node}, ${m.wrk}.`,
    `Servers pinned to core ${SERVER_CPU}, load generator to core ${LOAD_CPU}${result.pinned ? '' : ' (NOT pinned: taskset or a second core missing)'}${result.nice ? `, all at nice ${result.nice}` : ''}.`,
    '',
  ];
  if (out.rows.length > 0) lines.push(markdownTable(out.columns, out.rows), '');
  else lines.push('No measurements (see notes).', '');
  if (out.targets.length > 0) lines.push('## Targets', '', ...out.targets.map((t) => `- **${t.status}** ${t.name}${t.detail ? `: ${t.detail}` : ''}`), '');
  const serverLines = (out.servers ?? []).map((s) => `- ${s.name}: ${s.status}${s.version ? ` (${s.version})` : ''}${s.reason ? `: ${s.reason}` : ''}`);
  if (serverLines.length > 0) lines.push('## Servers', '', ...serverLines, '');
  if (out.notes.length > 0) lines.push('## Notes', '', ...[...new Set(out.notes)].map((n) => `- ${n}`), '');
  lines.push(`Raw figures: \`${name}-latest.json\`. How to read this: benchmarks/README.md.`, '');
  return lines.join('\n');
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const dryRun = opts.mode === 'dry';
  const scenarios = opts.scenario === null || opts.scenario === 'all' ? SCENARIOS : [opts.scenario];
  const log = (line) => console.log(line);

  // A dry run measures nothing: it neither waits for quiet nor runs again when disturbed.
  if (opts.quietWaitSec) setQuietWaitSec(opts.quietWaitSec);
  else if (dryRun) setQuietWaitSec(0);
  if (opts.nice) {
    try {
      setNiceness(opts.nice);
    } catch (err) {
      throw new UsageError(`--nice=${opts.nice}: ${err.message}`);
    }
  }
  const pinnedSelf = pinSelf(LOAD_CPU);
  log(`sidecache bench: ${scenarios.join(', ')} (${opts.mode}) on ${cpuCount} cores, node ${process.version}`);
  if (!canPin()) log('WARNING: cannot pin (taskset missing or a single core): server and load generator share cores; figures are not comparable with pinned runs');
  else log(`pinning: servers on core ${SERVER_CPU}, wrk, origin and this harness on core ${LOAD_CPU}${pinnedSelf ? '' : ' (could not pin the harness itself)'}${getNiceness() ? `; nice ${getNiceness()}` : ''}`);

  const wrk = ensureWrk({ install: opts.install, log });
  if (!wrk) {
    if (!dryRun) {
      log('ERROR: wrk is required (apt-get install -y wrk); see benchmarks/README.md');
      return 1;
    }
    log('dry run: wrk is missing, so servers are started and checked but no load is run');
  }
  const wrkVer = wrkVersion();

  let exitCode = 0;
  const summary = [];
  // Scenario tables for the summary (hit, memory): the figures beside the targets.
  const summaryTables = [];
  const began = Date.now();
  for (const [index, name] of scenarios.entries()) {
    const scenario = await import(path.join(HERE, 'scenarios', SCENARIO_FILES[name] ?? `${name}.js`));
    const tmpDir = makeTempDir(name);
    const startedAt = new Date().toISOString();
    log(`\n== scenario ${name} (${index + 1}/${scenarios.length}, ${Math.round((Date.now() - began) / 1000)} s so far): ${scenario.description}`);
    const out = await scenario.run({ mode: opts.mode, dryRun, install: opts.install, wrkAvailable: wrk !== null, log, tmpDir, options: opts });
    if (out.skipped) {
      log(`[${name}] skipped: ${out.skipped}`);
      summary.push({ scenario: name, status: 'skipped', name: out.skipped, detail: '' });
      continue;
    }
    out.description = scenario.description;
    if (dryRun) {
      // Dry-run figures are a smoke test (1 s, tiny sizes): say so instead of met / missed.
      for (const t of out.targets) {
        if (t.status !== 'met' && t.status !== 'missed') continue;
        t.detail = `dry run, not a measurement (would be ${t.status}): ${t.detail}`;
        t.status = 'n/a';
      }
    }
    const result = {
      scenario: name,
      mode: opts.mode,
      startedAt,
      finishedAt: new Date().toISOString(),
      pinned: canPin(),
      nice: getNiceness(),
      cores: { server: SERVER_CPU, load: LOAD_CPU },
      machine: machineInfo({ wrk: wrkVer }),
      config: out.config,
      servers: out.servers,
      rows: out.rows,
      targets: out.targets,
      notes: [...new Set(out.notes)],
      ...(out.raw === undefined ? {} : { raw: out.raw }),
    };
    log(`\n== ${name} summary (${opts.mode})\n`);
    log(out.rows.length > 0 ? textTable(out.columns, out.rows) : '(no measurements)');
    if (out.targets.length > 0) log(`\ntargets:\n${targetLines(out.targets).map((l) => `  ${l}`).join('\n')}`);
    if (result.notes.length > 0) log(`\nnotes:\n${result.notes.map((n) => `  - ${n}`).join('\n')}`);
    const written = await writeResults({ scenario: name, dryRun, result, markdown: markdownOf(name, opts.mode, out, result), vlSpec: out.vlSpec, log });
    log(`\nwrote ${written.join(', ')}`);
    for (const t of out.targets) summary.push({ scenario: name, ...t });
    if (out.summaryTable) summaryTables.push({ scenario: name, ...out.summaryTable });
    if (out.targets.length === 0) summary.push({ scenario: name, status: '-', name: 'no targets', detail: `see ${name}-latest.md` });
    if (opts.strict && (out.servers ?? []).some((s) => s.status === 'failed')) exitCode = 1;
  }
  if (scenarios.length > 1) {
    const columns = [
      { title: 'scenario', get: (r) => r.scenario, align: 'l' },
      { title: 'status', get: (r) => r.status, align: 'l' },
      { title: 'target or figure', get: (r) => r.name, align: 'l' },
      { title: 'measured', get: (r) => r.detail ?? '', align: 'l' },
    ];
    const minutes = ((Date.now() - began) / 60000).toFixed(1);
    log(`\n== summary of ${scenarios.length} scenarios (${opts.mode}, ${minutes} min)\n`);
    log(textTable(columns, summary));
    const counts = ['met', 'missed', 'n/a'].map((st) => `${summary.filter((r) => r.status === st).length} ${st}`).join(', ');
    log(`\ntargets: ${counts}`);
    const md = [
      `# sidecache benchmarks: summary (${opts.mode})`, '',
      `Run ${new Date(began).toISOString()}, ${minutes} min; each scenario's table, JSON and plot are in \`<scenario>-latest.*\`. The targets are issue 14's (benchmarks/README.md, "Targets"); status \`-\` is a figure without a target.`, '',
      `Targets: ${counts}.`, '',
      markdownTable(columns, summary), '',
      ...summaryTables.flatMap((t) => [`## ${t.scenario}: ${t.title}`, '', markdownTable(t.columns, t.rows), '']),
    ].join('\n');
    const dir = resultsDir(dryRun);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'summary-latest.md'), md);
    log(`\nwrote ${path.relative(process.cwd(), path.join(dir, 'summary-latest.md'))}`);
  }
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof UsageError) console.error(`${err.message}\n\n${USAGE}`);
    else console.error(`benchmark harness error: ${err.stack ?? err}`);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
