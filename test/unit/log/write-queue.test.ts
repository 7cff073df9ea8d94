// The write-invalidation queue: nothing the log refused is lost, and past its bound the queue
// folds into coarser soft invalidations instead of dropping any.
import t from 'tap';
import { pino } from 'pino';
import { WriteQueue } from '../../../src/log/write-queue.js';
import type { Invalidation } from '../../../src/log/types.js';

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
