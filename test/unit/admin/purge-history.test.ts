// The record of recent purges behind GET /purges: bounded, newest first, naming kinds and
// counts but never what was purged.
import t from 'tap';
import { PurgeHistory, purgeRecord } from '../../../src/admin/purge-history.js';

const acks = { acknowledged: ['a', 'b'], missing: ['c'] };

t.test('purge history - kind and count of each purge, its acks and time, never its URLs or tags', async (t) => {
  t.same(purgeRecord({ kind: 'url', keys: ['k1', 'k2', 'k3'] }, 7, 1000, 25, acks),
    { seq: 7, at: 1000, kind: 'url', count: 3, soft: false, ms: 25, acknowledged: ['a', 'b'], missing: ['c'] });
  t.match(purgeRecord({ kind: 'tags', tags: ['x'], soft: true }, 8, 0, 1, acks), { kind: 'tags', count: 1, soft: true });
  t.match(purgeRecord({ kind: 'prefix', prefix: 'http://h/secret/' }, 9, 0, 1, acks), { kind: 'prefix', count: 1 });
  t.notMatch(JSON.stringify(purgeRecord({ kind: 'prefix', prefix: 'http://h/secret/' }, 9, 0, 1, acks)), /secret/);
  t.match(purgeRecord({ kind: 'all' }, 10, 0, 1, acks), { kind: 'all', count: 1 });
});

t.test('purge history - keeps the last `limit`, newest first', async (t) => {
  const h = new PurgeHistory(3);
  t.same(h.recent(), []);
  for (let seq = 1; seq <= 5; seq++) h.add(purgeRecord({ kind: 'all' }, seq, seq, 0, acks));
  t.same(h.recent().map((r) => r.seq), [5, 4, 3]);
  h.recent().pop();
  t.equal(h.recent().length, 3, 'a caller cannot change the record');
});
