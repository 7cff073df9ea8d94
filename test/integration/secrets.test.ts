// Secrets never leave the process: the cluster secret, the admin token, credentials in the
// NATS URL, and the credentials clients send (Cookie, Authorization, API keys) appear in no log
// line (at debug level, the most verbose), no metric and no response a client or operator
// reads, including error bodies, refusals and start-up messages.
import t from 'tap';
import { CLUSTER_SECRET, clusterEnv, uniqueCluster, waitForRing } from '../../support/cluster.js';
import { startNats } from '../../support/nats-server.js';
import { startOrigin } from '../../support/origin.js';
import { ADMIN_TOKEN, purge, runToExit, startSidecar, waitFor, type SidecarProcess } from '../../support/sidecar.js';

const NATS_PASSWORD = 'natspass-5e3c1f0a9b';
const COOKIE = 'sid=cookie-7d41a0e2c9';
const AUTHORIZATION = 'Bearer auth-3b9f7c1e55';
const API_KEY = 'apikey-c0ffee12345';
const SECRETS = [CLUSTER_SECRET, ADMIN_TOKEN, NATS_PASSWORD, 'cookie-7d41a0e2c9', 'auth-3b9f7c1e55', API_KEY];

function leaks(text: string): string[] {
  return SECRETS.filter((s) => text.includes(s));
}

t.test('secrets - none in logs, metrics, responses or error bodies of a cluster under use and trouble', async (t) => {
  const origin = await startOrigin({
    '/s/vary': (_req, res) => {
      res.writeHead(200, { 'cache-control': 'public, max-age=60', vary: 'cookie, x-api-key', 'content-type': 'text/plain' });
      res.end('varied');
    },
    // Not the default route, which echoes the target (with its query) in the body.
    '/s/q': (_req, res) => {
      res.writeHead(200, { 'cache-control': 'public, max-age=60', 'content-type': 'text/plain' });
      res.end('queried');
    },
    '/s/fail': (_req, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('origin failed');
    },
  });
  t.teardown(() => origin.close());
  const nats = await startNats({ nodes: 1 });
  t.teardown(() => nats.stop());
  // A server without authorisation accepts any credentials: enough to see where they go.
  const withPassword = nats.urls.map((u) => u.replace('nats://', `nats://sidecache:${NATS_PASSWORD}@`));
  const cluster = uniqueCluster();
  // The access log on: query values (a key in the query below) stay out of it.
  const env = { SIDECACHE_LOG_LEVEL: 'debug', SIDECACHE_PURGE_TIMEOUT: '1s', SIDECACHE_ACCESS_LOG_SAMPLE: '1' };
  const sidecars = await Promise.all([0, 1].map(() => startSidecar({ env: clusterEnv({ natsUrls: withPassword, upstream: origin.url, env }, cluster) })));
  t.teardown(() => Promise.all(sidecars.map((s) => s.kill())));
  await waitForRing(sidecars, 2);

  const seen: string[] = [];
  const read = async (r: Response) => {
    seen.push(`${r.status} ${JSON.stringify([...r.headers])} ${await r.text()}`);
  };
  const credentials = { cookie: COOKIE, authorization: AUTHORIZATION, 'x-api-key': API_KEY };
  for (const sc of sidecars) {
    for (const path of ['/s/plain', '/s/vary', '/s/fail', '/s/%zz', `/s/${'x'.repeat(9000)}`, `/s/q?api_key=${API_KEY}&x=1`]) {
      await read(await fetch(sc.url + path, { headers: credentials }));
      await read(await fetch(sc.url + path, { headers: { cookie: COOKIE, 'x-api-key': API_KEY } }));
    }
    await read(await fetch(sc.url + '/s/post', { method: 'POST', headers: credentials, body: 'x' }));
    // Refused at the admin and peer ports: bad tokens, forged signatures.
    await read(await fetch(`${sc.adminUrl}/purge`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}x` }, body: '{"url":"/s/plain"}' }));
    await read(await fetch(`${sc.adminUrl}/purge`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, body: '{"nonsense":true}' }));
    await read(await fetch(`${sc.peerUrl}/s/plain`, { headers: { ...credentials, 'x-sidecache-signature': 'AAAA', 'x-sidecache-cluster': cluster } }));
    seen.push(JSON.stringify((await purge(sc, { url: '/s/plain' })).json));
    for (const p of ['/metrics', '/cluster', '/cluster/members', '/readyz']) await read(await fetch(sc.adminUrl + p));
    await read(await fetch(`${sc.adminUrl}/inspect?url=/s/vary`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }));
  }
  // Trouble: NATS gone; purges fail with a message, logs say why.
  await nats.stop();
  await waitFor(async () => (await purge(sidecars[0]!, { url: '/s/plain' })).status === 503, 30_000, 'a purge refused while NATS is down');
  for (const sc of sidecars) seen.push(JSON.stringify((await purge(sc, { url: '/s/plain' })).json));
  for (const sc of sidecars) await read(await fetch(`${sc.adminUrl}/metrics`));

  t.same(leaks(seen.join('\n')), [], 'no secret in any response');
  for (const sc of sidecars) t.same(leaks(sc.output()), [], `no secret in the log of ${sc.id}`);
  t.ok(sidecars.every((sc) => sc.output().includes('"target":"/s/q?api_key=&x="')), 'the access log has the request, without the key');
});

t.test('secrets - start-up refusals name the variable, never a credential in its value', async (t) => {
  const r = await runToExit({ SIDECACHE_UPSTREAM: `http://user:${NATS_PASSWORD}@127.0.0.1:9` });
  t.equal(r.code, 2);
  t.match(r.output, /SIDECACHE_UPSTREAM/);
  t.same(leaks(r.output), [], 'the upstream password is not echoed');
  const n = await runToExit({ SIDECACHE_UPSTREAM: 'http://127.0.0.1:9', SIDECACHE_NATS_URL: `nats://u:${NATS_PASSWORD}@127.0.0.1:9 bad`, SIDECACHE_CLUSTER_SECRET: CLUSTER_SECRET });
  t.equal(n.code, 2);
  t.match(n.output, /SIDECACHE_NATS_URL/);
  t.same(leaks(n.output), [], 'the NATS password is not echoed');
  const s = await runToExit({ SIDECACHE_UPSTREAM: 'http://127.0.0.1:9', SIDECACHE_ADMIN_TOKEN: 'short' });
  t.equal(s.code, 2);
  t.notMatch(s.output, /short/, 'a rejected token is not echoed');
});
