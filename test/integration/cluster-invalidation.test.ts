// Invalidation through the log on real processes: every purge kind reaches every sidecar
// before the purge call returns, writes invalidate cluster-wide, no fill older than a
// purge is ever stored (no resurrection), and a gap in the log flushes the cache.
import t, { type Test } from 'tap';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { startCluster } from '../../support/cluster.js';
import { startNats } from '../../support/nats-server.js';
import { startOrigin } from '../../support/origin.js';
import { purge, waitFor, type SidecarProcess } from '../../support/sidecar.js';

const nats = await startNats({ nodes: 3 });
t.teardown(() => nats.stop());

let version = 1;
const origin = await startOrigin({
  '/v/*': (req, res) => {
    const tag = req.url!.includes('/tagged/') ? 'blue' : 'green';
    res.writeHead(200, { 'cache-control': 'public, max-age=300', 'surrogate-key': `${tag} all`, etag: `"${version}"`, 'content-type': 'text/plain' });
    res.end(`${req.url} v${version}`);
  },
  '/slowv/*': (req, res) => {
    const v = version;
    setTimeout(() => {
      res.writeHead(200, { 'cache-control': 'public, max-age=300', 'content-type': 'text/plain' });
      res.end(`${req.url} v${v}`);
    }, 800);
  },
});
t.teardown(() => origin.close());

const { cluster, sidecars } = await startCluster(3, { natsUrls: nats.urls, upstream: origin.url });
t.teardown(() => Promise.all(sidecars.map((s) => s.stop())));

async function bodyAt(sc: SidecarProcess, path: string): Promise<string> {
  return (await fetch(sc.url + path)).text();
}

/** Warm a path at every sidecar and check it is cached everywhere with version v. */
async function warm(t: Test, path: string, v: number): Promise<void> {
  for (const sc of sidecars) t.equal(await bodyAt(sc, path), `${path} v${v}`, `warm ${path} at ${sc.id}`);
}

for (const [name, body, paths] of [
  ['url', { url: '/v/url/a' }, ['/v/url/a']],
  ['prefix', { prefix: '/v/prefix/' }, ['/v/prefix/a', '/v/prefix/b']],
  ['tags', { tags: ['blue'] }, ['/v/tagged/a', '/v/tagged/b']],
  ['all', { all: true }, ['/v/all/a']],
] as const) {
  t.test(`purge - ${name}: once the call returns, no sidecar serves the old body`, async (t) => {
    version++;
    const v = version;
    for (const p of paths) await warm(t, p, v);
    version++;
    const r = await purge(sidecars[1]!, body);
    t.equal(r.status, 200);
    t.same([...r.json.acknowledged].sort(), sidecars.map((s) => s.id).sort(), 'every member acknowledged');
    t.same(r.json.missing, []);
    for (const p of paths) for (const sc of sidecars) t.equal(await bodyAt(sc, p), `${p} v${version}`, `${p} at ${sc.id} after purge`);
  });
}

t.test('purge - soft: entries are revalidated, not refetched blind', async (t) => {
  version++;
  await warm(t, '/v/soft/a', version);
  const r = await purge(sidecars[0]!, { url: '/v/soft/a', soft: true });
  t.equal(r.status, 200);
  const before = origin.requests.length;
  const res = await fetch(`${sidecars[2]!.url}/v/soft/a`);
  await res.text();
  t.match(res.headers.get('cache-status'), /fwd=stale/, 'the soft-purged entry was revalidated');
  const conditional = origin.requests.slice(before).filter((q) => q.url === '/v/soft/a');
  t.ok(conditional.length >= 1 && conditional.every((q) => q.headers['if-none-match'] !== undefined), 'the origin saw a conditional request');
});

t.test('writes - a POST through one sidecar invalidates the URI at every sidecar', async (t) => {
  version++;
  await warm(t, '/v/write/a', version);
  version++;
  const post = await fetch(`${sidecars[0]!.url}/v/write/a`, { method: 'POST', body: 'x' });
  t.equal(post.status, 200);
  await post.text();
  // The write's invalidation travels through the log; it is applied everywhere shortly.
  await waitFor(async () => {
    const bodies = await Promise.all(sidecars.map((sc) => bodyAt(sc, '/v/write/a')));
    return bodies.every((b) => b === `/v/write/a v${version}`);
  }, 10_000, 'every sidecar to drop the written URI');
  t.pass('no sidecar serves the pre-write body');
});

t.test('no resurrection - a purge during a slow fetch: no sidecar serves the old body afterwards', async (t) => {
  version++;
  const old = version;
  const path = '/slowv/race';
  const inflight = sidecars.map((sc) => bodyAt(sc, path));
  // The fetch is in flight at the owner (800 ms); purge while it is.
  await new Promise((r) => setTimeout(r, 200));
  version++;
  const r = await purge(sidecars[2]!, { url: path });
  t.equal(r.status, 200);
  const early = await Promise.all(inflight);
  t.ok(early.every((b) => b === `${path} v${old}`), 'requests from before the purge got the body being fetched');
  for (let round = 0; round < 3; round++) {
    for (const sc of sidecars) t.equal(await bodyAt(sc, path), `${path} v${version}`, `${sc.id} round ${round}`);
  }
});

t.test('no silent gap - a reset INVAL stream makes every sidecar flush and say so', async (t) => {
  version++;
  await warm(t, '/v/gap/a', version);
  const nc = await connect({ servers: nats.urls as string[] });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  const streams: string[] = [];
  for await (const s of jsm.streams.list()) if (s.config.name.includes(cluster) && s.config.name.endsWith('INVAL')) streams.push(s.config.name);
  t.equal(streams.length, 1, 'found the INVAL stream of this cluster');
  await jsm.streams.delete(streams[0]!);
  version++;
  await waitFor(async () => {
    const texts = await Promise.all(sidecars.map(async (sc) => (await fetch(`${sc.adminUrl}/metrics`)).text()));
    return texts.every((m) => /^sidecache_log_gaps_total [1-9]/m.test(m));
  }, 20_000, 'every sidecar to report a gap');
  for (const sc of sidecars) t.equal(await bodyAt(sc, '/v/gap/a'), `/v/gap/a v${version}`, `${sc.id} flushed`);
  // And the cluster keeps working: a purge after the reset is acknowledged by everyone.
  await waitFor(async () => (await purge(sidecars[0]!, { url: '/v/gap/a' })).json.missing?.length === 0, 20_000, 'purges to work again');
});
