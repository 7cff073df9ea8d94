#!/usr/bin/env node
// Mutants: each one removes a single promise sidecache makes, in a copy of the tree, and runs
// the smallest tests that guard that promise. A promise whose mutant survives has no test.
// A mutant whose text is no longer found in the source is reported STALE and fails the run
// too: the mutants must move with the code.
//
//   npm run mutants                  every mutant
//   npm run mutants -- --only=NAME   one (or a comma-separated list)
//   npm run mutants -- --list        names and promises
//   npm run mutants -- --jobs=2      two mutants at a time (CI: each waits on processes much of the time)
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MUTANTS } from './mutants.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** What a test run needs from the tree; node_modules is linked, not copied. */
const COPY = ['src', 'test', 'support', 'types', 'bin', 'package.json', 'tsconfig.json', 'tsconfig.build.json'];
const TEST_TIMEOUT_MS = 240_000;

function arg(name) {
  const a = process.argv.find((x) => x === `--${name}` || x.startsWith(`--${name}=`));
  if (a === undefined) return undefined;
  return a.includes('=') ? a.slice(a.indexOf('=') + 1) : true;
}

function run(cmd, args, cwd, timeoutMs) {
  return new Promise((done) => {
    const p = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TAP_REPORTER: 'tap' }, detached: true });
    let out = '';
    p.stdout.on('data', (c) => { out += c; });
    p.stderr.on('data', (c) => { out += c; });
    const timer = setTimeout(() => { try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ } }, timeoutMs);
    p.on('exit', (code, signal) => { clearTimeout(timer); done({ code, signal, out }); });
  });
}

/** Replaces exactly one occurrence; anything else means the mutant no longer fits the code. */
function patch(dir, m) {
  for (const edit of m.edits) {
    const path = join(dir, edit.file);
    const text = readFileSync(path, 'utf8');
    const at = text.indexOf(edit.find);
    if (at === -1 || text.indexOf(edit.find, at + 1) !== -1) {
      return `${edit.file}: expected the text once, found it ${at === -1 ? 'nowhere' : 'more than once'}: ${JSON.stringify(edit.find.slice(0, 60))}`;
    }
    writeFileSync(path, text.slice(0, at) + edit.replace + text.slice(at + edit.find.length));
  }
  return undefined;
}

async function runMutant(m) {
  const dir = mkdtempSync(join(tmpdir(), `sidecache-mutant-${m.name}-`));
  const started = Date.now();
  try {
    for (const p of COPY) cpSync(join(ROOT, p), join(dir, p), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    const stale = patch(dir, m);
    if (stale !== undefined) return { verdict: 'STALE', detail: stale };
    const build = await run('npx', ['tsc', '-p', 'tsconfig.build.json'], dir, 120_000);
    if (build.code !== 0) return { verdict: 'STALE', detail: `the mutant does not compile:\n${build.out.slice(0, 2000)}` };
    for (const t of m.tests) {
      const args = ['tap', '--disable-coverage', '--bail', ...(t.grep === undefined ? [] : [`--grep=${t.grep}`]), t.file];
      const r = await run('npx', args, dir, TEST_TIMEOUT_MS);
      // A test that fails (or hangs) on the mutant caught it; one that passes let it through.
      // A file that fails without a failing assertion (it did not load, it ran nothing) proves
      // nothing either way: STALE, so that a broken tree cannot pass for a caught mutant.
      const failed = r.code !== 0 || r.signal !== null;
      const asserted = /^\s+not ok /m.test(r.out) || r.signal !== null;
      const ran = /^# \{ total: [1-9]/m.test(r.out) || failed;
      if (!ran) return { verdict: 'STALE', detail: `${t.file}${t.grep ? ` --grep=${t.grep}` : ''} ran no test` };
      if (failed && !asserted) return { verdict: 'STALE', detail: `${t.file} failed without a failing assertion (did it load?):\n${r.out.slice(-1500)}` };
      if (failed) {
        const firstFail = r.out.split('\n').find((l) => /^\s*not ok /.test(l))?.trim() ?? (r.signal ? `killed by ${r.signal}` : `exit ${r.code}`);
        return { verdict: 'caught', detail: `${t.file}: ${firstFail}` };
      }
    }
    return { verdict: 'SURVIVED', detail: `passed: ${m.tests.map((t) => t.file + (t.grep ? ` (${t.grep})` : '')).join(', ')}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    m.seconds = ((Date.now() - started) / 1000).toFixed(1);
  }
}

if (arg('list')) {
  for (const m of MUTANTS) console.log(`${m.name.padEnd(28)} ${m.promise}`);
  process.exit(0);
}
const only = arg('only');
const chosen = typeof only === 'string' ? MUTANTS.filter((m) => only.split(',').includes(m.name)) : MUTANTS;
if (chosen.length === 0) {
  console.error(`mutants: no mutant named ${only}; see --list`);
  process.exit(2);
}
const jobs = Math.max(1, Number(arg('jobs') ?? 1) || 1);
let bad = 0;
const queue = [...chosen];
await Promise.all(Array.from({ length: jobs }, async () => {
  for (let m = queue.shift(); m !== undefined; m = queue.shift()) {
    const r = await runMutant(m);
    if (r.verdict !== 'caught') bad++;
    console.log(`${r.verdict.padEnd(8)} ${m.name.padEnd(28)} ${m.seconds}s  ${r.detail}`);
  }
}));
console.log(`mutants: ${chosen.length - bad} caught, ${bad} not caught, of ${chosen.length}`);
process.exit(bad === 0 ? 0 : 1);
