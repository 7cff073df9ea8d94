// The soak's plan (check/soak-plan.ts): the windows its help promises, and purges of everything
// placed alike in the first window and the last.
import t from 'tap';
import { purgeAllTimes, timingOf } from '../../../check/soak-plan.js';

t.test('soak plan - a 1-minute run compares its first and last 15 s; a 30-minute run its first and last minute', async (t) => {
  const short = timingOf(60_000);
  t.same([short.windowMs, short.warmMs, short.sampleEveryMs], [15_000, 5_000, 1250]);
  const long = timingOf(30 * 60_000);
  t.same([long.windowMs, long.warmMs, long.sampleEveryMs, long.holdMs], [60_000, 60_000, 5000, 30_000], 'the first window after a minute of warm-up');
  t.equal(timingOf(4 * 60_000).windowMs, 60_000, 'a minute from a 4-minute run on');
});

t.test('soak plan - purges of everything at the middle of the first and the last window, about every two minutes between', async (t) => {
  t.same(purgeAllTimes(60_000), [12_500, 52_500]);
  const long = purgeAllTimes(30 * 60_000);
  t.equal(long[0], 90_000, 'the middle of the first window (a minute of warm-up + 30 s)');
  t.equal(long[long.length - 1], 1_770_000, 'the middle of the last window');
  const gaps = long.slice(1).map((x, i) => x - long[i]!);
  t.ok(gaps.every((g) => Math.abs(g - gaps[0]!) <= 1 && g > 100_000 && g < 140_000), `even gaps of about two minutes: ${gaps[0]} ms`);
});
