// Backlog: for how long a sidecar has known of invalidations it has not applied.
import t from 'tap';
import { Backlog } from '../../../src/log/backlog.js';

t.test('backlog - behind since the first seq learnt and not applied', async (t) => {
  const b = new Backlog();
  t.equal(b.behindMs(1_000), 0, 'nothing learnt');
  b.learn(5, 5, 1_000);
  t.equal(b.behindMs(2_000), 0, 'a seq already applied is no backlog');
  b.learn(7, 5, 1_000);
  b.learn(9, 5, 1_500);
  t.equal(b.behindMs(2_000), 1_000, 'since seq 7 was learnt');
  b.applied(7);
  t.equal(b.behindMs(2_000), 500, 'seq 7 applied: since seq 9 was learnt');
  b.learn(8, 7, 1_800);
  t.equal(b.behindMs(2_000), 500, 'a lower seq learnt later changes nothing');
  b.applied(9);
  t.equal(b.behindMs(2_000), 0, 'caught up');
});

t.test('backlog - a reset forgets what was learnt; a burst merges into the newest entry, keeping its older time', async (t) => {
  const b = new Backlog();
  b.learn(100, 10, 1_000);
  b.clear();
  t.equal(b.behindMs(5_000), 0, 'seqs of the old numbering are gone');
  for (let s = 1; s <= 1_000; s++) b.learn(s, 0, s);
  b.applied(999);
  t.ok(b.behindMs(2_000) >= 2_000 - 1_000, 'seq 1000 is still behind, since no later than it was learnt');
  b.applied(1_000);
  t.equal(b.behindMs(2_000), 0);
});
