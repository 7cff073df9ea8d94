// The young generation grows under an allocation load that keeps objects alive across
// scavenges, and stops at the cap instead of at V8's default. Run in a fresh process: the
// test runner's own heap has grown long before a test starts.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { youngGenCapFor } from '../../src/young-gen.js';

const MiB = 1024 * 1024;
const youngGen = pathToFileURL(fileURLToPath(new URL('../../dist/young-gen.js', import.meta.url))).href;

/** Allocates in batches that yield to the event loop (where the cap is checked), keeping the
 *  last 40,000 objects alive so that scavenges see survivors and V8 wants to grow. */
const CHILD = `
import { setImmediate as tick } from 'node:timers/promises';
import { capYoungGeneration, youngGenBytes } from ${JSON.stringify(youngGen)};
const cap = Number(process.argv[1]);
const before = youngGenBytes();
if (cap > 0) capYoungGeneration(cap);
const ring = new Array(40000);
let n = 0, largest = 0;
for (let b = 0; b < 3000; b++) {
  for (let i = 0; i < 500; i++) ring[n++ % 40000] = { n, s: 'object ' + n, a: [n, n + 1, n + 2] };
  largest = Math.max(largest, youngGenBytes());
  await tick();
}
process.stdout.write(JSON.stringify({ before, largest }));
`;

function run(capBytes: number): { before: number; largest: number } {
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', CHILD, String(capBytes)], { encoding: 'utf8' }));
}

t.test('young generation - without the cap V8 grows it past 8 MiB under this load', async (t) => {
  const r = run(0);
  t.ok(r.largest > 8 * MiB, `largest ${r.largest / MiB} MiB`);
});

t.test('young generation - grows to the cap and no further than one doubling past it', async (t) => {
  // The cap is checked on a timer, so V8 can grow twice between two checks (young-gen.ts): at
  // most one doubling past the cap, against V8's 32 MiB without it.
  // A cap above where the fresh process starts (4 MiB), so that growth up to it is seen too.
  const cap = 8 * MiB;
  const r = run(cap);
  t.ok(r.before < cap, `it starts under the cap: ${r.before / MiB} MiB`);
  t.ok(r.largest > r.before, `it grew under load: ${r.before / MiB} MiB -> ${r.largest / MiB} MiB`);
  t.ok(r.largest <= 2 * cap, `it stayed within one doubling of the cap: largest ${r.largest / MiB} MiB, cap ${cap / MiB} MiB`);
});

t.test('young generation - the cap is a thirty-second of the cache budget, from 4 to 16 MiB', async (t) => {
  t.equal(youngGenCapFor(1 * MiB), 4 * MiB, 'never under 4 MiB');
  t.equal(youngGenCapFor(64 * MiB), 4 * MiB, 'the memory benchmark\'s 64 MiB');
  t.equal(youngGenCapFor(255 * MiB), 4 * MiB);
  t.equal(youngGenCapFor(256 * MiB), 8 * MiB, 'the default budget');
  t.equal(youngGenCapFor(512 * MiB), 16 * MiB);
  t.equal(youngGenCapFor(64 * 1024 * MiB), 16 * MiB, 'never over 16 MiB');
});
