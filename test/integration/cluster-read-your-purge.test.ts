// Read-your-purge (DESIGN invariant 1) with a member that is alive but late: its link to NATS
// delivers everything some hundreds of milliseconds after it was sent. On a quiet loopback every
// member applies a purge within milliseconds, so a purge that did not wait would look correct;
// with the lag, only waiting for the member's acknowledgement keeps it from serving the old body.
import t from 'tap';
import { clusterEnv, uniqueCluster, waitForRing } from '../../support/cluster.js';
import { startNats } from '../../support/nats-server.js';
import { startOrigin } from '../../support/origin.js';
import { startTcpGate } from '../../support/tcp-gate.js';
import { purge, startSidecar, type SidecarProcess } from '../../support/sidecar.js';

const LAG_MS = 600;

let version = 1;
const origin = await startOrigin({
  '/r/*': (req, res) => {
    const tag = req.url!.includes('/tagged/') ? 'red' : 'plain';
    res.writeHead(200, { 'cache-control': 'public, max-age=300', 'surrogate-key': tag, etag: `"${version}"`, 'content-type': 'text/plain' });
    res.end(`${req.url} v${version}`);
  },
});
t.teardown(() => origin.close());

const nats = await startNats({ nodes: 1 });
t.teardown(() => nats.stop());
const gate = await startTcpGate(Number(new URL(nats.urls[0]!).port));
t.teardown(() => gate.close());

// A heartbeat TTL far above the lag: the late member stays in the view and keeps its lease, so
// the purge must wait for it rather than drop it.
const env = { SIDECACHE_HEARTBEAT_INTERVAL: '500ms', SIDECACHE_HEARTBEAT_TTL: '15s', SIDECACHE_PURGE_TIMEOUT: '10s' };
const cluster = uniqueCluster();
const late = await startSidecar({ env: clusterEnv({ natsUrls: [gate.url('nats')], upstream: origin.url, env }, cluster) });
const prompt = await Promise.all([0, 1].map(() => startSidecar({ env: clusterEnv({ natsUrls: nats.urls, upstream: origin.url, env }, cluster) })));
const sidecars = [late, ...prompt];
t.teardown(() => Promise.all(sidecars.map((s) => s.kill())));
await waitForRing(sidecars, 3);

async function get(sc: SidecarProcess, path: string): Promise<{ body: string; cacheStatus: string }> {
  const r = await fetch(sc.url + path);
  return { body: await r.text(), cacheStatus: r.headers.get('cache-status') ?? '' };
}

for (const [name, body, paths] of [
  ['url', { url: '/r/url/a' }, ['/r/url/a']],
  ['prefix', { prefix: '/r/prefix/' }, ['/r/prefix/a', '/r/prefix/b']],
  ['tags', { tags: ['red'] }, ['/r/tagged/a', '/r/tagged/b']],
  ['all', { all: true }, ['/r/all/a']],
] as const) {
  t.test(`read-your-purge - ${name}: a member whose NATS link lags is waited for, then serves the new body`, async (t) => {
    gate.lag(0);
    version++;
    const old = version;
    for (const p of paths) {
      for (const sc of sidecars) t.equal((await get(sc, p)).body, `${p} v${old}`, `warm ${p} at ${sc.id}`);
      // The late member holds a copy (owned, replica or hot): without one the test proves nothing.
      t.match((await get(late, p)).cacheStatus, /; hit/, `${p} is a hit at the late member before the purge`);
    }
    gate.lag(LAG_MS);
    version++;
    const r = await purge(prompt[0]!, body);
    t.equal(r.status, 200);
    t.same(r.json.missing, [], 'nobody missing: the late member answers within the purge timeout');
    t.ok(r.json.acknowledged.includes(late.id), 'the late member is listed as acknowledged');
    for (const p of paths) t.equal((await get(late, p)).body, `${p} v${version}`, `${p} at the late member right after the purge`);
  });
}
