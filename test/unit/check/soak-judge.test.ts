// The soak's verdict (check/soak-judge.ts) on hand-made samples: RSS against idle + 1.25 x budget,
// fds and handles of the last window against the first, like with like across a restart.
import t from 'tap';
import { judge, type JudgeSpec, type Sample } from '../../../check/soak-judge.js';

const MiB = 1024 * 1024;
const SPEC: JudgeSpec = {
  durationMs: 600_000, warmMs: 10_000, windowMs: 60_000, budgetBytes: 20 * MiB, rssFactor: 1.25, tolerance: 0.10,
  idleRss: { s0: 80 * MiB, s1: 90 * MiB }, compared: ['s0', 's1'], readyAt: { s0: [-1], s1: [-1] },
  gateWindows: true, idleCounts: { s0: { fds: 27, handles: 7 }, s1: { fds: 27, handles: 7 } }, quietCounts: { s0: { fds: 27, handles: 7 }, s1: { fds: 26, handles: 7 } },
};

/** A sample every 5 s over the run, from `from` ms on; `f` gives the fields that vary. */
function series(member: string, f: (t: number) => Partial<Sample>, from = 0, incarnation = 0): Sample[] {
  const out: Sample[] = [];
  for (let t = from; t <= SPEC.durationMs; t += 5_000) out.push({ t, member, incarnation, rssBytes: 100 * MiB, fds: 60, handles: 30, ...f(t) });
  return out;
}

t.test('soak judge - steady fds, handles and RSS under the bound pass', async (t) => {
  const v = judge([...series('s0', () => ({})), ...series('s1', (x) => ({ fds: x % 10_000 === 0 ? 62 : 58 }))], SPEC);
  t.ok(v.ok, v.failures.join('; '));
  const s0 = v.members.find((m) => m.member === 's0')!;
  t.equal(s0.rssBound, 80 * MiB + 25 * MiB);
  t.equal(s0.fds!.first.from, 10_000, 'the first window begins after the warm-up');
  t.equal(s0.fds!.first.samples, 12);
  t.equal(s0.fds!.last.from, 540_000);
  t.equal(s0.fds!.last.samples, 13, 'the last window includes the sample at the very end');
});

t.test('soak judge - fds growing by more than 10 % between the windows fail, naming the member and the figures', async (t) => {
  const v = judge([...series('s0', (x) => ({ fds: 50 + Math.floor(x / 30_000) })), ...series('s1', () => ({}))], SPEC);
  t.notOk(v.ok);
  t.equal(v.failures.length, 1);
  t.match(v.failures[0], /^s0: fds 50\.\d in the first window, 6\d\.\d in the last \(\+\d+\.\d %/);
});

t.test('soak judge - a drop of more than 10 % fails too (within 10 % either way)', async (t) => {
  const v = judge([...series('s0', (x) => ({ handles: x < 300_000 ? 40 : 30 })), ...series('s1', () => ({}))], SPEC);
  t.same(v.failures, ['s0: active handles 40.0 in the first window, 30.0 in the last (-25.0 %, more than +10.0 %)']);
});

t.test('soak judge - one sample over idle + 1.25 x budget fails', async (t) => {
  const over = 90 * MiB + 25 * MiB + 1;
  const v = judge([...series('s0', () => ({})), ...series('s1', (x) => ({ rssBytes: x === 300_000 ? over : 100 * MiB }))], SPEC);
  t.equal(v.failures.length, 1);
  t.match(v.failures[0], /^s1: RSS 115\.0 MiB at 300 s over its bound 115\.0 MiB/);
  t.equal(v.members.find((m) => m.member === 's1')!.rssMaxAt, 300_000);
});

t.test('soak judge - a restarted member is compared from its restart, not with its first process', async (t) => {
  // First process: 80 fds. Killed at 200 s, ready again at 205 s; ramps up for 5 s, then 60 to the end.
  const before = series('s1', () => ({ fds: 80, handles: 40 })).filter((s) => s.t < 200_000);
  const after = series('s1', (x) => ({ fds: x < 210_000 ? 20 : 60 }), 205_000, 1);
  const spec = { ...SPEC, readyAt: { ...SPEC.readyAt, s1: [-1, 205_000] } };
  const v = judge([...series('s0', () => ({})), ...before, ...after], spec);
  t.ok(v.ok, v.failures.join('; '));
  const s1 = v.members.find((m) => m.member === 's1')!;
  t.equal(s1.incarnations, 2);
  t.equal(s1.fds!.first.from, 215_000, 'its first window: from its restart plus the warm-up');
  t.equal(s1.fds!.first.mean, 60);

  const wrong = judge([...series('s0', () => ({})), ...before, ...after], SPEC);
  t.notOk(wrong.ok, 'compared with its first process instead, the same samples would fail');
});

t.test('soak judge - a joiner is held to the RSS bound with the largest idle base, and not compared', async (t) => {
  const joiner = series('j1', () => ({ rssBytes: 114 * MiB, fds: 10 }), 100_000).filter((s) => s.t < 150_000);
  const v = judge([...series('s0', () => ({})), ...series('s1', () => ({})), ...joiner], SPEC);
  t.ok(v.ok, v.failures.join('; '));
  const j1 = v.members.find((m) => m.member === 'j1')!;
  t.equal(j1.idleRss, 90 * MiB);
  t.equal(j1.fds, undefined);
  const big = judge([...series('s0', () => ({})), ...series('s1', () => ({})), ...joiner.map((s) => ({ ...s, rssBytes: 116 * MiB }))], SPEC);
  t.match(big.failures, [/^j1: RSS 116\.0 MiB/]);
});

t.test('soak judge - too few samples in a window, or a compared member never sampled, fail', async (t) => {
  const sparse = series('s1', () => ({})).filter((s) => s.t < 20_000 || s.t > 590_000);
  const v = judge([...series('s0', () => ({})), ...sparse], SPEC);
  t.match(v.failures, [/^s1: too few samples to compare fds \(2 in the first window, 2 in the last\)/, /^s1: too few samples to compare active handles/]);
  const missing = judge(series('s0', () => ({})), SPEC);
  t.same(missing.failures, ['s1: no samples']);
});

t.test('soak judge - windows shorter than a minute are noted, not failed; the quiet counts still are', async (t) => {
  const grow = [...series('s0', (x) => ({ handles: x < 300_000 ? 30 : 40 })), ...series('s1', () => ({}))];
  const v = judge(grow, { ...SPEC, gateWindows: false });
  t.ok(v.ok, 'not failed');
  t.same(v.notes, ['s0: active handles 30.0 in the first window, 40.0 in the last (+33.3 %, more than +10.0 %)']);
  const leaked = judge(grow, { ...SPEC, gateWindows: false, quietCounts: { ...SPEC.quietCounts, s0: { fds: 28, handles: 7 } } });
  t.same(leaked.failures, ['s0: once quiet after the traffic, 28 fds and 7 handles against 27 and 7 before it'], 'one fd more than before the traffic fails');
  t.same([...leaked.failed], ['quiet']);
  const missing = judge(grow, { ...SPEC, quietCounts: { s0: SPEC.quietCounts.s0! } });
  t.match(missing.failures, [/^s0: active handles/, 's1: no count of fds and handles after the traffic']);
});
