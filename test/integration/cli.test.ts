// The operator's command line against a running 3-sidecar cluster (real nats-server, real
// sidecar processes): status, inspect, purge, drain, and an unreachable member, each run as
// `node bin/sidecache.js <command>` with only the admin API's variables. `top` has its own file.
// Heartbeats live 30 s here, so a killed member stays in the view while the test looks at it.
import t from 'tap';
import { signRequest } from '../../src/cluster/peer-auth.js';
import { adminEnv, runCli } from '../helpers/cli.js';
import { CLUSTER_SECRET, clusterInfo, startCluster } from '../../support/cluster.js';
import { startNats } from '../../support/nats-server.js';
import { startOrigin } from '../../support/origin.js';
import { startStandalone } from '../../support/standalone.js';
import { freePort, waitFor } from '../../support/sidecar.js';

const nats = await startNats({ nodes: 1 });
t.teardown(() => nats.stop());
const origin = await startOrigin({
  '/i/tagged': (_req, res) => {
    res.writeHead(200, { 'cache-control': 'public, max-age=60', 'surrogate-key': 't1 t2', 'content-type': 'text/plain' });
    res.end('tagged');
  },
  '/i/cookie': (_req, res) => {
    res.writeHead(200, { 'cache-control': 'public, max-age=60', 'set-cookie': 'sid=1', 'content-type': 'text/plain' });
    res.end('personal');
  },
});
t.teardown(() => origin.close());
const { cluster, sidecars } = await startCluster(3, { natsUrls: nats.urls, upstream: origin.url, env: { SIDECACHE_HEARTBEAT_TTL: '30s' } });
t.teardown(() => Promise.all(sidecars.map((s) => s.kill())));
const [a, b, c] = sidecars as [typeof sidecars[0], typeof sidecars[0], typeof sidecars[0]];
const ids = sidecars.map((s) => s.id).sort();

async function get(url: string): Promise<{ status: number; body: string; cacheStatus: string }> {
  const r = await fetch(url);
  return { status: r.status, body: await r.text(), cacheStatus: r.headers.get('cache-status') ?? '' };
}

t.test('cli status - from one member, every member\'s state, epoch, partitions, hit ratio, applied seq and lag', async (t) => {
  for (let i = 0; i < 4; i++) t.equal((await get(`${a.url}/s/one`)).status, 200);
  const r = await runCli(['status', '--json'], adminEnv(a));
  t.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout);
  t.equal(rep.version, 1);
  t.equal(rep.cluster, cluster);
  t.equal(rep.mode, 'cluster');
  t.same(rep.members.map((m: any) => m.id), ids, 'every member, from one');
  t.equal(rep.ring.owners.length, 256, 'the ring: owners of every partition');
  let primary = 0;
  let replica = 0;
  for (const m of rep.members) {
    t.equal(m.reachable, true, `${m.id} reachable`);
    t.equal(m.state, 'active');
    t.equal(m.status.state, 'active');
    t.equal(m.status.epoch, rep.ring.epoch, `${m.id} on the same ring epoch`);
    t.equal(m.lag, 0);
    t.equal(m.status.appliedSeq, rep.members[0].status.appliedSeq);
    primary += m.status.partitions.primary;
    replica += m.status.partitions.replica;
  }
  t.equal(primary, 256, 'each partition has one primary');
  t.equal(replica, 256, 'and one replica (SIDECACHE_REPLICAS=2)');
  const at = rep.members.find((m: any) => m.id === a.id).status;
  t.equal(at.requests.hit, 3, 'three hits at the member the requests went to');
  t.equal(at.hitRatio, 0.75, 'hit ratio 3 of 4');
  t.equal(at.originRequests + at.forwardedRequests, 1, 'the first request went to the origin or the owner');

  const human = await runCli(['status'], adminEnv(b));
  t.equal(human.code, 0, human.stderr);
  t.match(human.stdout, /MEMBER\s+STATE\s+EPOCH\s+PRIMARY\s+REPLICA\s+HIT\s+APPLIED\s+LAG/);
  for (const id of ids) t.match(human.stdout, new RegExp(`^${id}\\s+active\\s+\\d+`, 'm'), `a row for ${id}, from another member`);
  t.match(human.stdout, new RegExp(`^${a.id}\\s.*75\\.0%`, 'm'));
});

