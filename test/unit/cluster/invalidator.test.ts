// The one applier of invalidations: the log's messages, a gap and a write through this sidecar
// each reach the stores, the flights in progress and the replicated state (a removed entry is
// handed to the cluster, whose primary tombstones its fill).
import t from 'tap';
import { pino } from 'pino';
import type CachePolicy from 'http-cache-semantics';
import { SingleNode } from '../../../src/cluster/cluster.js';
import { Invalidator } from '../../../src/cluster/invalidator.js';
import { Metrics } from '../../../src/core/metrics.js';
import type { Freshness } from '../../../src/http/freshness.js';
import { Flights } from '../../../src/proxy/flight.js';
import { Cache } from '../../../src/store/cache.js';
import { entrySize, EntrySource, type Entry } from '../../../src/store/types.js';

const NOW = Date.now();
const FRESH: Freshness = {
  storedAt: NOW, initialAgeSec: 0, freshUntil: NOW + 60_000, staleWhileRevalidateUntil: NOW + 60_000,
  staleIfErrorUntil: NOW + 60_000, mustRevalidate: false, hasValidators: false,
};

function entry(key: string, tags: string[] = []): Entry {
  const body = Buffer.from(`body of ${key}`);
  const headers = ['content-length', String(body.length)];
  return {
    key, varyNames: null, varyValues: [], status: 200, headers, body, policy: {} as CachePolicy, freshness: FRESH,
    keepUntil: NOW + 60_000, tags, fence: 0, incarnation: '', etag: undefined, lastModified: undefined, source: EntrySource.local,
    fillSeq: 0, size: entrySize(key, headers, body.length), softPurged: false,
  };
}

/** A single node that records what it is told was removed (the ring member tombstones it). */
class RecordingNode extends SingleNode {
  readonly removedKeys: string[] = [];
  override removed(e: Entry): void {
    this.removedKeys.push(e.key);
  }
}

function setup() {
  const cache = new Cache({ maxBytes: 1024 * 1024, hotMaxBytes: 64 * 1024 });
  const flights = new Flights();
  const cluster = new RecordingNode(16);
  const metrics = new Metrics({
    bytes: () => 0, entries: () => 0, hotBytes: () => 0, appliedSeq: () => 0, epoch: () => 0, members: () => 1,
    partitionsOwned: () => 16, attached: () => 1, fills: () => ({ published: 0, dropped: 0, undecodable: 0 }),
  });
  const inv = new Invalidator({ cache, flights, cluster, metrics, logger: pino({ level: 'silent' }) });
  const plain = (): string => { throw new Error('no Vary'); };
  const held = (k: string) => cache.lookup(k, plain, undefined, NOW) !== undefined;
  return { cache, flights, cluster, inv, held };
}

t.test('invalidator - a url, prefix or tag invalidation from the log: the store, the flights, the replicas', async (t) => {
  const { cache, flights, cluster, inv, held } = setup();
  for (const k of ['http://a/x', 'http://a/y', 'http://a/z']) cache.store(entry(k, k.endsWith('z') ? ['t1'] : []));
  cache.store(entry('http://a/hot'), true);
  const f1 = flights.start('http://a/x', { incarnation: '', seq: 0 }, cache.generation);
  const f2 = flights.start('http://a/other', { incarnation: '', seq: 0 }, cache.generation);
  t.equal(inv.apply(1, { kind: 'url', keys: ['http://a/x', 'http://a/hot'] }), 2);
  t.notOk(held('http://a/x'));
  t.notOk(held('http://a/hot'), 'the hot set too');
  t.ok(f1.overtaken && !f1.joinable, 'a fetch begun before it is overtaken');
  t.notOk(f2.overtaken, 'another key\'s fetch is not');
  t.same(cluster.removedKeys.sort(), ['http://a/hot', 'http://a/x'], 'the cluster hears of each removed entry');
  t.equal(inv.apply(2, { kind: 'tags', tags: ['t1'] }), 1);
  t.notOk(held('http://a/z'));
  t.equal(inv.apply(3, { kind: 'prefix', prefix: 'http://a/' }), 1);
  t.notOk(held('http://a/y'));
  t.ok(f2.overtaken, 'the prefix covers the other fetch');
});

t.test('invalidator - a write through this sidecar: the same store, flights and replicas, at once', async (t) => {
  const { cache, flights, cluster, inv, held } = setup();
  cache.store(entry('http://a/w'));
  cache.store(entry('http://a/w'), true);
  cache.store(entry('http://a/keep'));
  const f = flights.start('http://a/w', { incarnation: '', seq: 0 }, cache.generation);
  inv.keys(['http://a/w', 'http://a/absent']);
  t.notOk(held('http://a/w'));
  t.ok(held('http://a/keep'));
  t.ok(f.overtaken, 'the fetch in progress for the written key is overtaken');
  t.same(cluster.removedKeys, ['http://a/w', 'http://a/w'], 'the owned copy and the hot copy are both reported');
});

t.test('invalidator - a gap flushes everything and overtakes every flight', async (t) => {
  const { cache, flights, inv, held } = setup();
  cache.store(entry('http://a/1'));
  const f = flights.start('http://a/1', { incarnation: '', seq: 0 }, cache.generation);
  inv.gap('test', 5, 9);
  t.notOk(held('http://a/1'));
  t.ok(f.overtaken);
  t.equal(cache.store(entry('http://a/2'), false, 0), false, 'a fetch begun before the flush is not stored');
});
