// Cache-Status strings of fresh hits, made once per (ttl second, source) and epoch/seq.
import t from 'tap';
import { cacheStatus, HitStatuses, type StatusContext } from '../../../src/proxy/deliver.js';
import { EntrySource } from '../../../src/store/types.js';

function context(detail: boolean): StatusContext & { e: number; s: number } {
  const ctx = { detail, node: 'n1', e: 3, s: 7, epoch: () => ctx.e, seq: () => ctx.s };
  return ctx;
}

t.test('deliver - HitStatuses gives what cacheStatus gives for a hit', async (t) => {
  for (const detail of [true, false]) {
    const ctx = context(detail);
    const hits = new HitStatuses(ctx);
    for (const ttlSec of [0.2, 0.5, 1.49, 59.5, 3600, 3599.999]) {
      for (const source of Object.values(EntrySource)) {
        const want = cacheStatus(ctx, { hit: true, ttlSec, ...(source === EntrySource.local ? {} : { detail: source }) });
        t.equal(hits.get(ttlSec, source), want, `detail=${detail} ttl=${ttlSec} ${source}`);
        t.equal(hits.get(ttlSec, source), want, 'and again from the memo');
      }
    }
  }
  t.equal(new HitStatuses(context(true)).get(42.4, EntrySource.hot), 'sidecache; hit; ttl=42; node="n1"; epoch=3; seq=7; detail="hot"');
});

t.test('deliver - HitStatuses follows epoch and seq', async (t) => {
  const ctx = context(true);
  const hits = new HitStatuses(ctx);
  t.equal(hits.get(10, EntrySource.local), 'sidecache; hit; ttl=10; node="n1"; epoch=3; seq=7');
  ctx.s = 8;
  t.equal(hits.get(10, EntrySource.local), 'sidecache; hit; ttl=10; node="n1"; epoch=3; seq=8');
  ctx.e = 4;
  t.equal(hits.get(10, EntrySource.local), 'sidecache; hit; ttl=10; node="n1"; epoch=4; seq=8');
});

t.test('deliver - HitStatuses stays bounded and correct past its size limit', async (t) => {
  const ctx = context(true);
  const hits = new HitStatuses(ctx);
  for (let ttl = 0; ttl < 10_000; ttl++) {
    if (hits.get(ttl, EntrySource.local) !== `sidecache; hit; ttl=${ttl}; node="n1"; epoch=3; seq=7`) t.fail(`ttl ${ttl}`);
  }
  t.pass('10,000 distinct ttls');
});
