// The cache's invalidation rules: no resurrection (fences), bans by seq, soft purges, the
// tag index, and the byte budget.
import t from 'tap';
import type CachePolicy from 'http-cache-semantics';
import type { Freshness } from '../../../src/http/freshness.js';
import { Cache } from '../../../src/store/cache.js';
import { LruStore, PROMOTE_INTERVAL_MS } from '../../../src/store/memory.js';
import { DEFAULT_MAX_VARIANTS, entrySize, EntrySource, variantKey, type Entry } from '../../../src/store/types.js';

const NOW = 1_700_000_000_000;
const FRESH: Freshness = {
  storedAt: NOW, initialAgeSec: 0, freshUntil: NOW + 60_000, staleWhileRevalidateUntil: NOW + 60_000,
  staleIfErrorUntil: NOW + 60_000, mustRevalidate: false, hasValidators: false,
};

function entry(key: string, over: Partial<Entry> = {}): Entry {
  const body = over.body ?? Buffer.from(`body of ${key}`);
  const headers = ['content-length', String(body.length)];
  return {
    key, varyNames: null, varyValues: [], status: 200, headers, body, policy: {} as CachePolicy, freshness: FRESH,
    keepUntil: NOW + 60_000, tags: [], fence: 0, incarnation: '', etag: undefined, lastModified: undefined, source: EntrySource.local,
    fillSeq: 0, size: entrySize(key, headers, body.length), softPurged: false, ...over,
  };
}

/** Requests for keys stored without Vary: the cache never asks for their variant key. */
const plain = (): string => { throw new Error('variant key asked of a key stored without Vary'); };
const newCache = () => new Cache({ maxBytes: 1024 * 1024, hotMaxBytes: 64 * 1024 });

t.test('cache - store and look up; expired past keepUntil', async (t) => {
  const c = newCache();
  t.ok(c.store(entry('k')));
  t.equal(c.lookup('k', plain, undefined, NOW)?.key, 'k');
  t.equal(c.lookup('k', plain, undefined, NOW + 60_000), undefined, 'past keepUntil: gone');
  t.equal(c.main.stats.entries, 0, 'and removed');
});

t.test('cache - no resurrection: a fill fenced before a matching invalidation is rejected', async (t) => {
  const c = newCache();
  c.apply(5, { kind: 'url', keys: ['a'] });
  t.notOk(c.store(entry('a', { fence: 4 })), 'fetch began before the purge');
  t.equal(c.lookup('a', plain, undefined, NOW), undefined);
  t.ok(c.store(entry('a', { fence: 5 })), 'fetch began after it');
  t.ok(c.store(entry('b', { fence: 4 })), 'another key is unaffected');
});

t.test('cache - no resurrection for prefix and tag invalidations', async (t) => {
  const c = newCache();
  c.apply(3, { kind: 'prefix', prefix: 'http://h/p/' });
  c.apply(4, { kind: 'tags', tags: ['t1'] });
  t.notOk(c.store(entry('http://h/p/x', { fence: 2 })));
  t.ok(c.store(entry('http://h/q/x', { fence: 2 })));
  t.notOk(c.store(entry('http://h/q/y', { fence: 3, tags: ['t0', 't1'] })));
  t.ok(c.store(entry('http://h/q/z', { fence: 3, tags: ['t2'] })));
  t.ok(c.store(entry('http://h/p/x', { fence: 4 })), 'fenced after both');
});

t.test('cache - a fill fenced before the history horizon is refused: no invalidation left to check it against', async (t) => {
  const c = newCache();
  c.raiseHistoryFloor(5);
  t.notOk(c.store(entry('a', { fence: 4 })), 'invalidations 5 and earlier are unknown here');
  t.ok(c.store(entry('b', { fence: 5 })), 'every invalidation after its fence is known');
  c.raiseHistoryFloor(3);
  t.notOk(c.store(entry('c', { fence: 4 })), 'the horizon never moves back');
});

t.test('cache - purge-all is a ban by seq', async (t) => {
  const c = newCache();
  c.store(entry('a', { fence: 0 }));
  c.store(entry('b', { fence: 1 }));
  const n = c.apply(2, { kind: 'all' });
  t.equal(n, 2, 'both counted');
  t.equal(c.lookup('a', plain, undefined, NOW), undefined);
  t.equal(c.lookup('b', plain, undefined, NOW), undefined);
  t.notOk(c.store(entry('c', { fence: 1 })), 'a late fill from before the ban');
  t.ok(c.store(entry('c', { fence: 2 })));
  t.equal(c.lookup('c', plain, undefined, NOW)?.key, 'c');
});