t.test('cli inspect - owners, age, ttl, tags and fence of a cached URL; why a URL is not stored', async (t) => {
  t.equal((await get(`${a.url}/i/tagged`)).status, 200);
  const r = await runCli(['inspect', '/i/tagged', '--json'], adminEnv(a));
  t.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout);
  t.equal(rep.cached, true);
  t.equal(rep.owners.length, 2, 'a primary and a replica');
  const primary = rep.members.find((m: any) => m.role === 'primary');
  t.equal(primary.id, rep.owners[0]);
  t.equal(primary.variants.length, 1, 'the primary holds it');
  const v = primary.variants[0];
  t.equal(v.source, 'local');
  t.equal(v.status, 200);
  t.same(v.tags, ['t1', 't2']);
  t.ok(v.ttlSec > 50 && v.ttlSec <= 60, `ttl ${v.ttlSec}`);
  t.ok(v.ageSec >= 0 && v.ageSec < 10, `age ${v.ageSec}`);
  t.ok(Number.isInteger(v.fence.seq) && typeof v.fence.incarnation === 'string', 'its fence');
  await waitFor(async () => {
    const again = JSON.parse((await runCli(['inspect', '/i/tagged', '--json'], adminEnv(b))).stdout);
    return again.members.find((m: any) => m.role === 'replica').variants.some((x: any) => x.store === 'main' && x.source === 'replica');
  }, 10_000, 'the replica to hold the fill');
  if (rep.owners[0] !== a.id) {
    t.ok(rep.members.find((m: any) => m.id === a.id).variants.some((x: any) => x.store === 'hot' && x.source === 'hot'), 'the member the request went to keeps a hot copy');
  }
  const human = await runCli(['inspect', '/i/tagged'], adminEnv(c));
  t.equal(human.code, 0, human.stderr);
  t.match(human.stdout, new RegExp(`owners ${rep.owners[0]} \\(primary\\), ${rep.owners[1]}`));
  // The TTL reads 59s, or 1m when the read came within half a second of the store.
  t.match(human.stdout, new RegExp(`^${rep.owners[0]}\\s+primary\\s+active\\s+main/local\\s+200\\s+\\d+s\\s+(?:\\d+s|1m)\\s+6B\\s+\\d+@\\w+\\s+t1 t2`, 'm'));

  t.equal((await get(`${a.url}/i/cookie`)).status, 200);
  const n = JSON.parse((await runCli(['inspect', '/i/cookie', '--json'], adminEnv(a))).stdout);
  t.equal(n.cached, false);
  t.ok(n.members.some((m: any) => /set-cookie/.test(m.notStored?.reason ?? '')), 'a member says why it did not store it');
  const nh = await runCli(['inspect', `${origin.url}/i/cookie`], adminEnv(a));
  t.match(nh.stdout, /not cached on any reachable member/);
  t.match(nh.stdout, /not stored \d+s ago: set-cookie/);

  const bad = await runCli(['inspect', 'not a url'], adminEnv(a));
  t.equal(bad.code, 1);
  t.match(bad.stderr, /refused GET \/inspect \(400\)/);
});

t.test('cli purge - url, tag, prefix and all: who acknowledged, who is missing', async (t) => {
  await get(`${a.url}/p/one`);
  const before = origin.count('/p/one');
  const r = await runCli(['purge', '--url', '/p/one'], adminEnv(b));
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /purge seq \d+ \(hard\): acknowledged by 3 of 3 member\(s\)/);
  for (const id of ids) t.match(r.stdout, new RegExp(`^${id}\\s+yes$`, 'm'));
  await get(`${a.url}/p/one`);
  t.equal(origin.count('/p/one'), before + 1, 'purged: fetched again');

  const soft = await runCli(['purge', '--tag', 't1', '--tag', 't2', '--soft', '--json'], adminEnv(a));
  t.equal(soft.code, 0, soft.stderr);
  const j = JSON.parse(soft.stdout);
  t.ok(Number.isInteger(j.seq));
  t.same([...j.acknowledged].sort(), ids);
  t.same(j.missing, []);
  const tagged = JSON.parse((await runCli(['inspect', '/i/tagged', '--json'], adminEnv(a))).stdout);
  t.ok(tagged.members.flatMap((m: any) => m.variants).every((v: any) => v.softPurged), 'soft: kept, marked stale');
  for (const args of [['--prefix', '/p/'], ['--all'], ['--url', '/p/one', '--url', '/p/two']]) {
    const x = await runCli(['purge', ...args], adminEnv(c));
    t.equal(x.code, 0, `purge ${args.join(' ')}: ${x.stderr}`);
  }
  const usage = await runCli(['purge', '--url', '/p/one', '--all'], adminEnv(a));
  t.equal(usage.code, 2);
  t.match(usage.stderr, /exactly one of --url/);
});

