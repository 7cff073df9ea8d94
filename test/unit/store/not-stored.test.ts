// The record of why keys were not stored: the latest reason per key, bounded in keys.
import t from 'tap';
import { NotStoredLog } from '../../../src/store/not-stored.js';

t.test('not stored - the latest reason per key, the oldest keys forgotten past the bound', async (t) => {
  const log = new NotStoredLog(3);
  log.note('a', 'set-cookie', 1);
  log.note('b', 'too large', 2);
  log.note('a', 'vary *', 3);
  t.same(log.get('a'), { reason: 'vary *', at: 3 });
  log.note('c', 'x', 4);
  log.note('d', 'y', 5);
  t.equal(log.size, 3);
  t.equal(log.get('b'), undefined, 'the oldest noted key went first');
  t.same(log.get('a'), { reason: 'vary *', at: 3 }, 'noting a key again made it young');
  for (let i = 0; i < 10_000; i++) log.note(`k${i}`, 'r', i);
  t.equal(log.size, 3, 'however many keys come by');
});