t.test('cache - url invalidation removes every variant; entries fetched after it stay', async (t) => {
  const c = newCache();
  c.store(entry('k', { varyNames: ['accept-encoding'], varyValues: ['gzip'], fence: 0 }));
  c.store(entry('k', { varyNames: ['accept-encoding'], varyValues: ['br'], fence: 0 }));
  t.equal(c.main.get('k')?.entries.length, 2, 'two variants');
  t.equal(c.apply(1, { kind: 'url', keys: ['k'] }), 2);
  t.equal(c.main.get('k'), undefined);
  c.store(entry('j', { fence: 3 }));
  t.equal(c.apply(2, { kind: 'url', keys: ['j'] }), 0, 'fence 3 is newer than seq 2');
  t.ok(c.lookup('j', plain, undefined, NOW));
});

t.test('cache - soft purge marks stale and keeps the entry', async (t) => {
  const c = newCache();
  c.store(entry('a', { fence: 0 }));
  c.store(entry('b', { fence: 0, tags: ['t'] }));
  t.equal(c.apply(1, { kind: 'url', keys: ['a'], soft: true }), 1);
  const a = c.lookup('a', plain, undefined, NOW);
  t.ok(a, 'still there');
  t.equal(a?.softPurged, true);
  t.equal(c.lookup('b', plain, undefined, NOW)?.softPurged, false);
  c.apply(2, { kind: 'tags', tags: ['t'], soft: true });
  t.equal(c.lookup('b', plain, undefined, NOW)?.softPurged, true);
  t.ok(c.store(entry('a', { fence: 2 })), 'a refreshed entry is stored');
  t.equal(c.lookup('a', plain, undefined, NOW)?.softPurged, false, 'and is fresh again');
});

t.test('cache - soft purge-all marks every older entry stale', async (t) => {
  const c = newCache();
  c.store(entry('a', { fence: 0 }));
  c.apply(1, { kind: 'all', soft: true });
  t.equal(c.lookup('a', plain, undefined, NOW)?.softPurged, true);
  c.store(entry('b', { fence: 1 }));
  t.equal(c.lookup('b', plain, undefined, NOW)?.softPurged, false, 'fetched after the soft purge');
});

t.test('cache - a fill fenced before a matching soft purge is stored stale, never fresh', async (t) => {
  const c = newCache();
  c.apply(3, { kind: 'url', keys: ['a'], soft: true });
  c.apply(4, { kind: 'tags', tags: ['t'], soft: true });
  t.ok(c.store(entry('a', { fence: 2 })), 'kept for revalidation');
  t.equal(c.lookup('a', plain, undefined, NOW)?.softPurged, true, 'but it must be revalidated');
  c.store(entry('b', { fence: 3, tags: ['t'] }));
  t.equal(c.lookup('b', plain, undefined, NOW)?.softPurged, true, 'tag soft purge after its fence');
  c.store(entry('c', { fence: 4, tags: ['t'] }));
  t.equal(c.lookup('c', plain, undefined, NOW)?.softPurged, false, 'fenced after both');
});

t.test('cache - the tag index follows stores, replacements and deletions', async (t) => {
  const s = new LruStore(1024 * 1024);
  s.set(entry('a', { tags: ['x', 'y'] }));
  s.set(entry('b', { tags: ['y'] }));
  t.same([...(s.keysWithTag('y') ?? [])].sort(), ['a', 'b']);
  t.same([...(s.keysWithTag('x') ?? [])], ['a']);
  s.set(entry('a', { tags: ['z'] }));
  t.equal(s.keysWithTag('x'), undefined, 'replaced entry no longer carries x');
  t.same([...(s.keysWithTag('z') ?? [])], ['a']);
  s.delete('b');
  t.same([...(s.keysWithTag('y') ?? [])], [], 'y gone with b');
  const c = newCache();
  c.store(entry('p', { tags: ['t'] }));
  c.store(entry('q', { tags: ['u'] }));
  t.equal(c.apply(1, { kind: 'tags', tags: ['t'] }), 1);
  t.equal(c.lookup('p', plain, undefined, NOW), undefined);
  t.ok(c.lookup('q', plain, undefined, NOW));
  t.equal(c.main.keysWithTag('t'), undefined);
});

