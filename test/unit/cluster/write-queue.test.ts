// The write-invalidation queue: nothing the log refused is lost, and past its bound the queue
// folds into coarser soft invalidations instead of dropping any.
import t from 'tap';
import { pino } from 'pino';
import { WriteQueue } from '../../../src/cluster/write-queue.js';
import type { Invalidation } from '../../../src/core/types.js';

const logger = pino({ level: 'silent' });

/** The log seam: refuses invalidations (as NATS unreachable does) until opened. */
function closedLog(): { logged: Invalidation[]; open(): void; invalidate(i: Invalidation): Promise<number> } {
  let open = false;
  const logged: Invalidation[] = [];
  return {
    logged,
    open: () => { open = true; },
    invalidate: (i) => {
      if (!open) return Promise.reject(new Error('NATS is unreachable'));
      logged.push(i);
      return Promise.resolve(logged.length);
    },
  };
}

const url = (keys: string[]): Invalidation => ({ kind: 'url', keys });

async function settled(q: WriteQueue): Promise<void> {
  for (let i = 0; i < 100 && q.pending > 0; i++) await new Promise((r) => setImmediate(r));
}

t.test('write queue - refused invalidations wait and are logged in order once the log takes them', async (t) => {
  const log = closedLog();
  const q = new WriteQueue({ log, logger });
  t.teardown(() => q.close());
  q.submit(url(['http://a.example/1']));
  await new Promise((r) => setImmediate(r));
  q.submit(url(['http://a.example/2', 'http://a.example/3']));
  t.equal(q.pending, 2, 'both wait');
  q.flush();
  await new Promise((r) => setImmediate(r));
  t.equal(q.pending, 2, 'still refused: still waiting');
  log.open();
  q.flush();
  await settled(q);
  t.equal(q.pending, 0);
  t.same(log.logged, [
    { kind: 'url', keys: ['http://a.example/1'] },
    { kind: 'url', keys: ['http://a.example/2', 'http://a.example/3'] },
  ]);
});

t.test('write queue - past the bound, waiting invalidations fold into a soft one per origin, counted', async (t) => {
  const log = closedLog();
  let coalesced = 0;
  const q = new WriteQueue({ log, logger, maxChars: 200, onCoalesced: (n) => { coalesced += n; } });
  t.teardown(() => q.close());
  q.submit(url(['http://a.example/first']));
  await new Promise((r) => setImmediate(r));
  for (let i = 0; i < 10; i++) q.submit(url([`http://${i % 2 === 0 ? 'a' : 'b'}.example/path/${i}`]));
  t.ok(coalesced > 0, `folded ${coalesced}`);
  log.open();
  q.flush();
  await settled(q);
  const prefixes = log.logged.filter((i) => i.kind === 'prefix');
  t.same(prefixes.map((i) => i.kind === 'prefix' && [i.prefix, i.soft]).sort(), [['http://a.example/', true], ['http://b.example/', true]], 'one soft prefix per origin');
  const urls = log.logged.flatMap((i) => (i.kind === 'url' ? i.keys : []));
  for (let i = 0; i < 10; i++) {
    const key = `http://${i % 2 === 0 ? 'a' : 'b'}.example/path/${i}`;
    t.ok(urls.includes(key) || prefixes.some((p) => p.kind === 'prefix' && key.startsWith(p.prefix)), `${key} is covered`);
  }
});

t.test('write queue - origins beyond the bound fold into one soft purge of everything', async (t) => {
  const log = closedLog();
  const q = new WriteQueue({ log, logger, maxChars: 60 });
  t.teardown(() => q.close());
  q.submit(url(['http://h0.example/x']));
  await new Promise((r) => setImmediate(r));
  for (let i = 1; i < 8; i++) q.submit(url([`http://h${i}.example/x`]));
  log.open();
  q.flush();
  await settled(q);
  t.same(log.logged, [{ kind: 'all', soft: true }]);
});

t.test('write queue - a stopping sidecar gives waiting invalidations their last tries until its deadline', async (t) => {
  const log = closedLog();
  const q = new WriteQueue({ log, logger });
  t.teardown(() => q.close());
  q.submit(url(['http://a.example/written']));
  await new Promise((r) => setImmediate(r));
  t.equal(q.pending, 1, 'refused: waiting');
  // NATS comes back while the sidecar is stopping, before the next scheduled retry.
  setTimeout(() => log.open(), 150);
  const left = await q.settle(Date.now() + 5_000);
  t.equal(left, 0, 'nothing left waiting');
  t.same(log.logged, [{ kind: 'url', keys: ['http://a.example/written'] }], 'logged before the stop');
});

t.test('write queue - settling waits for a first try still on its way, and stops at the deadline when the log stays away', async (t) => {
  let calls = 0;
  // The first try takes a while and fails; later ones fail at once: the log never takes it.
  const log = {
    invalidate: (i: Invalidation): Promise<number> => {
      calls++;
      if (calls === 1) return new Promise((_, reject) => setTimeout(() => reject(new Error('publish timed out')), 100));
      return Promise.reject(new Error('NATS is unreachable'));
    },
  };
  const q = new WriteQueue({ log, logger });
  t.teardown(() => q.close());
  q.submit(url(['http://a.example/slow']));
  t.equal(q.pending, 0, 'on its way, not yet queued');
  const left = await q.settle(Date.now() + 600);
  t.equal(left, 1, 'still waiting after the deadline, reported by close');
  t.ok(calls >= 2, `tried again while settling (${calls} tries)`);
});
