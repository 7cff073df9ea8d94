// NatsLog against real nats-server 2.9 processes, gaps in INVAL: a member behind a purge or
// the byte bound, a stream deleted and recreated (acks restart with it), and concurrent
// publishes that are no reset. One 3-node JetStream cluster for the file (a unique sidecache
// cluster name per test).

import t from 'tap';
import { jetstreamManager } from '@nats-io/jetstream';
import { startNats } from '../../support/nats-server.js';
import { logNames } from '../../src/log/subjects.js';
import { natsLogMembers, uniqueCluster, waitFor } from '../helpers/nats-log-members.js';

const nats = await startNats({ nodes: 3 });
t.teardown(() => nats.stop());
const { startMember, admin } = natsLogMembers(t, nats.urls);

/** As an operator would recreate a stream. A member's periodic check may recreate it first
 *  ("already in use"), and a create can time out on a loaded machine while it still takes
 *  effect: either way the stream must exist afterwards. */
async function recreate(jsm: Awaited<ReturnType<typeof jetstreamManager>>, config: Parameters<Awaited<ReturnType<typeof jetstreamManager>>['streams']['add']>[0]): Promise<void> {
  try {
    await jsm.streams.add(config);
  } catch (err) {
    if (!/already in use|timeout/i.test((err as Error).message)) throw err;
  }
  for (let i = 0; ; i++) {
    try {
      await jsm.streams.info(config.name!);
      return;
    } catch (err) {
      if (i >= 50) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

t.test('gap - a member restarted after INVAL was purged reports the gap before later invalidations', async (t) => {
  const cluster = uniqueCluster();
  const a = await startMember(t, cluster, 'A');
  const b = await startMember(t, cluster, 'B');
  let s = 0;
  for (let i = 0; i < 3; i++) s = await a.log.invalidate({ kind: 'url', keys: [`k${i}`] });
  await waitFor('B applied 3', () => b.log.appliedSeq === s);
  const bApplied = b.log.appliedSeq;
  await b.log.close();

  let s5 = 0;
  for (let i = 0; i < 2; i++) s5 = await a.log.invalidate({ kind: 'url', keys: [`later${i}`] });
  const nc = await admin(t);
  const jsm = await jetstreamManager(nc);
  await jsm.streams.purge(logNames(cluster).invalStream);

  const b2 = await startMember(t, cluster, 'B', { initialAppliedSeq: bApplied });
  t.same(
    b2.gaps().map((g) => [g.from, g.to]),
    [[bApplied + 1, s5]],
    'start reported the purged range as a gap',
  );
  t.equal(b2.log.appliedSeq, s5, 'the cursor moved past the gap');
  t.equal(b2.log.stats.gaps, 1, 'stats.gaps');
  const s6 = await a.log.invalidate({ kind: 'all' });
  await waitFor('B2 applied the next invalidation', () => b2.log.appliedSeq === s6);
  t.same(
    b2.events.map((e) => e.type),
    ['gap', 'inval'],
    'the gap came before any later invalidation',
  );
  t.equal(a.log.stats.gaps, 0, 'A had applied everything: no gap for A');
});

t.test('gap - INVAL is bounded in bytes; a member behind what the bound kept reports the gap', async (t) => {
  const cluster = uniqueCluster();
  const invalMaxBytes = 64 * 1024;
  const a = await startMember(t, cluster, 'A', { invalMaxBytes });
  const b = await startMember(t, cluster, 'B', { invalMaxBytes });
  const s1 = await a.log.invalidate({ kind: 'url', keys: ['k0'] });
  await waitFor('B applied 1', () => b.log.appliedSeq === s1);
  await b.log.close();

  const nc = await admin(t);
  const jsm = await jetstreamManager(nc);
  const name = logNames(cluster).invalStream;
  t.equal((await jsm.streams.info(name)).config.max_bytes, invalMaxBytes, 'the stream has the byte bound');
  // A flood of long write invalidations: four times the bound.
  const long = 'x'.repeat(2_000);
  let last = 0;
  for (let i = 0; i < 128; i++) last = await a.log.invalidate({ kind: 'url', keys: [`http://h/${long}/${i}`] });
  const { state } = await jsm.streams.info(name);
  t.ok(state.bytes <= invalMaxBytes, `the stream holds at most its bound (${state.bytes} bytes)`);
  t.ok(state.first_seq > s1 + 1, `old invalidations were discarded (first seq ${state.first_seq})`);
  t.equal(state.last_seq, last, 'the newest are all kept');

  // B's cursor is below what the stream kept: never a silent loss, a gap (its cache is flushed).
  const b2 = await startMember(t, cluster, 'B', { invalMaxBytes, initialAppliedSeq: s1 });
  t.same(b2.gaps().map((g) => [g.from, g.to]), [[s1 + 1, state.first_seq - 1]], 'start reported the discarded range as a gap');
  await waitFor('B2 applied the rest', () => b2.log.appliedSeq === last);
  t.same(b2.invals().map((e) => e.seq), Array.from({ length: last - state.first_seq + 1 }, (_, i) => state.first_seq + i), 'then applied every kept invalidation');
  t.equal(a.log.stats.gaps, 0, 'A had applied everything: no gap for A');
});

t.test('gap - a running member notices that INVAL was deleted and recreated; acks restart with it', async (t) => {
  const cluster = uniqueCluster();
  const a = await startMember(t, cluster, 'A', { gapCheckIntervalMs: 250 });
  const b = await startMember(t, cluster, 'B', { gapCheckIntervalMs: 250 });
  await a.log.setState('active');
  await b.log.setState('active');
  let s = 0;
  for (let i = 0; i < 3; i++) s = await a.log.invalidate({ kind: 'url', keys: [`k${i}`] });
  await waitFor('B applied 3', () => b.log.appliedSeq === s);

  const nc = await admin(t);
  const jsm = await jetstreamManager(nc);
  const name = logNames(cluster).invalStream;
  const { config } = await jsm.streams.info(name);
  // A changed stream id over the same messages (what racing creators leave behind) is
  // not a reset: the message at appliedSeq still has the msgID we applied.
  await jsm.streams.update(name, { ...config, description: 'same stream, other id' });
  const checks = a.log.stats.gaps + b.log.stats.gaps;
  await new Promise((resolve) => setTimeout(resolve, 800));
  t.equal(a.log.stats.gaps + b.log.stats.gaps, checks, 'no gap for a new id over the same messages');
  t.equal(b.log.appliedSeq, s, 'cursor kept');

  await jsm.streams.delete(name);
  // As an operator would: same settings, no sidecache incarnation id. A member's periodic
  // check may have recreated the stream first; a reset it is either way.
  await recreate(jsm, { ...config, description: 'recreated by hand' });

  await waitFor('both noticed the reset', () => a.gaps().length > 0 && b.gaps().length > 0, 5_000);
  t.match(b.gaps()[0]!.reason, /was reset/, 'the gap names the reset');
  t.equal(b.log.appliedSeq, 0, 'the cursor follows the new stream');
  const seq = await a.log.invalidate({ kind: 'prefix', prefix: 'http://x/' });
  t.equal(seq, 1, 'the new stream numbers from 1');
  const acks = await a.log.waitApplied(seq, 5_000);
  t.same([...acks.acknowledged].sort(), ['A', 'B'], 'acks of the new stream count');
  t.same(b.invals().at(-1)?.seq, 1, 'B applied seq 1 of the new stream');
});

t.test('gap - an ack counted in a reset stream\'s numbering is no ack: whoever is listed as acknowledged applied the purge', async (t) => {
  // Found by the cluster checker (seed 1): INVAL recreated from a copy of its configuration
  // (same id), a purge got seq 7 of the new stream and was "acknowledged" by every member at
  // once, their applied seqs (106) being counted in the old stream's numbering; one went on
  // serving the purged body. Neither member here looks for resets on its own for a minute.
  const cluster = uniqueCluster();
  const slow = { gapCheckIntervalMs: 60_000 };
  const a = await startMember(t, cluster, 'A', slow);
  const b = await startMember(t, cluster, 'B', slow);
  await a.log.setState('active');
  await b.log.setState('active');
  let s = 0;
  for (let i = 0; i < 10; i++) s = await a.log.invalidate({ kind: 'url', keys: [`k${i}`] });
  t.same([...(await a.log.waitApplied(s, 10_000)).acknowledged].sort(), ['A', 'B'], 'both acknowledged seq 10');

  const nc = await admin(t);
  const jsm = await jetstreamManager(nc);
  const name = logNames(cluster).invalStream;
  const { config } = await jsm.streams.info(name);
  await jsm.streams.delete(name);
  await recreate(jsm, config);
  const seq = await a.log.invalidate({ kind: 'url', keys: ['k-new'] });
  t.ok(seq < s, `the new stream numbers afresh (seq ${seq})`);
  const acks = await a.log.waitApplied(seq, 2_000);
  const applied = (m: typeof a) => m.invals().some((e) => e.seq === seq && e.inval.kind === 'url' && e.inval.keys[0] === 'k-new');
  for (const m of [a, b]) {
    if (acks.acknowledged.includes(m.id)) t.ok(applied(m), `${m.id} is listed as acknowledged and applied the new invalidation`);
    else t.ok(acks.missing.includes(m.id), `${m.id} is listed as missing`);
  }
  t.ok(acks.acknowledged.includes('A'), 'the publisher noticed the reset by its seq and applied the new stream');
});

t.test('gap - concurrent publishes and gap checks are no reset: nothing is flushed while no message is lost', async (t) => {
  // Found by the cluster checker (an inval-flood: 1,500 writes through three sidecars): the
  // members took the stream for reset hundreds of times and flushed their caches each time.
  // A gap check compared the stream's last seq, as the server answered it, with the seq
  // applied when the answer came back, though messages arriving meanwhile had moved it on;
  // and a publish acknowledged after our consumer had applied it and later messages looked
  // like a seq the stream had numbered twice. Each false reset stamped the stream with a new
  // id, which set the other members checking too.
  const cluster = uniqueCluster();
  const busy = { gapCheckIntervalMs: 50 };
  const members = [await startMember(t, cluster, 'A', busy), await startMember(t, cluster, 'B', busy), await startMember(t, cluster, 'C', busy)];
  const count = 600;
  let next = 0;
  let last = 0;
  const worker = async (w: number) => {
    while (next < count) {
      const i = next++;
      last = Math.max(last, await members[(i + w) % members.length]!.log.invalidate({ kind: 'url', keys: [`k${i}`] }));
    }
  };
  await Promise.all(Array.from({ length: 16 }, (_, w) => worker(w)));
  await waitFor(`every member applied seq ${last}`, () => members.every((m) => m.log.appliedSeq >= last), 20_000);
  for (const m of members) {
    t.same(m.gaps(), [], `${m.id} saw no gap`);
    t.equal(m.invals().length, count, `${m.id} applied each invalidation once`);
  }
});
