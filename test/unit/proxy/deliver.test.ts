// Cache-Status strings of fresh hits, made once per (ttl second, source) and epoch/seq.
import t from 'tap';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { cacheStatus, deliverEntry, HitStatuses, type StatusContext } from '../../../src/proxy/deliver.js';
import { EntrySource, type Entry } from '../../../src/store/types.js';

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

t.test('deliver - a peer\'s conditional request gets 304 only for a fresh copy; a stale one goes whole', async (t) => {
  // The owner's stale-if-error copy answered as 304 made the asking peer store it as freshly
  // revalidated (found by the cluster checker, seed 4 at 16.3 s).
  const now = 1_000_000;
  const entry = (freshUntil: number) => ({
    key: 'http://o/x', varyNames: null, varyValues: [], status: 200,
    headers: ['etag', '"1"', 'content-length', '4'], body: Buffer.from('body'), tags: [], fence: 0,
    etag: '"1"', lastModified: undefined, source: EntrySource.local, fillSeq: 0, size: 100, softPurged: false,
    freshness: { storedAt: now - 10_000, initialAgeSec: 0, freshUntil, staleWhileRevalidateUntil: freshUntil, staleIfErrorUntil: now + 60_000, mustRevalidate: false, hasValidators: true },
  }) as unknown as Entry;
  const answer = (e: Entry, toPeer: boolean) => {
    let status = 0;
    let body: unknown;
    const res = { writeHead: (s: number) => { status = s; }, end: (b?: unknown) => { body = b; } } as unknown as ServerResponse;
    const req = { method: 'GET', headers: { 'if-none-match': '"1"' } } as unknown as IncomingMessage;
    deliverEntry(req, res, e, now, 'sidecache; hit', toPeer);
    return { status, body };
  };
  t.equal(answer(entry(now + 5_000), true).status, 304, 'fresh: a peer gets 304');
  t.equal(answer(entry(now - 5_000), false).status, 304, 'stale: a client gets 304 (with an Age past the lifetime)');
  const whole = answer(entry(now - 5_000), true);
  t.equal(whole.status, 200, 'stale: a peer gets the whole response');
  t.same(whole.body, Buffer.from('body'));
  // Found by the checker (seed 1 at 36.8 s): a soft-purged copy, fresh by its lifetime, served
  // on an origin 503 and confirmed to a peer as a 304 after the soft purge.
  const soft = entry(now + 5_000);
  (soft as { softPurged: boolean }).softPurged = true;
  t.equal(answer(soft, true).status, 200, 'soft-purged: a peer gets the whole response');
  t.equal(answer(soft, false).status, 304, 'soft-purged: a client may still get 304');
});
