// The soak's plan (check/soak-plan.ts): the windows its help promises, and purges of everything
// placed alike in every window compared.
import t from 'tap';
import { purgeAllTimes, restartPurgeAll, timingOf } from '../../../check/soak-plan.js';

t.test('soak plan - a 1-minute run compares its first and last 15 s; a 30-minute run its first and last minute', async (t) => {
  const short = timingOf(60_000);
  t.same([short.windowMs, short.warmMs, short.sampleEveryMs], [15_000, 5_000, 1250]);
  const long = timingOf(30 * 60_000);
  t.same([long.windowMs, long.warmMs, long.sampleEveryMs, long.holdMs], [60_000, 60_000, 5000, 30_000], 'the first window after a minute of warm-up');
  t.equal(timingOf(4 * 60_000).windowMs, 60_000, 'a minute from a 4-minute run on');
});

t.test('soak plan - a purge of everything at the middle of each compared window', async (t) => {
  t.same(purgeAllTimes(60_000), [12_500, 52_500]);
  t.same(purgeAllTimes(30 * 60_000), [90_000, 1_770_000], 'a minute of warm-up, then the middle of the first window; the middle of the last');
  t.equal(restartPurgeAll(500_000, timingOf(30 * 60_000)), 590_000, 'a restarted member: its warm-up, then the middle of its first window');
});