t.test('cache - the byte budget evicts least recently used keys', async (t) => {
  const one = entry('k0', { body: Buffer.alloc(4000) }).size;
  const s = new LruStore(one * 3 + 10);
  for (let i = 0; i < 3; i++) s.set(entry(`k${i}`, { body: Buffer.alloc(4000) }));
  t.equal(s.stats.entries, 3);
  s.get('k0'); // k1 is now the least recently used
  s.set(entry('k3', { body: Buffer.alloc(4000) }));
  t.equal(s.stats.entries, 3);
  t.equal(s.stats.evictions, 1);
  t.equal(s.get('k1'), undefined, 'LRU evicted');
  t.ok(s.get('k0'));
  t.ok(s.stats.bytes <= one * 3 + 10, 'within budget');
  const big = new LruStore(1000);
  big.set(entry('huge', { body: Buffer.alloc(5000) }));
  t.equal(big.get('huge'), undefined, 'an entry over the whole budget is not kept');
});

t.test('cache - hits move a key up the LRU at most once per interval, and see what the LRU holds', async (t) => {
  const one = entry('k0', { body: Buffer.alloc(4000) }).size;
  const s = new LruStore(one * 3 + 10);
  for (let i = 0; i < 3; i++) s.set(entry(`k${i}`, { body: Buffer.alloc(4000) }));
  t.ok(s.hit('k0', NOW), 'the first hit after a store moves k0 up');
  s.set(entry('k3', { body: Buffer.alloc(4000) }));
  t.equal(s.hit('k1', NOW), undefined, 'k1 was the least recently used: evicted, and gone from hits too');
  // LRU first: k2, k0, k3.
  t.ok(s.hit('k2', NOW), 'k2 moves up: k0, k3, k2');
  t.ok(s.hit('k0', NOW + PROMOTE_INTERVAL_MS - 1), 'a hit of k0 within the interval of its last move: k0 stays first');
  s.set(entry('k4', { body: Buffer.alloc(4000) }));
  t.equal(s.hit('k0', NOW), undefined, 'k0 evicted: its second hit did not move it');
  t.ok(s.hit('k2', NOW + PROMOTE_INTERVAL_MS), 'a hit of k2 one interval after its last move moves it again: k3, k4, k2');
  s.set(entry('k5', { body: Buffer.alloc(4000) }));
  t.equal(s.hit('k3', NOW), undefined, 'k3 evicted, k2 kept');
  t.same([...s.keys()].sort(), ['k2', 'k4', 'k5']);
  // Replacing, deleting a variant and deleting a key keep hits equal to the LRU.
  const v2 = entry('k2', { body: Buffer.alloc(100) });
  s.set(v2);
  t.equal(s.hit('k2', NOW)?.entries[0], v2, 'a replaced value is what hits see');
  s.deleteEntry(v2);
  t.equal(s.hit('k2', NOW), undefined, 'its last variant deleted');
  s.delete('k4');
  t.equal(s.hit('k4', NOW), undefined, 'deleted');
  s.set(entry('huge', { body: Buffer.alloc(one * 4) }));
  t.equal(s.hit('huge', NOW), undefined, 'an entry over the whole budget is not seen by hits');
  s.clear();
  t.equal(s.hit('k5', NOW), undefined, 'cleared');
});

t.test('cache - flush drops everything and fences before the floor are refused', async (t) => {
  const c = newCache();
  c.store(entry('a', { fence: 1 }));
  t.equal(c.flush(10), 1);
  t.equal(c.lookup('a', plain, undefined, NOW), undefined);
  t.notOk(c.store(entry('a', { fence: 5 })), 'cannot prove fence 5 clean after a gap to 10');
  t.ok(c.store(entry('a', { fence: 10 })));
});

/** Requests that carry their vary values already normalised, in the order of the names. */
const byValues = (_names: readonly string[], values: readonly string[]): string => variantKey(values);
const ae = (value: string, over: Partial<Entry> = {}): Entry =>
  entry('k', { varyNames: ['accept-encoding'], varyValues: [value], body: Buffer.from(`body for ${value}`), ...over });

