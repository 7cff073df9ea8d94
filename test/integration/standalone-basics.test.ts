// A standalone sidecar in reverse mode: hit on the second request, single-flight, purge.
import t from 'tap';
import { startOrigin } from '../../support/origin.js';
import { purge, startSidecar } from '../../support/sidecar.js';

t.test('reverse mode - second request is a hit, purge by url makes it a miss', async (t) => {
  const origin = await startOrigin();
  t.teardown(() => origin.close());
  const sc = await startSidecar({ env: { SIDECACHE_UPSTREAM: origin.url } });
  t.teardown(() => sc.stop());

  const a = await fetch(`${sc.url}/a`);
  t.equal(a.status, 200);
  t.match(a.headers.get('cache-status'), /fwd=uri-miss.*stored/);
  t.equal(await a.text(), 'body of /a #1\n');
  const b = await fetch(`${sc.url}/a`);
  t.match(b.headers.get('cache-status'), /^sidecache; hit/);
  t.equal(await b.text(), 'body of /a #1\n');
  t.equal(origin.count('/a'), 1, 'one origin request for two client requests');

  const p = await purge(sc, { url: '/a' });
  t.equal(p.status, 200);
  t.same(p.json.missing, []);
  t.equal(p.json.acknowledged.length, 1);
  const c = await fetch(`${sc.url}/a`);
  t.equal(await c.text(), 'body of /a #2\n', 'purged: fetched again');
  t.equal(origin.count('/a'), 2);
});

t.test('single-flight - concurrent misses on one key cause one origin request', async (t) => {
  const origin = await startOrigin({
    '/slow': (_req, res, n) => setTimeout(() => {
      res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' });
      res.end(`slow #${n}`);
    }, 300),
  });
  t.teardown(() => origin.close());
  const sc = await startSidecar({ env: { SIDECACHE_UPSTREAM: origin.url } });
  t.teardown(() => sc.stop());
  const bodies = await Promise.all(Array.from({ length: 20 }, () => fetch(`${sc.url}/slow`).then((r) => r.text())));
  t.same(new Set(bodies), new Set(['slow #1']));
  t.equal(origin.count('/slow'), 1);
});
