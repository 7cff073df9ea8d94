// Joining members on real processes: a member that joins applies the retained invalidations
// before it serves what it replayed, trusts no fill older than the retained log (a purge-all's
// ban included), and counts replayed keys as handoff, not as live replica fills.
import t from 'tap';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { clusterEnv, clusterInfo, uniqueCluster } from '../../support/cluster.js';
import { startNats } from '../../support/nats-server.js';
import { startOrigin } from '../../support/origin.js';
import { startTcpGate } from '../../support/tcp-gate.js';
import { purge, startSidecar, waitFor, type SidecarProcess } from '../../support/sidecar.js';
import { encodeInvalidation } from '../../src/log/codec.js';
import { logNames } from '../../src/log/subjects.js';

const nats = await startNats({ nodes: 1 });
t.teardown(() => nats.stop());
const natsPort = Number(new URL(nats.urls[0]!).port);

let version = 1;
const origin = await startOrigin({
  '/j/*': (req, res) => {
    res.writeHead(200, { 'cache-control': 'public, max-age=300', 'content-type': 'text/plain' });
    res.end(`${req.url} v${version}`);
  },
});
t.teardown(() => origin.close());

const nc = await connect({ servers: [...nats.urls] });
t.teardown(() => nc.close());
const js = jetstream(nc);
const jsm: JetStreamManager = await jetstreamManager(nc);

async function bodyAt(sc: SidecarProcess, path: string): Promise<string> {
  return (await fetch(sc.url + path)).text();
}

async function metrics(sc: SidecarProcess): Promise<string> {
  return (await fetch(`${sc.adminUrl}/metrics`)).text();
}

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

async function member(cluster: string, natsUrl = nats.urls[0]!): Promise<SidecarProcess> {
  const sc = await startSidecar({ env: clusterEnv({ natsUrls: [natsUrl], upstream: origin.url }, cluster), timeoutMs: 90_000 });
  t.teardown(() => sc.kill());
  return sc;
}

async function fillsHeld(cluster: string): Promise<number> {
  return (await jsm.streams.info(logNames(cluster).fillsStream)).state.messages;
}

t.test('join - a joining member applies the retained invalidations before it serves replayed fills', async (t) => {
  const cluster = uniqueCluster('j');
  const names = logNames(cluster);
  const a = await member(cluster);
  const v1 = version;
  t.equal(await bodyAt(a, '/j/d'), `/j/d v${v1}`);
  t.equal(await bodyAt(a, '/j/keep'), `/j/keep v${v1}`);
  await waitFor(async () => (await fillsHeld(cluster)) === 2, 10_000, 'both fills in the log');
  // A long history of invalidations of other keys, then a write that invalidates /j/d: a
  // member behind a slow link needs a while to apply them all.
  const fillers = 20_000;
  for (let i = 0; i < fillers; i += 500) {
    await Promise.all(Array.from({ length: Math.min(500, fillers - i) }, (_, k) =>
      js.publish(names.invalSubject, encodeInvalidation({ kind: 'url', keys: [`http://filler.invalid/${i + k}`] }))));
  }
  version++;
  const post = await fetch(`${a.url}/j/d`, { method: 'POST', body: 'x' });
  t.equal(post.status, 200);
  await post.text();
  await waitFor(async () => (await clusterInfo(a)).appliedSeq >= fillers + 1, 20_000, 'the write invalidation in the log');

  const gate = await startTcpGate(natsPort);
  t.teardown(() => gate.close());
  gate.lag(15);
  const joined = await member(cluster, gate.url('nats'));
  // At once, as a client would after readiness: the replayed /j/d predates the write. (The
  // metrics first: the GET makes the owner publish a live fill.)
  const m = await metrics(joined);
  t.equal(await bodyAt(joined, '/j/d'), `/j/d v${version}`, 'the joined member does not serve the body the write invalidated');
  const applied = (await clusterInfo(joined)).appliedSeq;
  t.ok(applied >= fillers + 1, `it had applied the write invalidation (applied seq ${applied})`);
  const before = origin.count('/j/keep');
  t.equal(await bodyAt(joined, '/j/keep'), `/j/keep v${v1}`, 'a replayed entry nobody invalidated is served');
  t.equal(origin.count('/j/keep'), before, 'from the replay, without an origin request');
  t.equal(metric(m, 'sidecache_handoff_keys_replayed_total'), 1, 'the replayed key counts as handoff');
  t.equal(metric(m, 'sidecache_replica_fills_applied_total'), 0, 'and not as a live replica fill');
});

