// POST /drain: the member leaves every ring and keeps serving its app by forwarding. Purges
// stop waiting for it then, so it must serve nothing it has not revalidated with an owner:
// here its NATS link hangs (support/tcp-gate.ts) and it never hears of the purge.
// Heartbeats live 30 s, so the lease (NatsLog.mustRevalidate) cannot be what saves it.
import t from 'tap';
import { clusterEnv, clusterInfo, uniqueCluster, waitForRing } from '../../support/cluster.js';
import { startNats } from '../../support/nats-server.js';
import { startOrigin } from '../../support/origin.js';
import { ADMIN_TOKEN, purge, startSidecar, waitFor } from '../../support/sidecar.js';
import { startTcpGate } from '../../support/tcp-gate.js';

t.test('drain - a drained member whose NATS link lags behind a purge serves the purged URL fresh', async (t) => {
  const nats = await startNats({ nodes: 1 });
  t.teardown(() => nats.stop());
  const origin = await startOrigin({
    '/dl/v': (_req, res, n) => {
      res.writeHead(200, { 'cache-control': 'public, max-age=60', etag: `"${n}"`, 'content-type': 'text/plain' });
      res.end(`v${n}`);
    },
  });
  t.teardown(() => origin.close());
  const gate = await startTcpGate(Number(new URL(nats.urls[0]!).port));
  t.teardown(() => gate.close());
  const cluster = uniqueCluster();
  const env = { SIDECACHE_HEARTBEAT_TTL: '30s' };
  const [a, c] = await Promise.all([0, 1].map(() => startSidecar({ env: clusterEnv({ natsUrls: nats.urls, upstream: origin.url, env }, cluster) })));
  const b = await startSidecar({ env: clusterEnv({ natsUrls: [gate.url('nats')], upstream: origin.url, env }, cluster) });
  t.teardown(() => Promise.all([a!, b, c!].map((s) => s.kill())));
  await waitForRing([a!, b, c!], 3);

  const drained = await fetch(`${b.adminUrl}/drain`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  t.equal(drained.status, 200);
  t.match(await drained.json(), { node: b.id, state: 'draining' });
  await waitFor(async () => (await Promise.all([a!, c!].map(clusterInfo))).every((i) => !i.ring.includes(b.id)), 10_000, 'the rings without it');

  for (let i = 0; i < 3; i++) t.equal(await (await fetch(`${b.url}/dl/v`)).text(), 'v1', 'served through the owners');
  t.equal(origin.count('/dl/v'), 1);

  gate.hold();
  t.teardown(() => gate.release());
  const p = await purge(a!, { url: '/dl/v' });
  t.equal(p.status, 200);
  t.same(p.json.missing, [], 'acknowledged by the active members');
  t.notOk(p.json.acknowledged.includes(b.id), 'without waiting for the drained one');
  t.equal(await (await fetch(`${b.url}/dl/v`)).text(), 'v2', 'the drained member serves the purged URL fresh');
  t.equal(origin.count('/dl/v'), 2);
});
