// Nothing private leaves in the log (DESIGN invariant 9): a fill published for a Vary
// response carries no client credential and no peer signature, read back from a real NATS.
import t from 'tap';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { signRequest } from '../../src/cluster/peer-auth.js';
import { logNames } from '../../src/log/subjects.js';
import { CLUSTER_SECRET, clusterInfo, startCluster } from '../../support/cluster.js';
import { startNats } from '../../support/nats-server.js';
import { startOrigin } from '../../support/origin.js';
import { httpCall } from '../helpers/raw-http.js';
import { waitFor } from '../../support/sidecar.js';

const nats = await startNats({ nodes: 1 });
t.teardown(() => nats.stop());
const origin = await startOrigin({
  '/private/*': (req, res, n) => {
    res.writeHead(200, { vary: 'Cookie, X-Api-Key, Accept-Language', 'cache-control': 'public, max-age=60' });
    res.end(`${req.url} #${n}`);
  },
});
t.teardown(() => origin.close());

t.test('fills - a Vary response\'s fill holds no cookie, API key, Authorization or peer signature', async (t) => {
  const { cluster, sidecars } = await startCluster(1, { natsUrls: nats.urls, upstream: origin.url });
  t.teardown(() => Promise.all(sidecars.map((s) => s.stop())));
  const sc = sidecars[0]!;
  // With `public`, the answer to a request with Authorization is stored and published (RFC 9111 §3.5).
  const client = { cookie: 'sid=COOKIE-SECRET-1', 'x-api-key': 'APIKEY-SECRET-2', 'accept-language': 'de', authorization: 'Bearer AUTH-SECRET-3' };
  const direct = await httpCall(`${sc.url}/private/direct`, { headers: client });
  t.equal(direct.status, 200);
  // A request a peer forwarded (the only member owns every key, so it stores and publishes).
  const signed = signRequest(CLUSTER_SECRET, { cluster, from: 'member-elsewhere', epoch: 1 }, 'GET', '/private/forwarded');
  const forwarded = await httpCall(`${sc.peerUrl}/private/forwarded`, { headers: { ...client, ...signed } });
  t.equal(forwarded.status, 200);

  const nc = await connect({ servers: [...nats.urls] });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  const stream = logNames(cluster).fillsStream;
  await waitFor(async () => (await jsm.streams.info(stream)).state.messages >= 2, 10_000, 'both fills in FILLS');
  const { first_seq: first, last_seq: last } = (await jsm.streams.info(stream)).state;
  const payloads: string[] = [];
  for (let seq = first; seq <= last; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
    if (m !== null) payloads.push(Buffer.from(m.data).toString('latin1'));
  }
  t.equal(payloads.length, 2);
  for (const p of payloads) {
    for (const secret of ['COOKIE-SECRET-1', 'APIKEY-SECRET-2', 'AUTH-SECRET-3', signed['x-sidecache-signature']!, signed['x-sidecache-nonce']!, 'member-elsewhere', 'x-sidecache']) {
      t.equal(p.includes(secret), false, `no ${secret} in a fill`);
    }
    t.equal(p.includes('"de"'), true, 'the Accept-Language variant is published as sent');
  }
  // The keyed values still select the variant: the same client hits, another cookie misses.
  const again = await httpCall(`${sc.url}/private/direct`, { headers: client });
  t.match(String(again.headers['cache-status']), /hit/);
  const other = await httpCall(`${sc.url}/private/direct`, { headers: { ...client, cookie: 'sid=another' } });
  t.equal(other.body.toString(), '/private/direct #2', 'another cookie is another variant');
});

t.test('fills - a replica matches the keyed credential of a Vary: Cookie entry', async (t) => {
  const { sidecars } = await startCluster(2, { natsUrls: nats.urls, upstream: origin.url });
  t.teardown(() => Promise.all(sidecars.map((s) => s.stop())));
  const [a, b] = sidecars as [typeof sidecars[0], typeof sidecars[0]];
  const client = { cookie: 'sid=REPLICA-COOKIE', 'accept-language': 'fr' };
  const paths = Array.from({ length: 8 }, (_, i) => `/private/replica-${i}`);
  for (const p of paths) t.equal((await httpCall(`${a.url}${p}`, { headers: client })).status, 200);
  // With two members both own every partition: B holds each entry, as the primary A forwarded
  // to, or as the replica of A's fill.
  await waitFor(async () => (await clusterInfo(b)).entries >= paths.length, 10_000, 'B to hold every entry');
  const before = origin.count();
  for (const p of paths) {
    const r = await httpCall(`${b.url}${p}`, { headers: client });
    t.match(String(r.headers['cache-status']), /^sidecache; hit/, `${p}: the same cookie is a hit at B`);
    const other = await httpCall(`${b.url}${p}`, { headers: { ...client, cookie: 'sid=someone-else' } });
    t.notMatch(String(other.headers['cache-status']), /^sidecache; hit/, `${p}: another cookie is not`);
  }
  t.equal(origin.count() - before, paths.length, 'only the other cookie\'s requests reached the origin');
});
