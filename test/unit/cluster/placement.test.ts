import t from 'tap';
import fc from 'fast-check';
import { HashPlacement, RangePlacement, ownedPartitions, placedMembers, type Placement } from '../../../src/cluster/placement.js';
import { hash32 } from '../../../src/proxy/key.js';

// The contract every placement keeps; forwarding, replication and handoff rely on nothing else.
function placementContract(name: string, make: (partitions: number, replicas: number) => Placement): void {
  t.test(`${name} placement: the contract`, async (t) => {
    const p = make(64, 2);
    t.equal(p.partitions, 64);
    const key = fc.string({ maxLength: 40 }).map((s) => `https://svc.example${s.startsWith('/') ? s : `/${s}`}`);
    fc.assert(fc.property(key, (k) => {
      const a = p.partitionOf(k);
      return Number.isInteger(a) && a >= 0 && a < 64 && a === make(64, 2).partitionOf(k);
    }), { numRuns: 500 });
    t.pass('every key has one partition in range, the same on every member');
    const members = ['n3', 'n1', 'n2'];
    const a = p.place(members, 5);
    t.same(a, make(64, 2).place([...members].reverse(), 5), 'the same table for the same members in any order');
    t.equal(a.epoch, 5);
    t.same(a.members, ['n1', 'n2', 'n3']);
    t.equal(a.owners.length, 64, 'every partition has a row');
    for (const o of a.owners) {
      t.equal(new Set(o).size, 2, 'R distinct owners');
      for (const id of o) t.ok(members.includes(id));
    }
    const primaries = new Set(a.owners.map((o) => o[0]));
    t.equal(primaries.size, 3, 'every member is primary of some partition');
    t.same(make(64, 3).place(['solo'], 1).owners[7], ['solo'], 'fewer members than replicas: each member once');
    t.same(p.place([], 1).owners[7], [], 'no member: no owner');
  });
}

placementContract('hash', (n, r) => new HashPlacement(n, r));
placementContract('range', (n, r) => new RangePlacement(n, r));

t.test('hash placement partitions keys as the fill subjects always have (FNV-1a modulo)', async (t) => {
  const p = new HashPlacement(256, 2);
  for (const k of ['https://a.example/x', 'http://b/y?z=1', '']) t.equal(p.partitionOf(k), hash32(k) % 256);
});

t.test('range placement keeps the keys of a path prefix together, in order', async (t) => {
  const p = new RangePlacement(256, 2);
  const path = fc.string({ unit: fc.constantFrom(...'/-_.abcdefghijklmnopqrstuvwxyzABCZ0129'.split('')), maxLength: 12 });
  fc.assert(fc.property(path, path, (a, b) => {
    const [x, y] = a <= b ? [a, b] : [b, a];
    return p.partitionOf(`https://svc/${x}`) <= p.partitionOf(`https://svc/${y}`);
  }), { numRuns: 2000 });
  t.pass('key order is partition order');
  t.equal(p.partitionOf('https://svc/users/1'), p.partitionOf('https://svc/users/99999'), 'one prefix, one partition');
  t.equal(p.partitionOf('https://svc/users/1'), p.partitionOf('http://other:8080/users/1'), 'the origin does not place a key');
});

t.test('picker - hash ring: R distinct owners per partition, the same table for the same members', async (t) => {
  const p = new HashPlacement(256, 2);
  const a = p.place(['c', 'a', 'b'], 7);
  const b = p.place(['b', 'c', 'a'], 7);
  t.same(a.owners, b.owners, 'member order does not matter');
  t.equal(a.epoch, 7);
  for (const o of a.owners) {
    t.equal(o.length, 2);
    t.not(o[0], o[1]);
  }
  const counts = new Map<string, number>();
  for (const o of a.owners) counts.set(o[0]!, (counts.get(o[0]!) ?? 0) + 1);
  for (const id of ['a', 'b', 'c']) t.ok(counts.get(id)! > 256 / 3 * 0.6, `${id} is primary of a fair share (${counts.get(id)})`);
});

t.test('picker - hash ring: a 3 -> 4 scale-out moves close to a quarter of the primaries', async (t) => {
  const p = new HashPlacement(4096, 2);
  const before = p.place(['n1', 'n2', 'n3'], 1);
  const after = p.place(['n1', 'n2', 'n3', 'n4'], 2);
  let moved = 0;
  for (let i = 0; i < 4096; i++) if (before.owners[i]![0] !== after.owners[i]![0]) moved++;
  const share = moved / 4096;
  t.ok(share > 0.18 && share < 0.32, `moved ${(share * 100).toFixed(1)}% (ideal 25%)`);
  for (let i = 0; i < 4096; i++) {
    if (before.owners[i]![0] !== after.owners[i]![0]) t.equal(after.owners[i]![0], 'n4', 'only to the new member');
  }
});

t.test('picker - fewer members than replicas, and none', async (t) => {
  const p = new HashPlacement(16, 3);
  t.same(p.place(['solo'], 1).owners[5], ['solo']);
  t.same(p.place([], 1).owners[5], []);
});

t.test('picker - range placement keeps neighbouring partitions together', async (t) => {
  const p = new RangePlacement(8, 2);
  const table = p.place(['a', 'b'], 1);
  t.same(table.owners.map((o) => o[0]), ['a', 'a', 'a', 'a', 'b', 'b', 'b', 'b']);
  t.same(table.owners[0], ['a', 'b']);
});

t.test('picker - only active members are placed; a joining member can be added for planning', async (t) => {
  const view = {
    epoch: 3,
    members: [
      { id: 'a', peerUrl: 'http://a', state: 'active' as const, partitions: 8 },
      { id: 'b', peerUrl: 'http://b', state: 'warming' as const, partitions: 8 },
      { id: 'c', peerUrl: 'http://c', state: 'draining' as const, partitions: 8 },
    ],
  };
  t.same(placedMembers(view), ['a']);
  t.same(placedMembers(view, 'b').sort(), ['a', 'b']);
  const table = new HashPlacement(8, 2).place(placedMembers(view, 'b'), 3);
  t.equal(ownedPartitions(table, 'b').size, 8, 'with two members and R=2, each owns every partition');
});