t.test('cli errors - unreachable admin API, wrong or missing token: exit 1 and a clear message', async (t) => {
  const port = await freePort();
  const down = await runCli(['status', '--admin', `http://127.0.0.1:${port}`], adminEnv(a));
  t.equal(down.code, 1);
  t.match(down.stderr, new RegExp(`cannot reach the admin API at http://127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)`));
  t.equal(down.stdout, '');
  const downEnv = await runCli(['top'], { SIDECACHE_ADMIN_LISTEN: `127.0.0.1:${port}` });
  t.equal(downEnv.code, 1, 'through SIDECACHE_ADMIN_LISTEN too, and for top');
  t.match(downEnv.stderr, /cannot reach the admin API/);

  const wrong = await runCli(['purge', '--url', '/p/one', '--token', 'not-the-token-42'], adminEnv(a));
  t.equal(wrong.code, 1);
  t.match(wrong.stderr, /refused the request \(401\): the token given is not the one it expects; set --token or SIDECACHE_ADMIN_TOKEN/);
  t.notMatch(wrong.stderr, /not-the-token-42/, 'the token is not echoed');
  const wrongEnv = await runCli(['drain'], { ...adminEnv(a), SIDECACHE_ADMIN_TOKEN: 'not-the-token-42' });
  t.equal(wrongEnv.code, 1);
  t.match(wrongEnv.stderr, /\(401\)/);
  const none = await runCli(['inspect', '/i/tagged'], { SIDECACHE_ADMIN_LISTEN: a.env.SIDECACHE_ADMIN_LISTEN! });
  t.equal(none.code, 1);
  t.match(none.stderr, /\(401\): no token was given/);
  t.same((await clusterInfo(a)).ring.length, 3, 'nothing drained');

  const badListen = await runCli(['status'], { SIDECACHE_ADMIN_LISTEN: 'nowhere' });
  t.equal(badListen.code, 2);
  t.match(badListen.stderr, /SIDECACHE_ADMIN_LISTEN: expected host:port/);
  const badFlag = await runCli(['status', '--nope'], adminEnv(a));
  t.equal(badFlag.code, 2);
  t.match(badFlag.stderr, /Unknown option '--nope'/);
});

t.test('peer port - member queries are signed POSTs: unsigned ones are refused, clients\' requests for the path reach the origin', async (t) => {
  const path = '/.sidecache/status';
  const g = await get(`${a.url}${path}`);
  t.equal(g.body, `body of ${path} #1\n`, 'a GET through the proxy is an ordinary request');
  const p = await fetch(`${a.url}${path}`, { method: 'POST', body: 'x' });
  t.equal(p.status, 200);
  t.match(await p.text(), /^body of \/\.sidecache\/status/, 'so is a POST');
  t.equal(origin.count(path), 2, 'both reached the origin');
  const unsigned = await fetch(`${a.peerUrl}${path}`, { method: 'POST' });
  t.equal(unsigned.status, 401);
  await unsigned.arrayBuffer();
  const forged = await fetch(`${a.peerUrl}${path}`, { method: 'POST', headers: signRequest('forger-secret-0123456789', { cluster, from: 'x', epoch: 1 }, 'POST', path) });
  t.equal(forged.status, 401);
  await forged.arrayBuffer();
  const signed = await fetch(`${a.peerUrl}${path}`, { method: 'POST', headers: signRequest(CLUSTER_SECRET, { cluster, from: b.id, epoch: 1 }, 'POST', path) });
  t.equal(signed.status, 200);
  t.equal((await signed.json() as { id: string }).id, a.id, 'a signed query is answered with the member\'s status');
});

