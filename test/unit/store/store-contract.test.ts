// The contract of a CacheStore (store/types.ts), as the cache relies on it: one suite, run
// against every implementation (today the in-memory LRU; a store on disk or shared memory
// would be added to the list at the bottom and held to the same checks).
import t, { type Test } from 'tap';
import fc from 'fast-check';
import type CachePolicy from 'http-cache-semantics';
import type { Freshness } from '../../../src/http/freshness.js';
import { LruStore } from '../../../src/store/memory.js';
import { entrySize, EntrySource, type CacheStore, type Entry } from '../../../src/store/types.js';

const NOW = 1_700_000_000_000;
const FRESH: Freshness = {
  storedAt: NOW, initialAgeSec: 0, freshUntil: NOW + 60_000, staleWhileRevalidateUntil: NOW + 60_000,
  staleIfErrorUntil: NOW + 60_000, mustRevalidate: false, hasValidators: false,
};

function entry(key: string, o: { tags?: string[]; vary?: [string[], string[]]; bytes?: number } = {}): Entry {
  const body = Buffer.alloc(o.bytes ?? 100, 'x');
  const headers = ['content-length', String(body.length)];
  const [varyNames, varyValues] = o.vary ?? [null, []];
  return {
    key, varyNames, varyValues, status: 200, headers, body, policy: {} as CachePolicy, freshness: FRESH,
    keepUntil: NOW + 60_000, tags: o.tags ?? [], fence: 0, incarnation: '', etag: undefined, lastModified: undefined,
    source: EntrySource.local, fillSeq: 0, size: entrySize(key, headers, body.length, varyNames, varyValues, o.tags ?? []), softPurged: false,
  };
}

type Make = (maxBytes: number, opts?: { maxVariants?: number; onEvict?: () => void }) => CacheStore;

function storeContract(name: string, make: Make): void {
  t.test(`${name}: set, get, peek, delete; a variant replaces the same variant only`, async (t: Test) => {
    const s = make(1024 * 1024);
    const a = entry('k', { vary: [['accept-language'], ['en']] });
    const b = entry('k', { vary: [['accept-language'], ['de']] });
    s.set(a);
    s.set(b);
    t.same(s.get('k')?.entries.map((e) => e.varyValues[0]).sort(), ['de', 'en'], 'two variants of one key');
    const a2 = entry('k', { vary: [['accept-language'], ['en']] });
    s.set(a2);
    t.equal(s.get('k')?.entries.length, 2, 'the same variant again replaces it');
    t.ok(s.get('k')?.entries.includes(a2) && !s.get('k')?.entries.includes(a), 'with the newer one');
    t.equal(s.peek('k'), s.get('k'), 'peek sees what get sees');
    s.deleteEntry(b);
    t.same(s.get('k')?.entries, [a2], 'one variant removed');
    s.deleteEntry(a2);
    t.equal(s.get('k'), undefined, 'the key goes with its last variant');
    s.set(entry('x'));
    t.equal(s.delete('x'), true);
    t.equal(s.delete('x'), false, 'deleting an absent key says so');
    t.equal(s.stats.entries, 0);
  });

  t.test(`${name}: tags index exactly the keys held`, async (t: Test) => {
    const s = make(1024 * 1024);
    s.set(entry('a', { tags: ['t1', 't2'] }));
    s.set(entry('b', { tags: ['t2'] }));
    t.same([...s.keysWithTag('t2') ?? []].sort(), ['a', 'b']);
    s.delete('a');
    t.same([...s.keysWithTag('t2') ?? []], ['b']);
    t.equal(s.keysWithTag('t1'), undefined, 'a tag of no held key is gone');
    s.clear();
    t.equal(s.keysWithTag('t2'), undefined);
    t.same([...s.keys()], []);
  });

  t.test(`${name}: a byte budget, least recently used out first, counted`, async (t: Test) => {
    let evicted = 0;
    const one = entry('k0', { bytes: 4096 }).size;
    const s = make(one * 10, { onEvict: () => evicted++ });
    for (let i = 0; i < 10; i++) s.set(entry(`k${i}`, { bytes: 4096 }));
    s.get('k0');
    for (let i = 10; i < 15; i++) s.set(entry(`k${i}`, { bytes: 4096 }));
    t.ok(s.stats.bytes <= one * 10, `within the budget (${s.stats.bytes} <= ${one * 10})`);
    t.ok(s.get('k0') !== undefined, 'the key just used stays');
    t.equal(s.get('k1'), undefined, 'the least recently used left');
    t.ok(evicted >= 5 && s.stats.evictions === evicted, `evictions counted (${evicted})`);
  });

  t.test(`${name}: at most maxVariants variants per key`, async (t: Test) => {
    const s = make(1024 * 1024, { maxVariants: 3 });
    for (const v of ['a', 'b', 'c', 'd']) s.set(entry('k', { vary: [['x'], [v]] }));
    t.same(s.get('k')?.entries.map((e) => e.varyValues[0]), ['b', 'c', 'd'], 'the oldest variant dropped');
  });

  t.test(`${name}: any sequence of sets and deletes keeps the byte count and the index consistent`, async (t: Test) => {
    const op = fc.oneof(
      fc.record({ set: fc.integer({ min: 0, max: 20 }), bytes: fc.integer({ min: 1, max: 3000 }), tag: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ del: fc.integer({ min: 0, max: 20 }) }),
    );
    fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const s = make(20_000);
      for (const o of ops) {
        if ('set' in o) s.set(entry(`k${o.set}`, { bytes: o.bytes, tags: [`t${o.tag}`] }));
        else s.delete(`k${o.del}`);
      }
      let bytes = 0;
      let keys = 0;
      for (const k of s.keys()) {
        keys++;
        const v = s.peek(k)!;
        bytes += v.size;
        for (const e of v.entries) for (const tag of e.tags) if (!s.keysWithTag(tag)?.has(k)) return false;
      }
      return keys === s.stats.entries && bytes === s.stats.bytes && s.stats.bytes <= 20_000;
    }), { numRuns: 300 });
    t.pass('bytes and entries add up, every tag of a held key is indexed, the budget holds');
  });
}

storeContract('in-memory LRU', (maxBytes, opts = {}) => new LruStore(maxBytes, {
  ...(opts.maxVariants === undefined ? {} : { maxVariants: opts.maxVariants }),
  ...(opts.onEvict === undefined ? {} : { onEvict: opts.onEvict }),
}));
