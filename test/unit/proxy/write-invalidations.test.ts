// Write invalidations within a rate: as they are below it, coalesced into soft invalidations
// of parent paths (then hosts) above it. A fixed clock; the flush is called by the test.
import t from 'tap';
import type { Invalidation } from '../../../src/core/types.js';
import { originPrefixOf, parentPrefixOf, WriteInvalidations } from '../../../src/proxy/write-invalidations.js';

const NOW = 1_700_000_000_000;

function setup(over: { ratePerSec?: number; maxPrefixes?: number } = {}) {
  let now = NOW;
  const published: Invalidation[] = [];
  let coalesced = 0;
  const w = new WriteInvalidations({
    ratePerSec: over.ratePerSec ?? 10,
    flushIntervalMs: 60_000,
    maxPrefixes: over.maxPrefixes ?? 4,
    publish: (inval) => published.push(inval),
    onCoalesced: (n) => { coalesced += n; },
    now: () => now,
  });
  return { w, published, coalesced: () => coalesced, advance: (ms: number) => { now += ms; } };
}

t.test('write invalidations - prefixes of a key: its parent path, its origin', async (t) => {
  t.equal(parentPrefixOf('http://h/a/b/c?x=/y'), 'http://h/a/b/', 'the query is not a path');
  t.equal(parentPrefixOf('http://h:8080/c'), 'http://h:8080/');
  t.equal(parentPrefixOf('https://h/a/'), 'https://h/a/');
  t.equal(parentPrefixOf('http://h'), 'http://h/');
  t.equal(parentPrefixOf('http://h?q=/a'), 'http://h/');
  t.equal(originPrefixOf('http://h/a/b/c'), 'http://h/', 'with its slash: http://h must not cover http://h2');
  t.equal(parentPrefixOf('no scheme'), undefined);
});

t.test('write invalidations - below the rate each write is one url invalidation', async (t) => {
  const s = setup({ ratePerSec: 10 });
  for (let i = 0; i < 10; i++) s.w.add([`http://h/a/${i}`, `http://h/loc/${i}`]);
  t.equal(s.published.length, 10);
  t.same(s.published[3], { kind: 'url', keys: ['http://h/a/3', 'http://h/loc/3'] });
  s.advance(1000);
  for (let i = 0; i < 10; i++) s.w.add([`http://h/b/${i}`]);
  t.equal(s.published.length, 20, 'the bucket refills over a second');
  t.equal(s.coalesced(), 0);
});

t.test('write invalidations - a flood coalesces into soft parent prefixes, then hosts; none is lost', async (t) => {
  const s = setup({ ratePerSec: 10, maxPrefixes: 4 });
  for (let i = 0; i < 1000; i++) s.w.add([`http://h/items/${i}?v=1`]);
  t.equal(s.published.length, 10, 'the first ten as they are');
  t.equal(s.published.filter((p) => p.kind !== 'url').length, 0, 'the rest wait for the flush');
  s.w.flush();
  t.same(s.published.slice(10), [{ kind: 'prefix', prefix: 'http://h/items/', soft: true }], '990 writes, one soft invalidation');
  t.equal(s.coalesced(), 990, 'counted');
  // Many parents in one interval: their hosts instead.
  for (let i = 0; i < 20; i++) s.w.add([`http://h/p${i}/x`, `http://g/p${i}/x`]);
  s.w.flush();
  t.same(s.published.slice(11), [
    { kind: 'prefix', prefix: 'http://h/', soft: true },
    { kind: 'prefix', prefix: 'http://g/', soft: true },
  ], 'past maxPrefixes parents, one per host');
  t.equal(s.coalesced(), 1010);
  s.w.flush();
  t.equal(s.published.length, 13, 'nothing pending, nothing published');
  s.advance(500);
  s.w.add(['http://h/after']);
  t.same(s.published.at(-1), { kind: 'url', keys: ['http://h/after'] }, 'half a second later the bucket has tokens again');
});