t.test('variants - a 33rd variant evicts the least recently used one', async (t) => {
  const c = newCache();
  for (let i = 0; i < DEFAULT_MAX_VARIANTS; i++) t.ok(c.store(ae(`v${i}`)));
  t.equal(c.main.get('k')?.entries.length, DEFAULT_MAX_VARIANTS, 'all 32 kept');
  // v0 is the oldest store; a hit makes it recently used, so v1 is now the least recently used.
  t.equal(c.lookup('k', byValues, ['v0'], NOW + 1)?.body.toString(), 'body for v0');
  t.ok(c.store(ae('v32')));
  const held = c.main.get('k')!.entries.map((e) => e.varyValues[0]);
  t.equal(held.length, DEFAULT_MAX_VARIANTS, 'still 32');
  t.notOk(held.includes('v1'), 'v1, the least recently used, was evicted');
  t.ok(held.includes('v0'), 'v0, used by a hit, stays');
  t.equal(c.lookup('k', byValues, ['v1'], NOW + 2), undefined, 'v1 is a miss');
  t.equal(c.lookup('k', byValues, ['v32'], NOW + 2)?.body.toString(), 'body for v32');
  t.equal(c.main.stats.evictions, 1, 'counted as an eviction');
  const small = new Cache({ maxBytes: 1024 * 1024, hotMaxBytes: 64 * 1024, maxVariants: 2 });
  small.store(ae('a'));
  small.store(ae('b'));
  small.store(ae('a', { body: Buffer.from('a again') }));
  t.same(small.main.get('k')!.entries.map((e) => e.varyValues[0]), ['b', 'a'], 'replacing a variant evicts nothing');
  small.store(ae('c'));
  t.same(small.main.get('k')!.entries.map((e) => e.varyValues[0]), ['a', 'c'], 'maxVariants 2: b, least recently stored, goes');
});

t.test('variants - lookup finds the right variant among many, by a map on the vary values', async (t) => {
  const c = new Cache({ maxBytes: 1024 * 1024, hotMaxBytes: 64 * 1024, maxVariants: 1000 });
  const names = ['accept-encoding', 'accept-language'];
  // Stored first: the origin answered without Vary before it began to vary.
  c.store(entry('k', { body: Buffer.from('no vary') }));
  for (let i = 0; i < 500; i++) {
    c.store(entry('k', { varyNames: names, varyValues: [`e${i}`, `l${i % 7}`], body: Buffer.from(`b${i}`) }));
  }
  let asked = 0;
  const counting = (n: readonly string[], values: readonly string[]): string => {
    asked++;
    t.same(n, names, 'asked for the stored names');
    return variantKey(values);
  };
  t.equal(c.lookup('k', counting, ['e123', 'l4'], NOW)?.body.toString(), 'b123');
  t.equal(asked, 1, 'one variant key computed for 501 variants: no scan');
  t.equal(c.lookup('k', byValues, ['e123', 'l4'], NOW)?.body.toString(), 'b123', 'the Vary response is newer than the plain one');
  t.equal(c.lookup('k', byValues, ['e123', 'l5'], NOW)?.body.toString(), 'no vary', 'no match among the Vary ones: the plain response');
  t.equal(c.lookup('k', byValues, ['e499', 'l2'], NOW)?.body.toString(), 'b499');
  // RFC 9111 §4.1: with both a matching Vary response and one without Vary, the most recent wins.
  c.store(entry('k', { varyNames: names, varyValues: ['e7', 'l0'], body: Buffer.from('newest') }));
  t.equal(c.lookup('k', byValues, ['e7', 'l0'], NOW)?.body.toString(), 'newest');
  // An expired match is removed and the next one is looked for.
  c.store(entry('j', { body: Buffer.from('plain j') }));
  c.store(entry('j', { varyNames: ['accept'], varyValues: ['x'], keepUntil: NOW + 10, body: Buffer.from('short') }));
  t.equal(c.lookup('j', byValues, ['x'], NOW)?.body.toString(), 'short');
  t.equal(c.lookup('j', byValues, ['x'], NOW + 10)?.body.toString(), 'plain j', 'the expired variant is gone, the plain one serves');
  t.equal(c.main.get('j')?.entries.length, 1);
  // Two values that differ only in a field of another name never meet.
  t.equal(c.lookup('k', byValues, ['e123', 'l4'], NOW)?.body.toString(), 'b123');
});

