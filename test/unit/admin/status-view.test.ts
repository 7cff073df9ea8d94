// The status page's pure parts (they run in the browser too): rates between two readings,
// the ring as arcs, SVG paths, what a ring change moved, number formats.
import t from 'tap';
import {
  arcPath, formatBytes, formatPercent, formatRate, rateBetween, ringArcs, ringChange, sparkPath, type CounterReading,
} from '../../../src/admin/status-view.js';

const zero = { hit: 0, stale: 0, miss: 0, collapsed: 0, revalidated: 0, pass: 0, forwarded: 0, error: 0 };
function reading(at: number, requests: Partial<typeof zero>, origin = 0, forwarded = 0, startedAt = 1): CounterReading {
  return { at, startedAt, requests: { ...zero, ...requests }, originRequests: origin, forwardedRequests: forwarded };
}

t.test('status view - rates: differences over the member clock; hit ratio of the interval; none across a restart', async (t) => {
  const r = rateBetween(reading(10_000, { hit: 10, miss: 10 }, 10, 1), reading(12_000, { hit: 30, stale: 2, miss: 14, pass: 4 }, 14, 5))!;
  t.equal(r.at, 12_000);
  t.equal(r.requestsPerSec, (20 + 2 + 4 + 4) / 2, 'every outcome counts as a request, pass too');
  t.equal(r.hitsPerSec, 11, 'hits and stale hits');
  t.equal(r.hitRatio, 22 / 26, 'pass is not a lookup');
  t.equal(r.originPerSec, 2);
  t.equal(r.forwardedPerSec, 2);
  t.equal(rateBetween(reading(0, {}), reading(1000, { pass: 3 }))!.hitRatio, null, 'no lookup: no ratio');
  t.equal(rateBetween(reading(0, { hit: 5 }), reading(1000, { hit: 1 }, 0, 0, 2)), null, 'restarted (another startedAt)');
  t.equal(rateBetween(reading(1000, {}), reading(1000, {})), null, 'the same reading twice');
  t.equal(rateBetween(reading(0, { hit: 5 }), reading(1000, { hit: 2 }))!.hitsPerSec, 0, 'a counter going back never gives a negative rate');
});

t.test('status view - ring arcs: runs of one owner per rank; buckets by the commonest owner past maxArcs', async (t) => {
  const owners = [['a', 'b'], ['a', 'c'], ['b', 'a'], ['b', 'a'], ['c', 'a'], ['a', 'b']];
  t.same(ringArcs(owners, 0), [
    { from: 0, to: 1, owner: 'a', mixed: false }, { from: 2, to: 3, owner: 'b', mixed: false },
    { from: 4, to: 4, owner: 'c', mixed: false }, { from: 5, to: 5, owner: 'a', mixed: false },
  ]);
  t.same(ringArcs(owners, 1).map((x) => x.owner), ['b', 'c', 'a', 'b']);
  t.same(ringArcs([['a'], []], 1), [{ from: 0, to: 1, owner: null, mixed: false }], 'no owner of that rank: unowned');
  const many = Array.from({ length: 1000 }, (_, i) => [i % 3 === 0 ? 'x' : i % 2 === 0 ? 'y' : 'z']);
  const buckets = ringArcs(many, 0, 100);
  t.equal(buckets.length, 100);
  t.same([buckets[0]!.from, buckets[0]!.to, buckets[99]!.to], [0, 9, 999], 'the buckets cover every partition');
  t.ok(buckets.every((x) => x.mixed), 'each bucket says it holds several owners');
});

t.test('status view - arc paths: a sector from 12 o\'clock clockwise; a whole turn as two halves', async (t) => {
  t.equal(arcPath(100, 100, 50, 40, 0, 0.25), 'M100.00 50.00 A50 50 0 0 1 150.00 100.00 L140.00 100.00 A40 40 0 0 0 100.00 60.00 Z');
  t.match(arcPath(100, 100, 50, 40, 0, 0.75), /^M100\.00 50\.00 A50 50 0 1 1 /, 'more than half a turn: the large arc');
  const whole = arcPath(100, 100, 50, 40, 0, 1);
  t.equal(whole.match(/A/g)?.length, 4, 'two half circles outside and two inside');
  t.notMatch(whole, /NaN/);
});

t.test('status view - sparklines: right-aligned, scaled to max, gaps for null, a lone value a dot', async (t) => {
  t.equal(sparkPath([0, 5, 10], 100, 10, 10, 3), 'M0.0 10.0 L50.0 5.0 L100.0 0.0');
  t.equal(sparkPath([10, 20], 100, 10, 10, 5), 'M75.0 0.0 L100.0 0.0', 'fewer values than room: at the right; above max: at the top');
  t.equal(sparkPath([1, null, 1, 1], 30, 10, 2, 4), 'M0.0 5.0 h0 M20.0 5.0 L30.0 5.0');
  t.equal(sparkPath([1, 2, 3, 4], 10, 10, 4, 2), 'M0.0 2.5 L10.0 0.0', 'only the last `capacity` values');
  t.equal(sparkPath([], 10, 10, 1, 5), '');
  t.equal(sparkPath([null, 0], 10, 10, 0, 2), 'M10.0 10.0 h0', 'max 0 draws at the bottom, not NaN');
});

t.test('status view - ring change: who left and joined, primaries moved, partitions whose owners changed', async (t) => {
  const prev = { epoch: 4, members: ['a', 'b', 'c'], owners: [['a', 'b'], ['c', 'a'], ['b', 'c'], ['b', 'a']] };
  const next = { epoch: 5, members: ['a', 'b', 'd'], owners: [['a', 'b'], ['a', 'b'], ['b', 'd'], ['a', 'b']] };
  t.same(ringChange(prev, next), { fromEpoch: 4, toEpoch: 5, joined: ['d'], left: ['c'], primariesMoved: 2, ownersChanged: 2 },
    'a swap of primary and replica moves the primary but not the owners');
});

t.test('status view - formats', async (t) => {
  t.same([formatRate(0), formatRate(2.345), formatRate(12.6), formatRate(null), formatRate(Infinity)], ['0.0', '2.3', '13', '–', '–']);
  t.same([formatPercent(0.9031), formatPercent(null), formatPercent(1)], ['90.3%', '–', '100.0%']);
  t.same([formatBytes(512), formatBytes(2048), formatBytes(5 * 1024 * 1024 + 1), formatBytes(300 * 1024 ** 3)], ['512 B', '2.0 KiB', '5.0 MiB', '300 GiB']);
});
