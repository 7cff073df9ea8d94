// NatsLog against real nats-server 2.9 processes, membership: the view through joins, state
// changes, heartbeat expiry and leaves, concurrent joins agreeing per epoch, and a member with
// another partition count refused. One 3-node JetStream cluster for the file (a unique
// sidecache cluster name per test).

import t from 'tap';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { startNats } from '../../support/nats-server.js';
import { heartbeatKey, logNames } from '../../src/log/subjects.js';
import type { View } from '../../src/core/types.js';
import { natsLogMembers, uniqueCluster, waitFor } from '../helpers/nats-log-members.js';

const nats = await startNats({ nodes: 3 });
t.teardown(() => nats.stop());
const { startMember, admin } = natsLogMembers(t, nats.urls);

function ids(view: View): string[] {
  return view.members.map((m) => m.id).sort();
}

t.test('view - join, state change, heartbeat expiry agreed by the survivors, leave', async (t) => {
  const cluster = uniqueCluster();
  const fast = { heartbeatIntervalMs: 200, heartbeatTtlMs: 1_500 };
  const a = await startMember(t, cluster, 'A', fast);
  const b = await startMember(t, cluster, 'B', fast);
  const c = await startMember(t, cluster, 'C', fast);
  await a.log.setState('warming');
  await Promise.all([b.log.setState('active'), c.log.setState('active')]);
  const all = [a, b, c];
  await waitFor('everyone sees three members', () => all.every((m) => m.log.view.members.length === 3));
  const e0 = a.log.view.epoch;
  t.equal(e0, 3, 'three joins, three epochs');
  t.ok(all.every((m) => m.log.view.epoch === e0), 'same epoch everywhere');

  await a.log.setState('active');
  await waitFor('everyone sees A active', () => all.every((m) => m.log.view.epoch === e0 + 1));
  t.ok(all.every((m) => m.log.view.members.every((x) => x.state === 'active')), 'state change is one new epoch');
  await a.log.setState('active');
  t.equal(a.log.view.epoch, e0 + 1, 'setting the same state again changes nothing');

  // B dies without leave(): its heartbeats stop, 2.9's KV watch reports nothing (§7).
  await b.log.close();
  // The TTL runs from B's last stored heartbeat (the server's timestamp, same clock), which
  // may be up to an interval plus a put's latency before the close.
  const hbBucket = await new Kvm(jetstream(await admin(t))).open(logNames(cluster).heartbeatBucket);
  const lastBeat = (await hbBucket.get(heartbeatKey('B')))!.created.getTime();
  await waitFor('A and C removed B', () => [a, c].every((m) => !ids(m.log.view).includes('B')), 8_000);
  const tookMs = Date.now() - lastBeat;
  t.ok(tookMs >= 1_500, `not before the TTL after its last heartbeat (${tookMs} ms)`);
  t.same(ids(a.log.view), ['A', 'C'], 'A and C remain');
  t.equal(a.log.view.epoch, e0 + 2, 'one departure, one epoch, though both survivors tried');
  t.equal(c.log.view.epoch, a.log.view.epoch, 'survivors agree on the epoch');

  await c.log.leave();
  await waitFor('A sees C gone', () => ids(a.log.view).join() === 'A');
  t.equal(a.log.view.epoch, e0 + 3, 'leave is one epoch');
  const nc = await admin(t);
  const hb = await new Kvm(jetstream(nc)).open(logNames(cluster).heartbeatBucket);
  const entry = await hb.get(heartbeatKey('C'));
  t.not(entry?.operation, 'PUT', 'leave deleted the heartbeat');
  const epochs = a.views.map((v) => v.epoch);
  t.same(epochs, [...epochs].sort((x, y) => x - y), 'handlers.view saw increasing epochs');
  t.equal(new Set(epochs).size, epochs.length, 'each epoch once');
});

t.test('view - what a member keeps about its peers ends when they leave the view (left or crashed)', async (t) => {
  const cluster = uniqueCluster();
  const fast = { heartbeatIntervalMs: 200, heartbeatTtlMs: 1_500 };
  const a = await startMember(t, cluster, 'A', fast);
  await a.log.setState('active');
  for (let round = 0; round < 2; round++) {
    const leaving = await startMember(t, cluster, `L${round}`, fast);
    const crashing = await startMember(t, cluster, `C${round}`, fast);
    await Promise.all([leaving.log.setState('active'), crashing.log.setState('active')]);
    await waitFor(`A sees round ${round}'s members`, () => a.log.view.members.length === 3);
    // Acks too: a purge acknowledged by both.
    const seq = await a.log.invalidate({ kind: 'url', keys: [`http://h/${round}`] });
    t.same((await a.log.waitApplied(seq, 5_000)).missing, [], `round ${round}: acknowledged by all`);
    t.equal(a.log.trackedMembers, 3, `round ${round}: A tracks itself and the two members`);
    await leaving.log.leave();
    await leaving.log.close();
    await crashing.log.close();
    await waitFor(`A drops round ${round}'s members`, () => ids(a.log.view).join() === 'A', 10_000);
  }
  t.equal(a.log.trackedMembers, 1, 'A tracks only itself after four members came and went');
});

t.test('view - concurrent joins: equal epochs hold equal member lists everywhere', async (t) => {
  // nats-server 2.9 lets two concurrent compare-and-set writes with the same revision both
  // succeed on R3 (nats-server#4320); the log must still agree on one view per epoch.
  const cluster = uniqueCluster();
  const names = ['M1', 'M2', 'M3', 'M4', 'M5'];
  const members = await Promise.all(names.map((id) => startMember(t, cluster, id)));
  for (let round = 0; round < 2; round++) {
    await Promise.all(members.map((m) => m.log.setState(round === 0 ? 'warming' : 'active')));
  }
  await waitFor('everyone sees the final view', () =>
    members.every((m) => m.log.view.epoch === members[0]!.log.view.epoch && m.log.view.members.every((x) => x.state === 'active')),
  );
  t.same(ids(members[0]!.log.view), names, 'all five joined');
  t.equal(members[0]!.log.view.epoch, 10, 'ten changes, ten epochs');
  const byEpoch = new Map<number, string>();
  let disagreements = 0;
  for (const m of members) {
    for (const v of m.views) {
      const shape = v.members.map((x) => `${x.id}:${x.state}:${x.partitions}:${x.peerUrl}`).join(' ');
      const seen = byEpoch.get(v.epoch);
      if (seen === undefined) byEpoch.set(v.epoch, shape);
      else if (seen !== shape) disagreements++;
    }
  }
  t.equal(disagreements, 0, 'no epoch was seen with two different member lists');
});

t.test('view - a member with another partition count is refused', async (t) => {
  const cluster = uniqueCluster();
  const a = await startMember(t, cluster, 'A');
  await a.log.setState('active');
  const d = await startMember(t, cluster, 'D', { self: { id: 'D', peerUrl: 'http://127.0.0.1:1/D', partitions: 128 } });
  await t.rejects(d.log.setState('warming'), {
    name: 'SidecacheError',
    code: 'SC_ERR_LOG',
    message: 'partitions mismatch: cluster has 256, this sidecar 128',
  });
  t.same(ids(a.log.view), ['A'], 'D was not added');
});
