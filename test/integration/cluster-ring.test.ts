// The ring and peer forwarding on real processes: 3 sidecars, a 3-node NATS JetStream
// cluster, a counting origin. One NATS cluster for the file, a unique cluster name per test.
import { request } from 'node:http';
import t from 'tap';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { logNames } from '../../src/log/subjects.js';
import { signRequest } from '../../src/cluster/peer-auth.js';
import { CLUSTER_SECRET, clusterEnv, clusterInfo, startCluster, uniqueCluster } from '../../support/cluster.js';
import { startNats } from '../../support/nats-server.js';
import { startOrigin } from '../../support/origin.js';
import { runToExit, startSidecar } from '../../support/sidecar.js';

const nats = await startNats({ nodes: 3 });
t.teardown(() => nats.stop());
const origin = await startOrigin({
  '/slow/*': (req, res, n) => setTimeout(() => {
    res.writeHead(200, { 'cache-control': 'public, max-age=60', 'content-type': 'text/plain' });
    res.end(`${req.url} #${n}`);
  }, 400),
});
t.teardown(() => origin.close());

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('ring - 200 keys requested at random through 3 sidecars cause exactly 200 origin requests', async (t) => {
  const { sidecars } = await startCluster(3, { natsUrls: nats.urls, upstream: origin.url });
  t.teardown(() => Promise.all(sidecars.map((s) => s.stop())));
  const before = origin.count();
  const plan: Array<[number, number]> = [];
  for (let k = 0; k < 200; k++) for (let i = 0; i < 3; i++) plan.push([k, i]);
  // A fixed shuffle: every key at every sidecar, in a mixed order.
  let seed = 42;
  for (let i = plan.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const j = seed % (i + 1);
    [plan[i], plan[j]] = [plan[j]!, plan[i]!];
  }
  for (let i = 0; i < plan.length; i += 20) {
    const batch = plan.slice(i, i + 20);
    const res = await Promise.all(batch.map(([k, s]) => get(`${sidecars[s]!.url}/ring/${k}`)));
    for (const [j, r] of res.entries()) t.equal(r.body.startsWith(`body of /ring/${batch[j]![0]} #1`), true, 'every sidecar serves the one fetched body');
  }
  t.equal(origin.count() - before, 200, 'one origin request per key');
});

t.test('ring - concurrent misses for one key at every sidecar cause one origin request', async (t) => {
  const { sidecars } = await startCluster(3, { natsUrls: nats.urls, upstream: origin.url });
  t.teardown(() => Promise.all(sidecars.map((s) => s.stop())));
  const res = await Promise.all(Array.from({ length: 30 }, (_, i) => get(`${sidecars[i % 3]!.url}/slow/one`)));
  t.same(new Set(res.map((r) => r.body)), new Set(['/slow/one #1']));
  t.equal(origin.count('/slow/one'), 1);
});

t.test('ring - Cache-Status names each sidecar that handled the request, with the owner and epoch', async (t) => {
  const { sidecars } = await startCluster(3, { natsUrls: nats.urls, upstream: origin.url });
  t.teardown(() => Promise.all(sidecars.map((s) => s.stop())));
  const info = await clusterInfo(sidecars[0]!);
  const ids = sidecars.map((s) => s.id);
  // Find a key whose primary is not sidecar 0: its answer at sidecar 0 has two entries.
  let found = false;
  for (let k = 0; k < 50 && !found; k++) {
    const r = await get(`${sidecars[0]!.url}/status/${k}`);
    const cs = String(r.headers['cache-status']);
    const entries = cs.split(', sidecache');
    if (entries.length === 2) {
      found = true;
      const owner = /node="([^"]+)"/.exec(entries[0]!)![1]!;
      t.ok(ids.includes(owner) && owner !== sidecars[0]!.id, 'first entry is the owner');
      t.match(entries[0], new RegExp(`epoch=${info.ringEpoch}`));
      t.match(entries[1], new RegExp(`node="${sidecars[0]!.id}"`), 'last entry is the sidecar the client asked');
      const again = await get(`${sidecars[0]!.url}/status/${k}`);
      t.match(String(again.headers['cache-status']), /^sidecache; hit/, 'the non-owner keeps a hot copy');
    }
  }
  t.ok(found, 'some key was forwarded to its owner');
});

t.test('ring - every sidecar agrees on one epoch and member list; heartbeats do not change it', async (t) => {
  const { sidecars } = await startCluster(3, { natsUrls: nats.urls, upstream: origin.url });
  t.teardown(() => Promise.all(sidecars.map((s) => s.stop())));
  const first = await Promise.all(sidecars.map(clusterInfo));
  t.equal(new Set(first.map((i) => i.ringEpoch)).size, 1);
  t.same(first[0]!.ring, [...sidecars.map((s) => s.id)].sort());
  // Several heartbeat intervals later the epoch is the same.
  await new Promise((r) => setTimeout(r, 1500));
  const later = await Promise.all(sidecars.map(clusterInfo));
  t.same(later.map((i) => i.ringEpoch), first.map((i) => i.ringEpoch));
  const owned = later.reduce((n, i) => n + i.partitionsOwned, 0);
  t.equal(owned, 256 * 2, 'every partition has a primary and a replica');
});

