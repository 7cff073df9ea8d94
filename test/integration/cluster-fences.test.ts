// Fences on real processes (DESIGN invariants 1 and 2): a copy is fenced with the seq its
// source had applied, in the numbering of the INVAL stream it came from. A hot copy from an
// owner still behind on INVAL, and a fill from before a stream reset, must not outlive a purge
// that every member acknowledged.
import t, { type Test } from 'tap';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { clusterEnv, clusterInfo, uniqueCluster, waitForRing } from '../../support/cluster.js';
import { startNats } from '../../support/nats-server.js';
import { startOrigin } from '../../support/origin.js';
import { startTcpGate, type TcpGate } from '../../support/tcp-gate.js';
import { purge, startSidecar, waitFor, type SidecarProcess } from '../../support/sidecar.js';

const nats = await startNats({ nodes: 1 });
t.teardown(() => nats.stop());

let version = 1;
const origin = await startOrigin({
  '/f/*': (req, res) => {
    res.writeHead(200, { 'cache-control': 'public, max-age=300', etag: `"${version}"`, 'content-type': 'text/plain' });
    res.end(`${req.url} v${version}`);
  },
});
t.teardown(() => origin.close());

async function body(sc: SidecarProcess, path: string): Promise<string> {
  return (await fetch(sc.url + path)).text();
}

