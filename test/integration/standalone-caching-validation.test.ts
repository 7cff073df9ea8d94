// A standalone sidecar in reverse mode, revalidation: a stale entry revalidated with its
// validators, stale-while-revalidate, stale-if-error, a client's own validators answered with
// 304, and a client's Cache-Control. One origin and one sidecar are shared by the whole file;
// each test uses its own paths.
import t from 'tap';
import { httpCall } from '../helpers/raw-http.js';
import { startSidecar, waitFor } from '../../support/sidecar.js';
import { startOrigin } from '../../support/origin.js';
import { startStandalone } from '../../support/standalone.js';
import { standaloneRequests } from '../helpers/standalone-requests.js';

const { origin, sc } = await startStandalone(t);
const { text, passed, seen } = standaloneRequests(origin, sc);

t.test('revalidation - a stale entry with an ETag is revalidated; 304 updates its headers', async (t) => {
  origin.route('/reval/etag', (req, res, n) => {
    const h = { 'cache-control': 'max-age=1', etag: '"e1"', 'x-version': String(n) };
    if (req.headers['if-none-match'] === '"e1"') {
      res.writeHead(304, { ...h, 'x-added': 'on-304' });
      res.end();
      return;
    }
    res.writeHead(200, h);
    res.end(`etag body #${n}`);
  });
  const a = await text('/reval/etag');
  const filled = Date.now();
  t.equal(a.r.headers.get('x-version'), '1');
  await passed(filled, 1_100);
  const b = await text('/reval/etag');
  t.equal(b.r.status, 200);
  t.equal(b.body, 'etag body #1', 'the stored body');
  t.match(b.status, /fwd=stale; fwd-status=304/);
  t.equal(b.r.headers.get('x-version'), '2', 'header updated from the 304');
  t.equal(b.r.headers.get('x-added'), 'on-304', 'a header only on the 304 is added (RFC 9111 §3.2)');
  t.equal(seen('/reval/etag')[1]?.headers['if-none-match'], '"e1"', 'origin saw a conditional request');
  const c = await text('/reval/etag');
  t.match(c.status, /hit/, 'fresh again after the 304');
  t.equal(c.r.headers.get('x-version'), '2');
  t.equal(origin.count('/reval/etag'), 2);
});

t.test('revalidation - Last-Modified validator: If-Modified-Since, 304', async (t) => {
  const lm = new Date(Date.now() - 3600_000).toUTCString();
  origin.route('/reval/lm', (req, res, n) => {
    if (req.headers['if-modified-since'] === lm) {
      res.writeHead(304, { 'cache-control': 'max-age=1', 'last-modified': lm });
      res.end();
      return;
    }
    res.writeHead(200, { 'cache-control': 'max-age=1', 'last-modified': lm });
    res.end(`lm body #${n}`);
  });
  await text('/reval/lm');
  const filled = Date.now();
  await passed(filled, 1_100);
  const b = await text('/reval/lm');
  t.equal(b.body, 'lm body #1');
  t.match(b.status, /fwd=stale; fwd-status=304/);
  t.equal(seen('/reval/lm')[1]?.headers['if-modified-since'], lm);
  t.equal(seen('/reval/lm')[1]?.headers['if-none-match'], undefined);
});

t.test('revalidation - a 200 on revalidation replaces the entry', async (t) => {
  origin.route('/reval/changed', (_req, res, n) => {
    res.writeHead(200, { 'cache-control': 'max-age=1', etag: `"c${n}"` });
    res.end(`changed #${n}`);
  });
  await text('/reval/changed');
  await passed(Date.now(), 1_100);
  const oic = await text('/reval/changed', { 'cache-control': 'only-if-cached' });
  t.equal(oic.r.status, 504, 'only-if-cached never contacts the origin for a stale entry');
  t.equal(origin.count('/reval/changed'), 1);
  const b = await text('/reval/changed');
  t.equal(b.body, 'changed #2');
  t.match(b.status, /fwd=stale; fwd-status=200; stored/);
  t.equal((await text('/reval/changed')).body, 'changed #2', 'and the new body is served from cache');
  t.equal(origin.count('/reval/changed'), 2);
});

t.test('stale-while-revalidate - served stale at once, refreshed in the background', async (t) => {
  let release: (() => void) | undefined;
  origin.route('/swr', (_req, res, n) => {
    const send = () => {
      res.writeHead(200, { 'cache-control': 'max-age=1, stale-while-revalidate=30', etag: `"s${n}"` });
      res.end(`swr #${n}`);
    };
    if (n === 1) send();
    else release = send; // held until the test has seen the stale answer
  });
  await text('/swr');
  await passed(Date.now(), 1_100);
  const b = await text('/swr');
  t.equal(b.body, 'swr #1', 'the stale body, while the origin has not answered');
  t.match(b.status, /^sidecache; hit/);
  t.match(b.status, /stale-while-revalidate/);
  await waitFor(() => release !== undefined, 5_000, 'the background revalidation');
  t.equal(seen('/swr')[1]?.headers['if-none-match'], '"s1"', 'conditional background request');
  release!();
  await waitFor(async () => (await text('/swr')).body === 'swr #2', 5_000, 'the refreshed entry');
  t.equal(origin.count('/swr'), 2, 'one background fetch');
});

