// The access log of real sidecar processes: one JSON line per request on stdout when
// SIDECACHE_ACCESS_LOG_SAMPLE asks for it (whatever the log level), none by default; query
// values never in it; a sample in between; requests served on the peer port too.
import t from 'tap';
import { clusterEnv, uniqueCluster, waitForRing } from '../../support/cluster.js';
import { startNats } from '../../support/nats-server.js';
import { startOrigin } from '../../support/origin.js';
import { startStandalone } from '../../support/standalone.js';
import { runToExit, startSidecar, waitFor, type SidecarProcess } from '../../support/sidecar.js';

interface AccessLine {
  msg: string; from: string; remote: string; method: string; target: string; status: number; cache: string; bytes: number; ms: number;
  node: string; aborted?: boolean;
}

function accessLines(sc: SidecarProcess): AccessLine[] {
  const out: AccessLine[] = [];
  for (const l of sc.output().split('\n')) {
    if (!l.startsWith('{')) continue;
    const j = JSON.parse(l) as AccessLine;
    if (j.msg === 'access') out.push(j);
  }
  return out;
}

const TOKEN_IN_QUERY = 'qtok-8a61f0c2e9';

t.test('access log - one line per request: method, target, status, Cache-Status outcome, bytes, time; no query values', async (t) => {
  const origin = await startOrigin({
    '/chunked': (_req, res) => {
      res.writeHead(200, { 'cache-control': 'public, max-age=60', 'content-type': 'text/plain' });
      res.write('a'.repeat(1000));
      setTimeout(() => res.end('b'.repeat(234)), 20);
    },
  });
  t.teardown(() => origin.close());
  const { sc } = await startStandalone(t, { SIDECACHE_UPSTREAM: origin.url, SIDECACHE_ACCESS_LOG_SAMPLE: '1', SIDECACHE_LOG_LEVEL: 'error' });
  const target = `/a?token=${TOKEN_IN_QUERY}&q=1`;
  const body = `body of ${target} #1\n`;
  for (let i = 0; i < 2; i++) t.equal(await (await fetch(sc.url + target)).text(), body);
  const head = await fetch(sc.url + target, { method: 'HEAD' });
  await head.arrayBuffer();
  t.equal(await (await fetch(`${sc.url}/w`, { method: 'POST', body: 'data' })).text(), 'body of /w #1\n');
  t.equal((await (await fetch(`${sc.url}/chunked`)).text()).length, 1234);
  await waitFor(() => accessLines(sc).length >= 5, 5_000, 'five access lines');
  const lines = accessLines(sc);
  t.equal(lines.length, 5, 'one per request');
  const [miss, hit, headLine, post, chunked] = lines as [AccessLine, AccessLine, AccessLine, AccessLine, AccessLine];
  t.match(miss, { from: 'client', remote: '127.0.0.1', method: 'GET', target: '/a?token=&q=', status: 200, cache: 'fwd=uri-miss; fwd-status=200; stored', bytes: Buffer.byteLength(body) });
  t.match(hit, { method: 'GET', target: '/a?token=&q=', status: 200, cache: 'hit', bytes: Buffer.byteLength(body) });
  t.match(headLine, { method: 'HEAD', status: 200, cache: 'hit', bytes: 0 });
  t.match(post, { method: 'POST', target: '/w', status: 200, cache: 'fwd=method; fwd-status=200', bytes: 'body of /w #1\n'.length });
  t.match(chunked, { method: 'GET', target: '/chunked', status: 200, cache: 'fwd=uri-miss; fwd-status=200; stored', bytes: 1234 });
  for (const l of lines) {
    t.ok(typeof l.ms === 'number' && l.ms >= 0 && l.ms < 60_000, `time in ms: ${l.ms}`);
    t.equal(l.node, sc.id);
  }
  t.ok(chunked.ms >= 20, 'the time runs to the end of the body');
  t.notOk(sc.output().includes(TOKEN_IN_QUERY), 'a token in the query is not logged');
  t.equal(sc.output().split('\n').filter((l) => l.startsWith('{') && !l.includes('"msg":"access"')).length, 0, 'the log level (error) still holds for the rest');
});

t.test('access log - off by default: no line', async (t) => {
  const { sc } = await startStandalone(t);
  for (let i = 0; i < 3; i++) await (await fetch(`${sc.url}/off`)).text();
  await (await fetch(`${sc.adminUrl}/metrics`)).text();
  t.same(accessLines(sc), []);
});

t.test('access log - a sample rate logs a share of the requests', async (t) => {
  const { sc } = await startStandalone(t, { SIDECACHE_ACCESS_LOG_SAMPLE: '0.5' });
  const N = 200;
  for (let i = 0; i < N; i += 20) await Promise.all(Array.from({ length: 20 }, async () => (await fetch(`${sc.url}/sampled`)).text()));
  // Lines are written in the order responses close: once a later request's line is out (it is
  // sampled too, so ask until one is), every line of the requests before it is.
  for (let i = 0; i < 100 && !accessLines(sc).some((l) => l.target === '/marker'); i++) {
    await (await fetch(`${sc.url}/marker`)).text();
  }
  await waitFor(() => accessLines(sc).some((l) => l.target === '/marker'), 5_000, 'a line for a later request');
  const n = accessLines(sc).filter((l) => l.target === '/sampled').length;
  // Binomial(200, 0.5): outside 40..160 with probability below 1e-17.
  t.ok(n >= 40 && n <= 160, `${n} of ${N} logged`);
});

t.test('access log - requests served on the peer port are logged by the owner, from a peer', async (t) => {
  const nats = await startNats({ nodes: 1 });
  t.teardown(() => nats.stop());
  const origin = await startOrigin();
  t.teardown(() => origin.close());
  const cluster = uniqueCluster();
  const env = clusterEnv({ natsUrls: nats.urls, upstream: origin.url, env: { SIDECACHE_ACCESS_LOG_SAMPLE: '1' } }, cluster);
  const sidecars = await Promise.all([0, 1].map(() => startSidecar({ env })));
  t.teardown(() => Promise.all(sidecars.map((s) => s.kill())));
  await waitForRing(sidecars, 2);
  // Some of these paths are owned by the other member: it serves them on its peer port.
  for (let i = 0; i < 20; i++) await (await fetch(`${sidecars[0]!.url}/peer/${i}?k=${TOKEN_IN_QUERY}`)).text();
  await waitFor(() => accessLines(sidecars[1]!).some((l) => l.from === 'peer'), 5_000, 'a line from the peer port');
  const peerLine = accessLines(sidecars[1]!).find((l) => l.from === 'peer')!;
  t.match(peerLine, { method: 'GET', target: /^\/peer\/\d+\?k=$/, status: 200, cache: 'fwd=uri-miss; fwd-status=200; stored' });
  const forwarded = accessLines(sidecars[0]!).filter((l) => l.target === peerLine.target);
  t.equal(forwarded.length, 1, 'and the member the client asked logs the same request');
  t.match(forwarded[0]!.cache, /^fwd=uri-miss; fwd-status=200; stored/);
  for (const s of sidecars) t.notOk(s.output().includes(TOKEN_IN_QUERY));
});

t.test('access log - a bad sample rate stops start-up naming the variable', async (t) => {
  const r = await runToExit({ SIDECACHE_UPSTREAM: 'http://127.0.0.1:9', SIDECACHE_ACCESS_LOG_SAMPLE: '2' });
  t.equal(r.code, 2);
  t.match(r.output, /SIDECACHE_ACCESS_LOG_SAMPLE: expected a fraction from 0 to 1 \(e\.g\. 0\.01\), got "2"/);
});