t.test('peer port - unsigned, forged, replayed and other-cluster requests are refused', async (t) => {
  const { cluster, sidecars } = await startCluster(1, { natsUrls: nats.urls, upstream: origin.url });
  t.teardown(() => Promise.all(sidecars.map((s) => s.stop())));
  const peer = sidecars[0]!.peerUrl;
  const before = origin.count();
  t.equal((await get(`${peer}/secret`)).status, 401, 'unsigned');
  const good = signRequest(CLUSTER_SECRET, { cluster, from: 'x', epoch: 1 }, 'GET', '/secret');
  t.equal((await get(`${peer}/secret`, { ...good, 'x-sidecache-signature': good['x-sidecache-signature']!.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) })).status, 401, 'forged');
  t.equal((await get(`${peer}/other`, good)).status, 401, 'signature over another target');
  t.equal((await get(`${peer}/secret`, good)).status, 200, 'a signed request is served');
  t.equal((await get(`${peer}/secret`, good)).status, 401, 'the same request replayed');
  const wrongSecret = signRequest('another-secret-0123456789', { cluster, from: 'x', epoch: 1 }, 'GET', '/secret');
  t.equal((await get(`${peer}/secret`, wrongSecret)).status, 401, 'signed with another secret');
  const other = signRequest(CLUSTER_SECRET, { cluster: 'othercluster', from: 'x', epoch: 1 }, 'GET', '/secret');
  t.equal((await get(`${peer}/secret`, other)).status, 403, 'another cluster');
  const old = signRequest(CLUSTER_SECRET, { cluster, from: 'x', epoch: 1 }, 'GET', '/secret', Date.now() - 120_000);
  t.equal((await get(`${peer}/secret`, old)).status, 401, 'an old timestamp');
  t.equal(origin.count() - before, 1, 'only the signed request reached the origin');
});

// Members computing owners another way would route, replicate and replay against everyone else.
for (const [what, env, message] of [
  ['partition count', { SIDECACHE_PARTITIONS: '128' }, /partitions mismatch: cluster has 256, this sidecar 128/],
  ['placement', { SIDECACHE_PLACEMENT: 'range' }, /placement mismatch: cluster has hash, this sidecar range/],
] as const) {
  t.test(`start-up - a sidecar with another ${what} refuses to join`, async (t) => {
    const cluster = uniqueCluster();
    const sc = await startSidecar({ env: clusterEnv({ natsUrls: nats.urls, upstream: origin.url }, cluster) });
    t.teardown(() => sc.stop());
    const r = await runToExit({ ...clusterEnv({ natsUrls: nats.urls, upstream: origin.url }, cluster), ...env, SIDECACHE_LISTEN: '127.0.0.1:0', SIDECACHE_ADMIN_LISTEN: '127.0.0.1:0', SIDECACHE_PEER_LISTEN: '127.0.0.1:0', SIDECACHE_NODE_ID: 'odd' }, [], 30_000);
    t.not(r.code, 0);
    t.match(r.output, message);
    const members = (await (await fetch(`${sc.adminUrl}/cluster`)).json() as { view: { members: { id: string }[] } }).view.members.map((m) => m.id);
    t.same(members, [sc.id], 'the view still lists only the first member');
  });
}

t.test('start-up - cluster mode without a secret stops with a message naming the variable', async (t) => {
  const r = await runToExit({ SIDECACHE_UPSTREAM: origin.url, SIDECACHE_NATS_URL: nats.urls[0]! });
  t.equal(r.code, 2);
  t.match(r.output, /SIDECACHE_CLUSTER_SECRET/);
});

t.test('start-up - an existing stream with settings sidecache relies on changed is refused, naming them', async (t) => {
  const cluster = uniqueCluster();
  const nc = await connect({ servers: nats.urls as string[] });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  const names = logNames(cluster);
  // What an operator's hand-made stream could look like: several messages per key kept.
  await jsm.streams.add({ name: names.fillsStream, subjects: [names.fillsWildcard], max_msgs_per_subject: 5, num_replicas: 1 });
  const r = await runToExit({ ...clusterEnv({ natsUrls: nats.urls, upstream: origin.url }, cluster), SIDECACHE_LISTEN: '127.0.0.1:0', SIDECACHE_ADMIN_LISTEN: '127.0.0.1:0', SIDECACHE_PEER_LISTEN: '127.0.0.1:0', SIDECACHE_NODE_ID: 'strict' }, [], 60_000);
  t.not(r.code, 0, 'the sidecar does not start');
  t.match(r.output, /incompatible config/);
  t.match(r.output, /max_msgs_per_subject: expected 1, got 5/);
});