t.test('variants - 10,000 variants of one key keep at most 32 within the byte budget', async (t) => {
  const maxBytes = 256 * 1024;
  const c = new Cache({ maxBytes, hotMaxBytes: 64 * 1024 });
  for (let i = 0; i < 10_000; i++) c.store(ae(`gzip;q=0.${i}`, { body: Buffer.alloc(100) }));
  const v = c.main.get('k')!;
  t.equal(v.entries.length, DEFAULT_MAX_VARIANTS, 'at most 32 variants');
  t.ok(c.main.stats.bytes <= maxBytes, `within the budget (${c.main.stats.bytes} bytes)`);
  t.equal(c.main.stats.evictions, 10_000 - DEFAULT_MAX_VARIANTS, 'every other variant was evicted, and counted');
  t.same(v.entries.map((e) => e.varyValues[0]), Array.from({ length: 32 }, (_, i) => `gzip;q=0.${10_000 - 32 + i}`), 'the 32 most recent');
  t.equal(c.lookup('k', byValues, ['gzip;q=0.9999'], NOW)?.varyValues[0], 'gzip;q=0.9999');
  t.equal(c.lookup('k', byValues, ['gzip;q=0.5'], NOW), undefined);
});

t.test('history - 200,000 long-key invalidations stay within the byte bound; forgotten ones still refuse old fills', async (t) => {
  const historyMaxBytes = 1024 * 1024;
  const c = new Cache({ maxBytes: 1024 * 1024, hotMaxBytes: 64 * 1024, historyMaxBytes });
  const long = (i: number): string => `http://h/${'x'.repeat(1000)}/${i}`;
  let most = 0;
  for (let seq = 1; seq <= 200_000; seq++) {
    c.apply(seq, { kind: 'url', keys: [long(seq)] });
    if (c.historyBytes > most) most = c.historyBytes;
  }
  t.ok(most <= historyMaxBytes, `never over the bound (at most ${most} bytes)`);
  t.ok(c.historyBytes > historyMaxBytes / 2, 'and it is used');
  t.ok(c.historyForgotten > 199_000, `the oldest were forgotten (${c.historyForgotten})`);
  // The first invalidation is long forgotten: a fill fenced before it is still refused.
  t.notOk(c.store(entry(long(1), { fence: 0 })), 'fenced before a forgotten invalidation: refused');
  t.notOk(c.store(entry(long(100_000), { fence: 99_999 })), 'fenced just before a forgotten one: refused');
  t.notOk(c.store(entry(long(200_000), { fence: 199_999 })), 'fenced before a remembered one: refused');
  t.ok(c.store(entry(long(200_000), { fence: 200_000 })), 'fenced after it: stored');
  t.ok(c.store(entry('http://h/other', { fence: 199_999 })), 'a recent fence on a key never invalidated: stored');
  // Soft purges share the bound and are forgotten oldest first too: old fills are kept stale.
  for (let seq = 200_001; seq <= 202_000; seq++) c.apply(seq, { kind: 'tags', tags: [`t${'y'.repeat(500)}${seq}`], soft: true });
  t.ok(c.historyBytes <= historyMaxBytes, 'hard and soft together within the bound');
  t.ok(c.store(entry('http://h/s', { fence: 200_000, tags: ['t'] })), 'kept');
  t.equal(c.lookup('http://h/s', plain, undefined, NOW)?.softPurged, true, 'but stale: soft purges it may have missed were forgotten');
  c.flush(300_000);
  t.equal(c.historyBytes, 0, 'a flush empties it');
});

t.test('cache - a fence of another INVAL incarnation is never stored, however high its seq', async (t) => {
  let incarnation = 'old';
  const c = new Cache({ maxBytes: 1024 * 1024, hotMaxBytes: 64 * 1024, incarnation: () => incarnation });
  t.ok(c.store(entry('a', { fence: 5, incarnation: 'old' })));
  // The stream is reset: seqs restart from 1, and the cache flushes.
  incarnation = 'new';
  c.flush(0);
  t.notOk(c.store(entry('a', { fence: 5, incarnation: 'old' })), 'fence 5 of the old numbering says nothing about seq 1 of the new');
  t.notOk(c.store(entry('b', { fence: 5, incarnation: 'old' }), true), 'nor as a hot copy');
  t.ok(c.store(entry('a', { fence: 0, incarnation: 'new' })), 'a fence of the new numbering is checked as usual');
  c.apply(1, { kind: 'url', keys: ['a'] });
  t.equal(c.lookup('a', plain, undefined, NOW), undefined, 'and purged by a later invalidation');
});
