// NATS trouble on real processes: losing one NATS server of three loses nothing; losing
// all of NATS leaves sidecars serving and forwarding (bounded staleness), purges answer
// 503, and everything resumes on reconnect.
import t from 'tap';
import { clusterEnv, clusterInfo, startCluster, uniqueCluster, waitForRing } from '../../support/cluster.js';
import { startNats } from '../../support/nats-server.js';
import { startOrigin } from '../../support/origin.js';
import { startTcpGate } from '../../support/tcp-gate.js';
import { isDeliveryOf, natsServerFrames } from '../helpers/nats-frames.js';
import { purge, startSidecar, waitFor, type SidecarProcess } from '../../support/sidecar.js';

let version = 1;
const origin = await startOrigin({
  '/n/*': (req, res) => {
    res.writeHead(200, { 'cache-control': 'public, max-age=300', etag: `"${version}"`, 'content-type': 'text/plain' });
    res.end(`${req.url} v${version}`);
  },
  // Stale on arrival (Age past max-age) and within stale-while-revalidate: every hit of these is
  // one the cache may serve before asking the origin.
  '/swr/*': (req, res) => {
    res.writeHead(200, {
      'cache-control': 'public, max-age=60, stale-while-revalidate=600', age: '120', etag: `"${version}"`, 'content-type': 'text/plain',
    });
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
  // A heartbeat TTL well past the staleness bound: this test is about the bound. (With the
  // helpers' 2 s TTL, each sidecar would revalidate after 1.7 s: peers may drop a member whose
  // heartbeats lapsed, so it cannot trust its cache that long.)
  const { sidecars } = await startCluster(3, {
    natsUrls: nats.urls, upstream: origin.url, env: { SIDECACHE_MAX_STALE_DETACHED: '3s', SIDECACHE_HEARTBEAT_TTL: '20s' },
  });
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

t.test('a sidecar frozen past the heartbeat TTL serves nothing that was purged without it', async (t) => {
  const nats = await startNats({ nodes: 1 });
  t.teardown(() => nats.stop());
  const { sidecars } = await startCluster(3, { natsUrls: nats.urls, upstream: origin.url });
  t.teardown(() => Promise.all(sidecars.map((s) => s.kill())));
  const [a, , frozen] = sidecars as [SidecarProcess, SidecarProcess, SidecarProcess];
  version++;
  const paths = Array.from({ length: 12 }, (_, k) => `/n/frozen/${k}`);
  // Asked at the sidecar to be frozen: it stores the keys it owns (most of them, R=2 of 3).
  for (const p of paths) t.same(await body(frozen, p), [200, `${p} v${version}`]);
  frozen.proc.kill('SIGSTOP');
  let resumed = false;
  t.teardown(() => { if (!resumed) frozen.proc.kill('SIGCONT'); });
  await waitFor(async () => (await clusterInfo(a)).view.members.length === 2, 20_000, 'the peers to drop the frozen sidecar');
  version++;
  const r = await purge(a, { prefix: '/n/frozen/' });
  t.equal(r.status, 200);
  t.same(r.json.missing, [], 'the purge did not wait for the frozen sidecar: it was no longer in the view');
  frozen.proc.kill('SIGCONT');
  resumed = true;
  // At once, all together: before it can have heard of the purge or of the view without it.
  const got = await Promise.all(paths.map((p) => body(frozen, p)));
  for (const [i, p] of paths.entries()) t.same(got[i], [200, `${p} v${version}`], `${p} at the resumed sidecar is the new body`);
  await waitFor(async () => (await clusterInfo(a)).view.members.length === 3, 20_000, 'the resumed sidecar to register again');
});

for (const [title, prefix] of [
  ['a sidecar cut off from NATS stops trusting its cache before its peers drop it', '/n/cut/'],
  ['a sidecar cut off from NATS serves no stale-while-revalidate entry that was purged without it', '/swr/cut/'],
] as const) t.test(title, async (t) => {
  // The lone sidecar reaches NATS through a relay that, held, moves no bytes and closes
  // nothing: its connection looks alive (it notices only after 10-30 s of unanswered pings)
  // while its peers, connected directly, drop it from the view and purge without it.
  const nats = await startNats({ nodes: 1 });
  t.teardown(() => nats.stop());
  const gate = await startTcpGate(Number(new URL(nats.urls[0]!).port));
  t.teardown(() => gate.close());
  const cluster = uniqueCluster();
  const lone = await startSidecar({ env: clusterEnv({ natsUrls: [gate.url('nats')], upstream: origin.url }, cluster) });
  const peers = await Promise.all([0, 1].map(() => startSidecar({ env: clusterEnv({ natsUrls: nats.urls, upstream: origin.url }, cluster) })));
  const sidecars = [lone, ...peers];
  t.teardown(() => Promise.all(sidecars.map((s) => s.kill())));
  await waitForRing(sidecars, 3);
  const a = peers[0]!;
  version++;
  const paths = Array.from({ length: 12 }, (_, k) => `${prefix}${k}`);
  // Asked at the lone sidecar: it stores the keys it owns (most of them, R=2 of 3).
  for (const p of paths) t.same(await body(lone, p), [200, `${p} v${version}`]);
  gate.hold();
  t.teardown(() => gate.release());
  await waitFor(async () => (await clusterInfo(a)).view.members.length === 2, 20_000, 'the peers to drop the lone sidecar');
  version++;
  const r = await purge(a, { prefix });
  t.equal(r.status, 200);
  t.same(r.json.missing, [], 'the purge did not wait for the lone sidecar: it was no longer in the view');
  t.equal((await clusterInfo(lone)).attached, true, 'the lone sidecar has not noticed that it is cut off');
  for (const p of paths) t.same(await body(lone, p), [200, `${p} v${version}`], `${p} at the lone sidecar is the new body`);
  gate.release();
  await waitFor(async () => (await clusterInfo(a)).view.members.length === 3, 30_000, 'the lone sidecar to register again');
  for (const p of paths) t.same(await body(lone, p), [200, `${p} v${version}`], `${p} once it is back`);
});

t.test('a sidecar whose invalidations stop arriving while it stays attached stops trusting its cache', async (t) => {
  // Found by the cluster checker (leader-kill): with the INVAL stream's leader killed, every
  // member's INVAL consumer stalled for 10 s while heartbeats, the view and peers worked; a
  // purge returned listing them missing, and they kept serving what it removed. Here the
  // relay passes everything the server sends A but its INVAL deliveries.
  const nats = await startNats({ nodes: 1 });
  t.teardown(() => nats.stop());
  const gate = await startTcpGate(Number(new URL(nats.urls[0]!).port), { serverFrames: natsServerFrames });
  t.teardown(() => gate.close());
  const cluster = uniqueCluster();
  const env = { SIDECACHE_MAX_STALE_DETACHED: '1s', SIDECACHE_PURGE_TIMEOUT: '1s' };
  const a = await startSidecar({ env: clusterEnv({ natsUrls: [gate.url('nats')], upstream: origin.url, env }, cluster) });
  const b = await startSidecar({ env: clusterEnv({ natsUrls: nats.urls, upstream: origin.url, env }, cluster) });
  t.teardown(() => Promise.all([a.kill(), b.kill()]));
  await waitForRing([a, b], 2);
  version++;
  const paths = Array.from({ length: 12 }, (_, k) => `/n/stall/${k}`);
  // Asked at A: it stores what it owns and keeps hot copies of the rest.
  for (const p of paths) t.same(await body(a, p), [200, `${p} v${version}`]);
  gate.dropFromServer((frame) => isDeliveryOf(frame, `SC_${cluster}_INVAL`));
  t.teardown(() => gate.dropFromServer(undefined));
  version++;
  const r = await purge(b, { prefix: '/n/stall/' });
  t.equal(r.status, 200);
  t.ok(r.json.missing.includes(a.id), 'A did not apply the purge: its deliveries are held back');
  t.equal((await clusterInfo(a)).attached, true, 'A is attached to NATS all along');
  let got: Array<[number, string]> = [];
  await waitFor(async () => {
    got = await Promise.all(paths.map((p) => body(a, p)));
    return got.every(([, text], i) => text === `${paths[i]} v${version}`);
  }, 20_000, 'A to serve the new bodies').catch(() => undefined);
  for (const [i, p] of paths.entries()) t.same(got[i], [200, `${p} v${version}`], `${p} at A is the new body, SIDECACHE_MAX_STALE_DETACHED after it knew of the purge`);
  t.ok((await clusterInfo(a)).appliedSeq < r.json.seq, 'A has still not applied the purge: it revalidated');
  gate.dropFromServer(undefined);
  await waitFor(async () => (await clusterInfo(a)).appliedSeq >= r.json.seq, 30_000, 'A to apply the purge once its deliveries arrive again');
});