t.test('cli drain - out of the ring, still serving its app by forwarding, until stopped', async (t) => {
  const r = await runCli(['drain'], adminEnv(b));
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, new RegExp(`${b.id}: draining`));
  t.match(r.stdout, new RegExp(`${b.id}: out of the ring \\(ring epoch \\d+\\), as 3 reachable member\\(s\\) see it`));
  for (const s of [a, c, b]) t.notOk((await clusterInfo(s)).ring.includes(b.id), `the ring of ${s.id} no longer lists ${b.id}`);
  t.equal((await clusterInfo(a)).view.members.find((m) => m.id === b.id)?.state, 'draining');
  const st = JSON.parse((await runCli(['status', '--json'], adminEnv(b))).stdout).members.find((m: any) => m.id === b.id).status;
  t.same([st.draining, st.partitions.primary, st.partitions.replica], [true, 0, 0], 'it owns nothing');

  // Its app is still served: the owners answer, the origin is asked once.
  origin.route('/d/v', (_req, res, n) => {
    res.writeHead(200, { 'cache-control': 'public, max-age=60', etag: `"${n}"`, 'content-type': 'text/plain' });
    res.end(`v${n}`);
  });
  const first = await get(`${b.url}/d/v`);
  t.same([first.status, first.body], [200, 'v1']);
  t.match(first.cacheStatus, new RegExp(`node="${b.id}"`));
  for (let i = 0; i < 3; i++) t.equal((await get(`${b.url}/d/v`)).body, 'v1');
  t.equal((await get(`${a.url}/d/v`)).body, 'v1');
  t.equal(origin.count('/d/v'), 1, 'fetched once, by its owner');
  // Purges no longer wait for it, so it serves nothing it has not revalidated with an owner.
  const p = await runCli(['purge', '--url', '/d/v', '--json'], adminEnv(a));
  t.equal(p.code, 0, p.stderr);
  t.notOk(JSON.parse(p.stdout).acknowledged.includes(b.id), 'the purge did not wait for the drained member');
  t.equal((await get(`${b.url}/d/v`)).body, 'v2', 'read-your-purge at the drained member');
  t.equal(await b.stop(), 0, 'stopped cleanly after the drain');
  await waitFor(async () => !(await clusterInfo(a)).view.members.some((m) => m.id === b.id), 10_000, 'the stopped member to leave the view');
});

t.test('cli status and purge - a member that does not answer is unreachable and missing', async (t) => {
  await c.kill();
  const r = await runCli(['status', '--json'], adminEnv(a));
  t.equal(r.code, 0, r.stderr);
  const m = JSON.parse(r.stdout).members.find((x: any) => x.id === c.id);
  t.same([m.reachable, m.status, m.lag, m.state], [false, null, null, 'active'], 'still in the view, not answering');
  t.match(m.error, /ECONNREFUSED|unreachable|no answer/);
  const human = await runCli(['status'], adminEnv(a));
  t.match(human.stdout, new RegExp(`^${c.id}\\s+active\\s+(-\\s+)+unreachable: `, 'm'));
  const p = await runCli(['purge', '--url', '/p/three'], adminEnv(a));
  t.equal(p.code, 3, 'incomplete: exit 3');
  t.match(p.stdout, /acknowledged by 1 of 2 member\(s\)/);
  t.match(p.stdout, new RegExp(`^${c.id}\\s+MISSING$`, 'm'));
  t.match(p.stderr, new RegExp(`did not acknowledge within the purge timeout: ${c.id}`));
  const i = JSON.parse((await runCli(['inspect', '/i/tagged', '--json'], adminEnv(a))).stdout);
  t.equal(i.members.find((x: any) => x.id === c.id).reachable, false);
});

t.test('cli - a standalone sidecar: status lists itself, inspect works, drain is refused with the reason', async (t) => {
  const { sc } = await startStandalone(t);
  await (await fetch(`${sc.url}/solo`)).text();
  const r = await runCli(['status', '--json'], adminEnv(sc));
  t.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout);
  t.match(rep, { mode: 'standalone', ring: null, from: sc.id });
  t.same(rep.members.map((m: any) => [m.id, m.reachable, m.lag, m.status.partitions.primary]), [[sc.id, true, 0, 256]]);
  const i = JSON.parse((await runCli(['inspect', '/solo', '--json'], adminEnv(sc))).stdout);
  t.match(i, { cached: true, owners: [sc.id] });
  t.equal(i.members[0].variants[0].source, 'local');
  const d = await runCli(['drain'], adminEnv(sc));
  t.equal(d.code, 1);
  t.match(d.stderr, /refused POST \/drain \(409\): standalone: there is no ring to leave/);
  const { sc: tokenless } = await startStandalone(t, { SIDECACHE_ADMIN_TOKEN: '' });
  const x = await runCli(['inspect', '/solo'], { SIDECACHE_ADMIN_LISTEN: tokenless.env.SIDECACHE_ADMIN_LISTEN! });
  t.equal(x.code, 1);
  t.match(x.stderr, /\(403\): admin writes and \/inspect are disabled: set SIDECACHE_ADMIN_TOKEN/);
});
