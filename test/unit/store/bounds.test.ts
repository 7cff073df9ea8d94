// Bounds of the store under floods: a million distinct URLs stay inside the byte budget, and
// the tag index holds only the tags of entries still held (it shrinks as they are evicted).
import t from 'tap';
import type CachePolicy from 'http-cache-semantics';
import type { Freshness } from '../../../src/http/freshness.js';
import { Cache } from '../../../src/store/cache.js';
import { entrySize, ENTRY_OVERHEAD_BYTES, EntrySource, type Entry } from '../../../src/store/types.js';

const NOW = 1_700_000_000_000;
const FRESH: Freshness = {
  storedAt: NOW, initialAgeSec: 0, freshUntil: NOW + 60_000, staleWhileRevalidateUntil: NOW + 60_000,
  staleIfErrorUntil: NOW + 60_000, mustRevalidate: false, hasValidators: false,
};
const BODY = Buffer.from('x'.repeat(64));
const HEADERS = ['content-length', String(BODY.length), 'cache-control', 'max-age=60'];
const POLICY = {} as CachePolicy;

function entry(key: string, tags: readonly string[] = []): Entry {
  return {
    key, varyNames: null, varyValues: [], status: 200, headers: HEADERS, body: BODY, policy: POLICY, freshness: FRESH,
    keepUntil: NOW + 60_000, tags, fence: 0, incarnation: '', etag: undefined, lastModified: undefined, source: EntrySource.local,
    fillSeq: 0, size: entrySize(key, HEADERS, BODY.length, null, [], tags), softPurged: false,
  };
}

t.test('store bounds - 1 million distinct URLs: bytes stay within the budget, the rest is evicted', async (t) => {
  const MAX = 4 * 1024 * 1024;
  const N = 1_000_000;
  const c = new Cache({ maxBytes: MAX, hotMaxBytes: 1024 * 1024 });
  let peakBytes = 0;
  let peakEntries = 0;
  for (let i = 0; i < N; i++) {
    c.store(entry(`http://origin.test/item/${i}?session=${i * 7919}`));
    if ((i & 1023) === 0) {
      const s = c.main.stats;
      peakBytes = Math.max(peakBytes, s.bytes);
      peakEntries = Math.max(peakEntries, s.entries);
      if (s.bytes > MAX) break;
    }
  }
  const s = c.main.stats;
  t.comment(`${N} URLs into ${MAX} bytes: peak ${peakBytes} bytes, ${peakEntries} entries; ${s.evictions} evicted`);
  t.ok(peakBytes <= MAX && s.bytes <= MAX, `bytes held (peak ${peakBytes}) within the budget ${MAX}`);
  t.ok(s.entries <= MAX / ENTRY_OVERHEAD_BYTES, 'each entry is charged at least its overhead');
  t.equal(s.evictions + s.entries, N, 'every URL not held was evicted');
  let keys = 0;
  for (const _ of c.main.keys()) keys++;
  t.equal(keys, s.entries, 'no key held beyond the entries counted');
  t.ok(c.lookup(`http://origin.test/item/${N - 1}?session=${(N - 1) * 7919}`, () => '', undefined, NOW), 'the newest is held');
  t.equal(c.lookup('http://origin.test/item/0?session=0', () => '', undefined, NOW), undefined, 'the oldest is gone');
});

t.test('store bounds - a storm of 100,000 distinct tags: the tag index holds only the tags of entries still held', async (t) => {
  const MAX = 1024 * 1024;
  const ENTRIES = 50_000;
  const c = new Cache({ maxBytes: MAX, hotMaxBytes: 64 * 1024 });
  const tagsOf = (i: number) => [`t-${2 * i}`, `t-${2 * i + 1}`, 'shared'];
  for (let i = 0; i < ENTRIES; i++) c.store(entry(`http://origin.test/tagged/${i}`, tagsOf(i)));
  const held = c.main.stats.entries;
  t.ok(held < ENTRIES, `${held} of ${ENTRIES} entries held: most were evicted`);
  let indexed = 0;
  for (let i = 0; i < 2 * ENTRIES; i++) if (c.main.keysWithTag(`t-${i}`) !== undefined) indexed++;
  t.comment(`${2 * ENTRIES} distinct tags stored; ${indexed} still indexed for ${held} entries held`);
  t.equal(indexed, 2 * held, 'an evicted entry\'s own tags left the index');
  t.equal(c.main.keysWithTag('shared')?.size, held, 'a shared tag lists only the keys held');
  for (let i = 0; i < ENTRIES - held; i++) {
    if (c.main.keysWithTag(`t-${2 * i}`) !== undefined) { t.fail(`tag of evicted entry ${i} still indexed`); break; }
  }
  t.equal(c.apply(1, { kind: 'tags', tags: ['shared'] }), held, 'a purge of the shared tag reaches every held entry');
  t.equal(c.main.keysWithTag('shared'), undefined, 'and the index is empty after it');
  let left = 0;
  for (let i = 0; i < 2 * ENTRIES; i++) if (c.main.keysWithTag(`t-${i}`) !== undefined) left++;
  t.equal(left, 0);
});

// Tags are kept on each entry and in the index (Surrogate-Key and Cache-Tag are stripped from
// the stored headers by default): an origin naming thousands of tags per response must not
// make the store hold many times its budget.
t.test('store bounds - the tags an entry holds are charged to the byte budget', async (t) => {
  const MAX = 1024 * 1024;
  const c = new Cache({ maxBytes: MAX, hotMaxBytes: 64 * 1024 });
  let tagChars = 0;
  for (let i = 0; i < 200; i++) {
    const tags = Array.from({ length: 1000 }, (_, j) => `entry-${i}-tag-${j}-${'k'.repeat(40)}`);
    c.store(entry(`http://origin.test/many-tags/${i}`, tags));
  }
  for (const key of [...c.main.keys()]) for (const e of c.main.get(key)!.entries) for (const tag of e.tags) tagChars += tag.length;
  t.comment(`${c.main.stats.entries} entries charged ${c.main.stats.bytes} bytes hold ${2 * tagChars} bytes of tag strings`);
  t.ok(c.main.stats.bytes >= 2 * tagChars, 'tag strings (UTF-16) are within what is charged');
});
