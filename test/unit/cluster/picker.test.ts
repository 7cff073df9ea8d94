import t from 'tap';
import { HashRingPicker, RangePicker, ownedPartitions, placedMembers } from '../../../src/cluster/picker.js';

t.test('picker - hash ring: R distinct owners per partition, the same table for the same members', async (t) => {
  const p = new HashRingPicker(256, 2);
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
  const p = new HashRingPicker(4096, 2);
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
  const p = new HashRingPicker(16, 3);
  t.same(p.place(['solo'], 1).owners[5], ['solo']);
  t.same(p.place([], 1).owners[5], []);
});

t.test('picker - range placement keeps neighbouring partitions together', async (t) => {
  const p = new RangePicker(8, 2);
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
  const table = new HashRingPicker(8, 2).place(placedMembers(view, 'b'), 3);
  t.equal(ownedPartitions(table, 'b').size, 8, 'with two members and R=2, each owns every partition');
});
