// NATS trouble on real processes: losing one NATS server of three loses nothing; losing
// all of NATS leaves sidecars serving and forwarding (bounded staleness), purges answer
// 503, and everything resumes on reconnect.
import t from 'tap';
import { clusterInfo, startCluster } from '../helpers/cluster.js';
import { startNats } from '../helpers/nats-server.js';
import { startOrigin } from '../helpers/origin.js';
import { purge, waitFor, type SidecarProcess } from '../helpers/sidecar.js';

let version = 1;
const origin = await startOrigin({
  '/n/*': (req, res) => {
    res.writeHead(200, { 'cache-control': 'public, max-age=300', etag: `"${version}"`, 'content-type': 'text/plain' });
    res.end(`${req.url} v${version}`);
  },
});
t.teardown(() => origin.close());

async function body(sc: SidecarProcess, path: string): Promise<[number, string]> {
  const r = await fetch(sc.url + path);
  return [r.status, await r.text()];
}

async function metric(sc: SidecarProcess, name: string): Promise<number> {
  const text = await (await fetch(`${sc.adminUrl}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

t.test('one NATS server of three lost: sidecars keep serving, purges still reach everyone', async (t) => {
  const nats = await startNats({ nodes: 3 });
  t.teardown(() => nats.stop());
  const { sidecars } = await startCluster(3, { natsUrls: nats.urls, upstream: origin.url });
  t.teardown(() => Promise.all(sidecars.map((s) => s.kill())));
  for (let k = 0; k < 30; k++) for (const sc of sidecars) t.equal((await body(sc, `/n/one/${k}`))[0], 200);
  nats.kill(0);
  let failed = 0;
  for (let k = 0; k < 30; k++) for (const sc of sidecars) if ((await body(sc, `/n/one/${k}`))[0] !== 200) failed++;
  t.equal(failed, 0, 'every request served while a NATS server is down');
  version++;
  // A leader election may hold publishes for 4-7 s; the purge retries through it.
  let r = await purge(sidecars[0]!, { url: '/n/one/1' });
  if (r.status !== 200 || r.json.missing.length > 0) {
    await waitFor(async () => { r = await purge(sidecars[0]!, { url: '/n/one/1' }); return r.status === 200 && r.json.missing.length === 0; }, 20_000, 'a purge acknowledged by all');
  }
  t.equal(r.status, 200);
  t.same(r.json.missing, []);
  for (const sc of sidecars) t.same(await body(sc, '/n/one/1'), [200, `/n/one/1 v${version}`], `${sc.id} serves the new body`);
  for (const sc of sidecars) t.equal(sc.proc.exitCode, null, `${sc.id} still running`);
});

t.test('all of NATS lost: serve and forward from caches, purges 503, resume on reconnect', async (t) => {
  const nats = await startNats({ nodes: 3 });
  t.teardown(() => nats.stop());
  const { sidecars } = await startCluster(3, { natsUrls: nats.urls, upstream: origin.url, env: { SIDECACHE_MAX_STALE_DETACHED: '3s' } });
  t.teardown(() => Promise.all(sidecars.map((s) => s.kill())));
  version++;
  const v = version;
  // Cached at the owners only (one request each, at one sidecar).
  for (let k = 0; k < 30; k++) t.equal((await body(sidecars[k % 3]!, `/n/all/${k}`))[0], 200);

  await Promise.all([0, 1, 2].map((i) => nats.stopNode(i)));
  await waitFor(async () => (await Promise.all(sidecars.map((s) => metric(s, 'sidecache_log_attached')))).every((a) => a === 0), 15_000, 'every sidecar to notice');
  const before = origin.count();
  // Every key at every sidecar: local hits, and forwarded requests to the owners.
  for (let k = 0; k < 30; k++) {
    for (const sc of sidecars) t.same(await body(sc, `/n/all/${k}`), [200, `/n/all/${k} v${v}`], `key ${k} at ${sc.id} while detached`);
  }
  t.equal(origin.count() - before, 0, 'served from the cluster\'s caches, no origin request');
  for (const sc of sidecars) t.equal((await fetch(`${sc.adminUrl}/readyz`)).status, 200, `${sc.id} stays ready`);
  const p = await purge(sidecars[0]!, { url: '/n/all/1' });
  t.equal(p.status, 503, 'a purge cannot be promised without the log');
  t.match(p.json.error, /NATS|log/i, 'and says why');

  // Past SIDECACHE_MAX_STALE_DETACHED, hits are revalidated with the origin.
  await new Promise((r) => setTimeout(r, 3200));
  const revalBefore = origin.requests.length;
  const r = await fetch(`${sidecars[0]!.url}/n/all/0`);
  await r.text();
  t.match(r.headers.get('cache-status'), /fwd=stale/, 'revalidated after the staleness bound');
  t.ok(origin.requests.slice(revalBefore).some((q) => q.headers['if-none-match'] !== undefined), 'with a conditional request');

  // Together: JetStream needs a quorum before any one node reports ready.
  await Promise.all([0, 1, 2].map((i) => nats.restart(i)));
  await waitFor(async () => (await Promise.all(sidecars.map((s) => metric(s, 'sidecache_log_attached')))).every((a) => a === 1), 30_000, 'every sidecar to reattach');
  version++;
  let ok = false;
  await waitFor(async () => {
    const res = await purge(sidecars[1]!, { url: '/n/all/2' });
    ok = res.status === 200 && res.json.missing.length === 0;
    return ok;
  }, 30_000, 'purges to work again');
  for (const sc of sidecars) t.same(await body(sc, '/n/all/2'), [200, `/n/all/2 v${version}`], `${sc.id} applied the purge after reconnecting`);
  const infos = await Promise.all(sidecars.map(clusterInfo));
  t.equal(new Set(infos.map((i) => i.ringEpoch)).size, 1, 'one epoch after the outage');
});