async function metric(sc: SidecarProcess, name: string): Promise<number> {
  const text = await (await fetch(`${sc.adminUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.slice(name.length + 1));
}

/** Two sidecars, one key owner each (R=1), the first reaching NATS through a relay the test
 *  holds; heartbeats outlast a hold, so nobody is dropped from the view. */
async function gatedPair(t: Test, purgeTimeout: string): Promise<{ gate: TcpGate; gated: SidecarProcess; direct: SidecarProcess }> {
  const gate = await startTcpGate(Number(new URL(nats.urls[0]!).port));
  t.teardown(() => gate.close());
  const cluster = uniqueCluster();
  const env = { SIDECACHE_REPLICAS: '1', SIDECACHE_HEARTBEAT_TTL: '30s', SIDECACHE_PURGE_TIMEOUT: purgeTimeout };
  const gated = await startSidecar({ env: clusterEnv({ natsUrls: [gate.url('nats')], upstream: origin.url, env }, cluster) });
  const direct = await startSidecar({ env: clusterEnv({ natsUrls: nats.urls, upstream: origin.url, env }, cluster) });
  t.teardown(() => Promise.all([gated.kill(), direct.kill()]));
  await waitForRing([gated, direct], 2);
  return { gate, gated, direct };
}

/** A path under `prefix` that `owner` owns: asked at `at`, the answer names `owner`'s node
 *  (or, asked at the owner itself, not the other's). */
async function pathOwnedBy(owner: SidecarProcess, other: SidecarProcess, at: SidecarProcess, prefix: string): Promise<string> {
  for (let k = 0; k < 64; k++) {
    const r = await fetch(`${at.url}${prefix}${k}`);
    await r.text();
    const status = r.headers.get('cache-status')!;
    if (at === owner ? !status.includes(`node="${other.id}"`) : status.includes(`node="${owner.id}"`)) return `${prefix}${k}`;
  }
  return '';
}

t.test('read-your-purge - a hot copy from an owner still behind on INVAL does not outlive the purge', async (t) => {
  // The owner reaches NATS through the held relay, so the purge reaches the other sidecar
  // first, and waits for the owner's acknowledgement.
  const { gate, gated: owner, direct: other } = await gatedPair(t, '60s');
  version++;
  const path = await pathOwnedBy(owner, other, owner, '/f/hot/');
  t.not(path, '', `found a path owned by ${owner.id}`);

  gate.hold();
  t.teardown(() => gate.release());
  version++;
  const before = (await clusterInfo(other)).appliedSeq;
  const purged = purge(other, { url: path });
  await waitFor(async () => (await clusterInfo(other)).appliedSeq > before, 10_000, `${other.id} to apply the purge`);
  // During the purge: `other` has applied it, the owner has not and still serves the old body,
  // fenced before the purge. `other` neither keeps nor serves that copy: it asks the origin.
  t.equal(await body(other, path), `${path} v${version}`, 'a read during the purge, at the member that applied it, gets the new body');
  t.ok(await metric(other, 'sidecache_fences_untrusted_total{source="peer",reason="predates-purge"}') >= 1, 'the owner\'s old copy was refused by its fence');
  gate.release();
  const r = await purged;
  t.equal(r.status, 200);
  t.same([...r.json.acknowledged].sort(), [owner.id, other.id].sort(), 'every member acknowledged');
  t.same(r.json.missing, []);
  t.equal(await body(other, path), `${path} v${version}`, `${other.id} serves the new body after the purge returned`);
  t.equal(await body(owner, path), `${path} v${version}`, `${owner.id} serves the new body`);
});

t.test('read-your-purge - an acknowledging member does not pass on the old copy of an owner the purge listed as missing', async (t) => {
  // The owner's link to NATS is held past the purge's timeout: the purge returns with the
  // owner missing, and the owner, still in the view (heartbeats outlast the hold), still owns
  // the key. A read at the member that acknowledged must not get what the purge removed.
  const { gate, gated: owner, direct: other } = await gatedPair(t, '2s');
  version++;
  const old = version;
  const path = await pathOwnedBy(owner, other, owner, '/f/missing/');
  t.not(path, '', `found a path owned by ${owner.id}`);
  t.equal(await body(other, path), `${path} v${old}`, `${other.id} reads the owner's copy`);

  gate.hold();
  t.teardown(() => gate.release());
  version++;
  const r = await purge(other, { url: path });
  t.equal(r.status, 200);
  t.same(r.json.acknowledged, [other.id], `only ${other.id} acknowledged`);
  t.same(r.json.missing, [owner.id], `${owner.id} is listed as missing`);
  t.equal(await body(other, path), `${path} v${version}`, `${other.id}, which acknowledged, serves the new body`);
  t.equal(await body(other, path), `${path} v${version}`, 'and again');
  gate.release();
});

t.test('no resurrection - an owner\'s 304 after a hard purge does not keep, at a member still behind on INVAL, a body fetched before it', async (t) => {
  // The origin keeps one ETag for every fetch (as an origin whose validators do not change
  // when it is purged by hand), so the owner, which applied the purge and fetched again,
  // confirms the lagging member's old copy with a 304 fenced after the purge. That 304 says
  // nothing about where the member's body came from: the purge must still remove it.
  const fetched = new Map<string, number>();
  origin.route('/e/*', (req, res) => {
    const url = req.url!;
    const n = (fetched.get(url) ?? 0) + 1;
    fetched.set(url, n);
    // The first copy goes stale at once; later ones stay fresh for the rest of the test.
    res.writeHead(200, { 'cache-control': `public, max-age=${n === 1 ? 1 : 300}`, etag: '"same"', 'content-type': 'text/plain' });
    res.end(`${url} f=${n}`);
  });
  const { gate, gated: lagging, direct: owner } = await gatedPair(t, '60s');
  // A path `owner` owns, read at `lagging`: it keeps a hot copy of fetch 1.
  const path = await pathOwnedBy(owner, lagging, lagging, '/e/');
  t.not(path, '', `found a path owned by ${owner.id}`);
  t.equal(await body(lagging, path), `${path} f=1`, 'the hot copy serves');
  await new Promise((r) => setTimeout(r, 1_500));

  gate.hold();
  t.teardown(() => gate.release());
  const before = (await clusterInfo(owner)).appliedSeq;
  const purged = purge(owner, { url: path });
  await waitFor(async () => (await clusterInfo(owner)).appliedSeq > before, 10_000, `${owner.id} to apply the purge`);
  // During the purge: the owner fetches anew (fetch 2, same ETag); `lagging` revalidates its
  // stale copy at the owner, which answers 304, fenced after the purge. This client, whose
  // read began before the purge returned, may get the old body.
  t.equal(await body(owner, path), `${path} f=2`, `${owner.id} fetched again after the purge`);
  const during = await fetch(lagging.url + path);
  t.equal(await during.text(), `${path} f=1`, 'a read during the purge got the old body, confirmed by a 304');
  t.equal(fetched.get(path), 2, 'no other fetch');
  gate.release();
  const r = await purged;
  t.equal(r.status, 200);
  t.same([...r.json.acknowledged].sort(), [owner.id, lagging.id].sort(), 'every member acknowledged');
  t.equal(await body(lagging, path), `${path} f=2`, `${lagging.id} no longer serves the body fetched before the purge`);
  t.equal(await body(owner, path), `${path} f=2`, `${owner.id} serves the body fetched after it`);
  t.equal(fetched.get(path), 2, 'fetched once after the purge, for both');
});

for (const [how, keepId] of [['with a description of its own', false], ['from a copy of its config, id and all', true]] as const) t.test(
  `no resurrection - a fill fenced before an INVAL stream reset does not survive a purge after it (recreated ${how})`, async (t) => {
  const cluster = uniqueCluster();
  const env = clusterEnv({ natsUrls: nats.urls, upstream: origin.url }, cluster);
  const a = await startSidecar({ env });
  t.teardown(() => a.kill());
  await waitForRing([a], 1);
  // Fences in the old stream's numbering above what the new stream will reach.
  for (let i = 0; i < 5; i++) t.equal((await purge(a, { url: `/f/other/${i}` })).status, 200);
  version++;
  const old = version;
  const path = '/f/reset/a';
  t.equal(await body(a, path), `${path} v${old}`);
  await waitFor(async () => await metric(a, 'sidecache_fills_published') >= 1, 10_000, 'the fill to be published');

  // An operator deletes INVAL and creates it again: same settings, numbering from 1.
  const nc = await connect({ servers: nats.urls as string[] });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  const names: string[] = [];
  for await (const s of jsm.streams.list()) if (s.config.name.includes(cluster) && s.config.name.endsWith('INVAL')) names.push(s.config.name);
  t.equal(names.length, 1, 'found the INVAL stream of this cluster');
  const { config } = await jsm.streams.info(names[0]!);
  await jsm.streams.delete(names[0]!);
  try {
    await jsm.streams.add(keepId ? config : { ...config, description: 'recreated by hand' });
  } catch (err) {
    // The sidecar's periodic check may have recreated it first: a reset either way.
    t.match((err as Error).message, /already in use/, 'only the sidecar got there first');
  }
  await waitFor(async () => await metric(a, 'sidecache_log_gaps_total') >= 1, 20_000, `${a.id} to notice the reset`);

  // A member joining now replays FILLS, which still holds the fill fenced in the old numbering.
  const b = await startSidecar({ env });
  t.teardown(() => b.kill());
  await waitForRing([a, b], 2);
  t.ok((await clusterInfo(b)).replayedKeys >= 1, `${b.id} replayed the fill from before the reset`);
  version++;
  const r = await purge(a, { url: path });
  t.equal(r.status, 200);
  t.equal(r.json.seq, 1, 'the purge is seq 1 of the new stream');
  t.same([...r.json.acknowledged].sort(), [a.id, b.id].sort(), 'every member acknowledged');
  t.same(r.json.missing, []);
  for (const sc of [b, a]) t.equal(await body(sc, path), `${path} v${version}`, `${sc.id} serves the new body`);
  t.ok(await metric(b, 'sidecache_fences_untrusted_total{source="fill",reason="incarnation"}') >= 1, 'counted as a fence of another stream');
});