t.test('join - a replayed fill older than the retained INVAL log is refused', async (t) => {
  const cluster = uniqueCluster('j');
  const names = logNames(cluster);
  const a = await member(cluster);
  t.equal(await bodyAt(a, '/j/e'), `/j/e v${version}`);
  await waitFor(async () => (await fillsHeld(cluster)) === 1, 10_000, 'the fill in the log');
  const fill = await jsm.streams.getMessage(names.fillsStream, { seq: (await jsm.streams.info(names.fillsStream)).state.last_seq });
  t.ok(fill !== null, 'read the fill');
  version++;
  const post = await fetch(`${a.url}/j/e`, { method: 'POST', body: 'x' });
  t.equal(post.status, 200);
  await post.text();
  await waitFor(async () => (await clusterInfo(a)).appliedSeq >= 1, 10_000, 'the write invalidation applied');
  // The primary tombstones what the write removed; a member that had not seen the write yet
  // publishes its copy of the old fill after that.
  await waitFor(async () => (await jsm.streams.getMessage(names.fillsStream, { last_by_subj: fill!.subject }))!.seq > fill!.seq,
    10_000, 'the tombstone of the written key');
  await js.publish(fill!.subject, fill!.data);
  await waitFor(async () => metric(await metrics(a), 'sidecache_fills_rejected_total') >= 1, 10_000, 'the live member refusing it');
  // Retention takes the write's invalidation out of INVAL (as max_age would): nothing left in
  // the log says the fill of /j/e is stale.
  const last = (await jsm.streams.info(names.invalStream)).state.last_seq;
  await jsm.streams.purge(names.invalStream, { seq: last + 1 });
  t.equal((await jsm.streams.info(names.invalStream)).state.first_seq, last + 1, 'INVAL starts after the write now');
  t.equal(await fillsHeld(cluster), 1, 'the old fill is still in FILLS');
  const joined = await member(cluster);
  t.equal(await bodyAt(joined, '/j/e'), `/j/e v${version}`, 'the joined member does not serve the unprovable fill');
  t.ok(metric(await metrics(joined), 'sidecache_fills_rejected_total') >= 1, 'it refused the fill');
});

t.test('join - a fill that lands in FILLS after a purge-all, with a fence before the ban, is refused', async (t) => {
  const cluster = uniqueCluster('j');
  const names = logNames(cluster);
  const a = await member(cluster);
  t.equal(await bodyAt(a, '/j/ban'), `/j/ban v${version}`);
  await waitFor(async () => (await fillsHeld(cluster)) === 1, 10_000, 'the fill in the log');
  const fill = await jsm.streams.getMessage(names.fillsStream, { seq: (await jsm.streams.info(names.fillsStream)).state.last_seq });
  t.ok(fill !== null, 'read the fill');
  version++;
  const r = await purge(a, { all: true });
  t.equal(r.status, 200);
  await waitFor(async () => (await fillsHeld(cluster)) === 0, 10_000, 'FILLS emptied by the purge-all');
  // An owner that had not applied the ban yet publishes its fill after the purge of FILLS.
  await js.publish(fill!.subject, fill!.data);
  await waitFor(async () => metric(await metrics(a), 'sidecache_fills_rejected_total') >= 1, 10_000, 'the live member refusing it');
  const joined = await member(cluster);
  t.equal(await bodyAt(joined, '/j/ban'), `/j/ban v${version}`, 'the joined member does not serve the banned body');
  t.ok(metric(await metrics(joined), 'sidecache_fills_rejected_total') >= 1, 'it refused the replayed fill');
  t.equal(await bodyAt(a, '/j/ban'), `/j/ban v${version}`, 'nor does the member that purged');
});

t.test('join - a tag purge larger than the tombstone bound leaves nothing a joiner would serve', async (t) => {
  // The primary's tombstones for a purge of 600 entries pass SIDECACHE_FILL_MAX_IN_FLIGHT (256)
  // and most are dropped: FILLS keeps the purged fills. A joiner applies the tag purge itself
  // before it replays, so it refuses them: tombstones only keep FILLS small.
  const cluster = uniqueCluster('j');
  origin.route('/tagged/*', (req, res) => {
    res.writeHead(200, { 'cache-control': 'public, max-age=300', 'surrogate-key': 'bulk', 'content-type': 'text/plain' });
    res.end(`${req.url} v${version}`);
  });
  const a = await member(cluster);
  const paths = Array.from({ length: 600 }, (_, k) => `/tagged/${k}`);
  for (let i = 0; i < paths.length; i += 16) {
    await Promise.all(paths.slice(i, i + 16).map(async (p) => t.equal(await bodyAt(a, p), `${p} v${version}`)));
  }
  await waitFor(async () => (await fillsHeld(cluster)) === paths.length, 20_000, 'every fill in the log');
  version++;
  const r = await purge(a, { tags: ['bulk'] });
  t.equal(r.status, 200);
  const dropped = ((await clusterInfo(a)) as unknown as { logStats: { fillsDropped: number } }).logStats.fillsDropped;
  t.ok(dropped >= 300, `the primary dropped tombstones past the bound (${dropped})`);
  t.equal(await fillsHeld(cluster), paths.length, 'FILLS still holds a message per key, most of them the purged fills');
  const joined = await member(cluster);
  let old = 0;
  for (let i = 0; i < paths.length; i += 16) {
    const got = await Promise.all(paths.slice(i, i + 16).map((p) => bodyAt(joined, p)));
    old += got.filter((b, k) => b !== `${paths[i + k]} v${version}`).length;
  }
  t.equal(old, 0, 'the joiner serves none of the purged bodies');
  t.ok(metric(await metrics(joined), 'sidecache_fills_rejected_total') >= 300, 'it refused the purged fills it replayed');
});