t.test('stale-if-error - origin 500: stale served within the window, the error after it', async (t) => {
  let failing = false;
  origin.route('/sie/500', (_req, res, n) => {
    if (failing) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('origin broke');
      return;
    }
    res.writeHead(200, { 'cache-control': 'max-age=1, stale-if-error=1', etag: '"sie"' });
    res.end(`sie #${n}`);
  });
  await text('/sie/500');
  const filled = Date.now();
  failing = true;
  await passed(filled, 1_100);
  const b = await text('/sie/500');
  t.equal(b.r.status, 200);
  t.equal(b.body, 'sie #1');
  t.match(b.status, /fwd=stale; fwd-status=500/);
  await passed(filled, 2_200);
  const c = await text('/sie/500');
  t.equal(c.r.status, 500, 'window over: the error');
  t.equal(c.body, 'origin broke');
});

t.test('stale-if-error - origin down: stale within the window, 502 after it', async (t) => {
  const o2 = await startOrigin({
    '/sie/down': (_req, res, n) => {
      res.writeHead(200, { 'cache-control': 'max-age=1, stale-if-error=1' });
      res.end(`down #${n}`);
    },
  });
  const sc2 = await startSidecar({ env: { SIDECACHE_UPSTREAM: o2.url, SIDECACHE_CONNECT_TIMEOUT: '1s' } });
  t.teardown(() => sc2.stop());
  t.equal(await (await fetch(`${sc2.url}/sie/down`)).text(), 'down #1');
  const filled = Date.now();
  await o2.close();
  await passed(filled, 1_100);
  const b = await fetch(`${sc2.url}/sie/down`);
  t.equal(b.status, 200);
  t.equal(await b.text(), 'down #1');
  t.match(b.headers.get('cache-status'), /stale-if-error/);
  await passed(filled, 2_200);
  const c = await fetch(`${sc2.url}/sie/down`);
  t.equal(c.status, 502);
  await c.text();
});

t.test('conditional - a client validator matching a fresh entry gets 304 from the cache', async (t) => {
  // node:http, not fetch: fetch adds Cache-Control: no-cache to conditional requests.
  const lm = new Date(Date.now() - 60_000).toUTCString();
  origin.route('/cond/a', (_req, res, n) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', etag: 'W/"c1"', 'last-modified': lm, 'content-type': 'text/plain' });
    res.end(`cond #${n}`);
  });
  await text('/cond/a');
  const inm = await httpCall(`${sc.url}/cond/a`, { headers: { 'if-none-match': '"x", W/"c1"' } });
  t.equal(inm.status, 304);
  t.equal(inm.body.length, 0);
  t.equal(inm.headers.etag, 'W/"c1"');
  t.match(inm.headers['cache-status'], /hit/);
  const ims = await httpCall(`${sc.url}/cond/a`, { headers: { 'if-modified-since': new Date().toUTCString() } });
  t.equal(ims.status, 304);
  const older = await httpCall(`${sc.url}/cond/a`, { headers: { 'if-modified-since': new Date(Date.now() - 3600_000).toUTCString() } });
  t.equal(older.status, 200, 'modified since then');
  const other = await httpCall(`${sc.url}/cond/a`, { headers: { 'if-none-match': '"other"' } });
  t.equal(other.status, 200);
  t.equal(other.body.toString(), 'cond #1');
  t.equal(origin.count('/cond/a'), 1);
});
t.test('client cache-control - no-cache and max-age=0 force revalidation; Pragma too', async (t) => {
  origin.route('/client/cc', (req, res, n) => {
    if (req.headers['if-none-match'] === '"cc"') { res.writeHead(304, { etag: '"cc"', 'cache-control': 'max-age=60' }); res.end(); return; }
    res.writeHead(200, { 'cache-control': 'max-age=60', etag: '"cc"' });
    res.end(`cc #${n}`);
  });
  await text('/client/cc');
  t.match((await text('/client/cc')).status, /hit/);
  let n = 1;
  const forcing: Array<Record<string, string>> = [{ 'cache-control': 'no-cache' }, { 'cache-control': 'max-age=0' }, { pragma: 'no-cache' }];
  for (const h of forcing) {
    const r = await text('/client/cc', h);
    n++;
    t.equal(r.body, 'cc #1', JSON.stringify(h));
    t.match(r.status, /fwd=stale; fwd-status=304/, JSON.stringify(h));
    t.equal(origin.count('/client/cc'), n, `${JSON.stringify(h)}: went to the origin`);
    t.equal(seen('/client/cc')[n - 1]?.headers['if-none-match'], '"cc"');
  }
  t.match((await text('/client/cc', { 'cache-control': 'max-stale=10' })).status, /hit/, 'other directives still hit');
});

t.test('client cache-control - only-if-cached: 504 on a miss, the entry on a hit', async (t) => {
  const miss = await text('/client/oic', { 'cache-control': 'only-if-cached' });
  t.equal(miss.r.status, 504);
  t.equal(origin.count('/client/oic'), 0, 'origin never contacted');
  await text('/client/oic');
  const hit = await text('/client/oic', { 'cache-control': 'only-if-cached' });
  t.equal(hit.r.status, 200);
  t.equal(hit.body, 'body of /client/oic #1\n');
});

t.test('client cache-control - no-store passes through', async (t) => {
  await text('/client/ns', { 'cache-control': 'no-store' });
  await text('/client/ns');
  t.equal(origin.count('/client/ns'), 2, 'the no-store answer was not kept');
});

