// Fences on real processes (DESIGN invariants 1 and 2): a copy is fenced with the seq its
// source had applied, in the numbering of the INVAL stream it came from. A hot copy from an
// owner still behind on INVAL, and a fill from before a stream reset, must not outlive a purge
// that every member acknowledged.
import t from 'tap';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { clusterEnv, clusterInfo, uniqueCluster, waitForRing } from '../helpers/cluster.js';
import { startNats } from '../helpers/nats-server.js';
import { startOrigin } from '../helpers/origin.js';
import { startTcpGate } from '../helpers/tcp-gate.js';
import { purge, startSidecar, waitFor, type SidecarProcess } from '../helpers/sidecar.js';

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

t.test('read-your-purge - a hot copy from an owner still behind on INVAL does not outlive the purge', async (t) => {
  // One owner per key (R=1). The owner reaches NATS through a relay the test holds, so the
  // purge reaches the other sidecar first; heartbeats outlast the hold, so nobody is dropped
  // and the purge waits for the owner's acknowledgement.
  const gate = await startTcpGate(Number(new URL(nats.urls[0]!).port));
  t.teardown(() => gate.close());
  const cluster = uniqueCluster();
  const env = { SIDECACHE_REPLICAS: '1', SIDECACHE_HEARTBEAT_TTL: '30s', SIDECACHE_PURGE_TIMEOUT: '60s' };
  const owner = await startSidecar({ env: clusterEnv({ natsUrls: [gate.url('nats')], upstream: origin.url, env }, cluster) });
  const other = await startSidecar({ env: clusterEnv({ natsUrls: nats.urls, upstream: origin.url, env }, cluster) });
  t.teardown(() => Promise.all([owner.kill(), other.kill()]));
  await waitForRing([owner, other], 2);

  version++;
  const old = version;
  // A path `owner` owns: asked there, it is fetched there, not forwarded to `other`.
  let path = '';
  for (let k = 0; path === '' && k < 64; k++) {
    const r = await fetch(`${owner.url}/f/hot/${k}`);
    await r.text();
    if (!r.headers.get('cache-status')!.includes(`node="${other.id}"`)) path = `/f/hot/${k}`;
  }
  t.not(path, '', `found a path owned by ${owner.id}`);

  gate.hold();
  t.teardown(() => gate.release());
  version++;
  const before = (await clusterInfo(other)).appliedSeq;
  const purged = purge(other, { url: path });
  await waitFor(async () => (await clusterInfo(other)).appliedSeq > before, 10_000, `${other.id} to apply the purge`);
  // In flight during the purge: `other` has applied it, the owner has not and still serves
  // the old body. That answer may go to this client; it must not be kept.
  t.equal(await body(other, path), `${path} v${old}`, 'a read during the purge got the owner\'s old body');
  gate.release();
  const r = await purged;
  t.equal(r.status, 200);
  t.same([...r.json.acknowledged].sort(), [owner.id, other.id].sort(), 'every member acknowledged');
  t.same(r.json.missing, []);
  t.equal(await body(other, path), `${path} v${version}`, `${other.id} serves the new body after the purge returned`);
  t.equal(await body(owner, path), `${path} v${version}`, `${owner.id} serves the new body`);
  t.ok(await metric(other, 'sidecache_fills_rejected_total') >= 1, 'the hot copy was refused by its fence');
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
