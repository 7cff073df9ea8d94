// A standalone sidecar in reverse mode: what RFC 9111 lets it store, when it serves from
// cache, revalidates or serves stale, and what each client sees. One origin and one sidecar
// are shared by the whole file; each test uses its own paths.
import { createHash } from 'node:crypto';
import t from 'tap';
import { httpCall } from '../helpers/raw-http.js';
import { startSidecar, waitFor } from '../../support/sidecar.js';
import { startOrigin } from '../../support/origin.js';
import { startStandalone } from '../../support/standalone.js';

const MAX_ENTRY = 64 * 1024;

const { origin, sc } = await startStandalone(t, { SIDECACHE_MAX_ENTRY_BYTES: '64KiB' });

const get = (path: string, headers: Record<string, string> = {}, method = 'GET', signal?: AbortSignal) =>
  fetch(`${sc.url}${path}`, { method, headers, ...(signal === undefined ? {} : { signal }) });
/** Requests the sidecar has finished, by outcome, from /metrics. */
async function outcomeCount(outcome: string): Promise<number> {
  const text = await (await fetch(`${sc.adminUrl}/metrics`)).text();
  const m = new RegExp(`^sidecache_requests_total\\{outcome="${outcome}"\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}
const text = async (path: string, headers: Record<string, string> = {}) => {
  const r = await get(path, headers);
  return { r, body: await r.text(), status: r.headers.get('cache-status') ?? '' };
};
/** The entry's real TTL runs out: a condition on the clock, for max-age=1 responses. */
const passed = (since: number, ms: number) => waitFor(() => Date.now() >= since + ms, ms + 5_000, `${ms} ms to pass`);
/** Requests the origin saw for a path, in order. */
const seen = (path: string) => origin.requests.filter((r) => r.url === path);

t.test('freshness - max-age: the second request is a hit with an Age', async (t) => {
  const a = await text('/fresh/max-age');
  t.match(a.status, /fwd=uri-miss; fwd-status=200; stored/);
  const b = await text('/fresh/max-age');
  t.match(b.status, /^sidecache; hit/);
  t.equal(b.body, a.body);
  t.match(b.r.headers.get('age'), /^\d+$/);
  t.equal(origin.count('/fresh/max-age'), 1);
});

t.test('freshness - s-maxage beats max-age in a shared cache', async (t) => {
  origin.route('/fresh/s-maxage', (_req, res, n) => {
    res.writeHead(200, { 'cache-control': 'max-age=0, s-maxage=60' });
    res.end(`s #${n}`);
  });
  await text('/fresh/s-maxage');
  const b = await text('/fresh/s-maxage');
  t.equal(b.body, 's #1');
  t.match(b.status, /hit/);
  t.equal(origin.count('/fresh/s-maxage'), 1);
});

t.test('freshness - private and no-store responses are never stored', async (t) => {
  for (const cc of ['private, max-age=60', 'no-store, max-age=60']) {
    const path = `/fresh/${cc.split(',')[0]}`;
    origin.route(path, (_req, res, n) => {
      res.writeHead(200, { 'cache-control': cc });
      res.end(`${cc} #${n}`);
    });
    const a = await text(path);
    t.notMatch(a.status, /stored/, `${cc}: not stored`);
    const b = await text(path);
    t.equal(b.body, `${cc} #2`, `${cc}: fetched again`);
    t.notMatch(b.status, /hit/);
    t.equal(origin.count(path), 2);
  }
});

t.test('freshness - a no-cache response is revalidated on every request', async (t) => {
  origin.route('/fresh/no-cache', (req, res, n) => {
    if (req.headers['if-none-match'] === '"nc"') {
      res.writeHead(304, { etag: '"nc"', 'cache-control': 'no-cache' });
      res.end();
      return;
    }
    res.writeHead(200, { 'cache-control': 'no-cache', etag: '"nc"' });
    res.end(`no-cache #${n}`);
  });
  for (let i = 0; i < 3; i++) {
    const r = await text('/fresh/no-cache');
    t.equal(r.r.status, 200);
    t.equal(r.body, 'no-cache #1', 'the stored body, validated');
    if (i > 0) t.match(r.status, /fwd=stale; fwd-status=304/);
  }
  t.equal(origin.count('/fresh/no-cache'), 3, 'every request went to the origin');
  t.same(seen('/fresh/no-cache').map((r) => r.headers['if-none-match']), [undefined, '"nc"', '"nc"']);
});

t.test('freshness - Expires in the future makes a hit', async (t) => {
  origin.route('/fresh/expires', (_req, res, n) => {
    res.writeHead(200, { expires: new Date(Date.now() + 60_000).toUTCString() });
    res.end(`expires #${n}`);
  });
  await text('/fresh/expires');
  const b = await text('/fresh/expires');
  t.equal(b.body, 'expires #1');
  t.equal(origin.count('/fresh/expires'), 1);
});

t.test('freshness - heuristic lifetime from Last-Modified', async (t) => {
  origin.route('/fresh/heuristic', (_req, res, n) => {
    res.writeHead(200, { 'last-modified': new Date(Date.now() - 10 * 24 * 3600_000).toUTCString() });
    res.end(`heuristic #${n}`);
  });
  await text('/fresh/heuristic');
  const b = await text('/fresh/heuristic');
  t.equal(b.body, 'heuristic #1');
  t.match(b.status, /hit/);
  t.equal(origin.count('/fresh/heuristic'), 1);
});

t.test('freshness - no freshness and no validators: not stored', async (t) => {
  origin.route('/fresh/none', (_req, res, n) => { res.writeHead(200); res.end(`none #${n}`); });
  await text('/fresh/none');
  t.equal((await text('/fresh/none')).body, 'none #2');
});

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

t.test('vary - two Accept-Encoding variants are stored separately', async (t) => {
  origin.route('/vary/ae', (req, res, n) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', vary: 'Accept-Encoding' });
    res.end(`${req.headers['accept-encoding']} #${n}`);
  });
  const g1 = await text('/vary/ae', { 'accept-encoding': 'gzip' });
  const b1 = await text('/vary/ae', { 'accept-encoding': 'br' });
  const g2 = await text('/vary/ae', { 'accept-encoding': 'gzip' });
  const b2 = await text('/vary/ae', { 'accept-encoding': 'br' });
  t.equal(g1.body, 'gzip #1');
  t.equal(b1.body, 'br #2');
  t.equal(g2.body, 'gzip #1');
  t.equal(b2.body, 'br #2');
  t.match(g2.status, /hit/);
  t.match(b2.status, /hit/);
  t.equal(origin.count('/vary/ae'), 2);
});

t.test('vary - Vary: * is never served from cache', async (t) => {
  origin.route('/vary/star', (_req, res, n) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', vary: '*' });
    res.end(`star #${n}`);
  });
  t.equal((await text('/vary/star')).body, 'star #1');
  t.equal((await text('/vary/star')).body, 'star #2');
  t.equal(origin.count('/vary/star'), 2);
});

t.test('vary - a Vary list containing * is never served from cache', async (t) => {
  origin.route('/vary/list-star', (_req, res, n) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', vary: 'Accept-Encoding, *' });
    res.end(`list-star #${n}`);
  });
  t.equal((await text('/vary/list-star')).body, 'list-star #1');
  t.equal((await text('/vary/list-star')).body, 'list-star #2');
});

t.test('freshness - repeated Cache-Control and Vary field lines are combined', async (t) => {
  origin.route('/fresh/repeated', (req, res, n) => {
    res.setHeader('cache-control', ['public', 'max-age=60']);
    res.setHeader('vary', ['Accept-Encoding', 'Accept-Language']);
    res.writeHead(200);
    res.end(`${req.headers['accept-language']} #${n}`);
  });
  const a = await text('/fresh/repeated', { 'accept-language': 'en' });
  t.equal(a.r.status, 200);
  t.equal(a.body, 'en #1');
  t.match(a.status, /stored/);
  t.equal((await text('/fresh/repeated', { 'accept-language': 'en' })).body, 'en #1', 'a hit');
  t.equal((await text('/fresh/repeated', { 'accept-language': 'fr' })).body, 'fr #2', 'the second Vary line counts');
  t.equal(origin.count('/fresh/repeated'), 2);
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

t.test('key - percent-encoding of unreserved characters does not split the cache', async (t) => {
  await text('/norm/%7Euser');
  const b = await text('/norm/~user');
  t.match(b.status, /hit/);
  t.equal(b.body, 'body of /norm/~user #1\n', 'the origin was asked for the canonical target');
});

t.test('privacy - a Set-Cookie response is never replayed to another client', async (t) => {
  origin.route('/cookie', (_req, res, n) => {
    res.writeHead(200, { 'cache-control': 'public, max-age=60', 'set-cookie': `session=user${n}` });
    res.end(`cookie #${n}`);
  });
  const a = await get('/cookie');
  t.equal(a.headers.get('set-cookie'), 'session=user1');
  await a.text();
  const b = await get('/cookie');
  t.equal(b.headers.get('set-cookie'), 'session=user2', 'the second client gets its own cookie');
  t.equal(await b.text(), 'cookie #2');
  t.equal(origin.count('/cookie'), 2);
});

t.test('privacy - the answer to a request with Authorization is passed, not stored, unless it says it may be shared (§3.5)', async (t) => {
  for (const cc of ['max-age=60', 'max-age=60, proxy-revalidate', 'no-cache, max-age=60']) {
    const path = `/auth/${encodeURIComponent(cc)}`;
    origin.route(path, (req, res, n) => {
      res.writeHead(200, { 'cache-control': cc, etag: `"${n}"` });
      res.end(`${req.headers.authorization ?? 'anonymous'} #${n}`);
    });
    t.equal((await text(path, { authorization: 'Bearer alice' })).body, 'Bearer alice #1', cc);
    const bob = await text(path, { authorization: 'Bearer bob' });
    t.equal(bob.body, 'Bearer bob #2', `${cc}: bob gets his own answer`);
    const anon = await text(path);
    t.equal(anon.body, 'anonymous #3', `${cc}: no authorised answer reaches another client`);
    t.match(bob.status, /detail="not storable"/, 'passed as not storable');
    t.equal(seen(path)[0]?.headers.authorization, 'Bearer alice', 'Authorization forwarded');
  }
});

t.test('privacy - a request with Authorization is not answered from an anonymous answer that does not say it may be shared (§3.5)', async (t) => {
  // An origin that personalises by Authorization without Vary: the signed-in user must not get
  // the anonymous page another client caused to be stored.
  origin.route('/auth-personal', (req, res, n) => {
    res.writeHead(200, { 'cache-control': 'max-age=60' });
    res.end(`${req.headers.authorization === undefined ? 'signed out' : 'signed in'} #${n}`);
  });
  t.equal((await text('/auth-personal')).body, 'signed out #1');
  t.match((await text('/auth-personal')).status, /hit/, 'stored for anonymous clients');
  const alice = await text('/auth-personal', { authorization: 'Bearer alice' });
  t.equal(alice.body, 'signed in #2', 'the signed-in request went to the origin');
  t.equal((await text('/auth-personal')).body, 'signed out #1', 'and the anonymous answer is still served to anonymous clients');
});

t.test('privacy - an answer to a request with Authorization is shared when public, s-maxage or must-revalidate say so (§3.5)', async (t) => {
  for (const cc of ['public, max-age=60', 's-maxage=60', 'max-age=60, must-revalidate']) {
    const path = `/auth-shared/${encodeURIComponent(cc)}`;
    origin.route(path, (_req, res, n) => {
      res.writeHead(200, { 'cache-control': cc });
      res.end(`the same for everyone #${n}`);
    });
    const alice = await text(path, { authorization: 'Bearer alice' });
    t.match(alice.status, /stored/, `${cc}: stored`);
    const anon = await text(path);
    t.equal(anon.body, 'the same for everyone #1', `${cc}: shared`);
    t.match(anon.status, /hit/);
    const bob = await text(path, { authorization: 'Bearer bob' });
    t.equal(bob.body, 'the same for everyone #1', `${cc}: a request with Authorization is answered from the cache too (§4)`);
    t.equal(origin.count(path), 1);
  }
  // Vary: Authorization keeps each credential's answer to that credential.
  origin.route('/auth-vary', (req, res, n) => {
    res.writeHead(200, { 'cache-control': 'public, max-age=60', vary: 'Authorization' });
    res.end(`${req.headers.authorization ?? 'anonymous'} #${n}`);
  });
  t.equal((await text('/auth-vary', { authorization: 'Bearer alice' })).body, 'Bearer alice #1');
  t.equal((await text('/auth-vary', { authorization: 'Bearer bob' })).body, 'Bearer bob #2');
  t.equal((await text('/auth-vary')).body, 'anonymous #3');
  const again = await text('/auth-vary', { authorization: 'Bearer alice' });
  t.equal(again.body, 'Bearer alice #1');
  t.match(again.status, /hit/);
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

t.test('HEAD - served from a cached GET: no body, the same headers', async (t) => {
  const g = await get('/head/a');
  const body = await g.text();
  const h = await get('/head/a', {}, 'HEAD');
  t.equal(h.status, 200);
  t.equal(await h.text(), '');
  t.equal(h.headers.get('etag'), g.headers.get('etag'));
  t.equal(h.headers.get('content-length'), String(Buffer.byteLength(body)));
  t.equal(h.headers.get('content-type'), 'text/plain');
  t.match(h.headers.get('cache-status'), /hit/);
  t.equal(origin.count('/head/a'), 1);
});

t.test('HEAD - a HEAD miss fills the cache for the next GET', async (t) => {
  const h = await get('/head/b', {}, 'HEAD');
  t.equal(h.status, 200);
  t.equal(await h.text(), '');
  const g = await text('/head/b');
  t.equal(g.body, 'body of /head/b #1\n');
  t.match(g.status, /hit/);
  t.equal(origin.count('/head/b'), 1);
});

t.test('range - answered from a cached object: 206, several ranges 200, unsatisfiable 416', async (t) => {
  origin.route('/range/obj', (_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' });
    res.end('0123456789abcdefghij');
  });
  await text('/range/obj');
  const p = await text('/range/obj', { range: 'bytes=0-4' });
  t.equal(p.r.status, 206);
  t.equal(p.body, '01234');
  t.equal(p.r.headers.get('content-range'), 'bytes 0-4/20');
  t.equal(p.r.headers.get('content-length'), '5');
  const s = await text('/range/obj', { range: 'bytes=-3' });
  t.equal(s.body, 'hij');
  const m = await text('/range/obj', { range: 'bytes=0-1,5-6' });
  t.equal(m.r.status, 200, 'several ranges: the whole object');
  t.equal(m.body, '0123456789abcdefghij');
  const u = await text('/range/obj', { range: 'bytes=50-' });
  t.equal(u.r.status, 416);
  t.equal(u.r.headers.get('content-range'), 'bytes */20');
  t.equal(origin.count('/range/obj'), 1, 'all from the cache');
});

t.test('range - a Range request on a miss passes through and is not stored', async (t) => {
  origin.route('/range/miss', (req, res) => {
    if (req.headers.range === 'bytes=0-2') {
      res.writeHead(206, { 'cache-control': 'max-age=60', 'content-range': 'bytes 0-2/10' });
      res.end('abc');
      return;
    }
    res.writeHead(200, { 'cache-control': 'max-age=60' });
    res.end('abcdefghij');
  });
  const p = await text('/range/miss', { range: 'bytes=0-2' });
  t.equal(p.r.status, 206);
  t.equal(p.body, 'abc');
  t.equal(p.r.headers.get('content-range'), 'bytes 0-2/10');
  t.equal(seen('/range/miss')[0]?.headers.range, 'bytes=0-2', 'origin saw the Range');
  const full = await text('/range/miss');
  t.equal(full.body, 'abcdefghij', 'the partial answer was not stored');
  t.equal(origin.count('/range/miss'), 2);
});

t.test('single-flight - a non-shareable response: concurrent requests each get their own fetch', async (t) => {
  origin.route('/sf/private', (_req, res, n) => {
    setTimeout(() => {
      res.writeHead(200, { 'cache-control': 'private, max-age=60' });
      res.end(`private #${n}`);
    }, 200);
  });
  const N = 6;
  const bodies = await Promise.all(Array.from({ length: N }, () => get('/sf/private').then((r) => r.text())));
  t.equal(new Set(bodies).size, N, 'every client got its own response');
  t.equal(origin.count('/sf/private'), N);
});

t.test('single-flight - a waiter still gets every byte when the client that started the fetch goes away', async (t) => {
  const total = 2 * 1024 * 1024;
  const data = pattern(total, 3);
  let release: (() => void) | undefined;
  origin.route('/sf/abandoned', (_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60' }); // chunked: shareable until it outgrows the entry limit
    res.write(data.subarray(0, 1024));
    release = () => {
      let off = 1024;
      const pump = () => {
        while (off < total) {
          const ok = res.write(data.subarray(off, off + 65_536));
          off += 65_536;
          if (!ok) { res.once('drain', pump); return; }
        }
        res.end();
      };
      pump();
    };
  });
  const ac = new AbortController();
  const leader = await get('/sf/abandoned', {}, 'GET', ac.signal);
  const waiter = await get('/sf/abandoned');
  t.match(waiter.headers.get('cache-status'), /collapsed/, 'the second request joined the first');
  const missesBefore = await outcomeCount('miss');
  ac.abort();
  await leader.body?.cancel().catch(() => {});
  // The sidecar has seen the leader go when it counts its request as finished.
  await waitFor(async () => (await outcomeCount('miss')) > missesBefore, 5_000, 'the leader to be gone');
  release!();
  const body = await Promise.race([
    waiter.arrayBuffer(),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error('waiter stalled')), 10_000)),
  ]);
  t.equal(body.byteLength, total);
  t.equal(sha(body), sha(data));
  t.equal(origin.count('/sf/abandoned'), 1);
});

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}
const sha = (b: Buffer | ArrayBuffer) => createHash('sha256').update(Buffer.from(b as ArrayBuffer)).digest('hex');

t.test('large bodies - over the entry limit: streamed whole, not stored', async (t) => {
  const big = pattern(5 * MAX_ENTRY + 123, 7);
  origin.route('/large/cl', (_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': big.length });
    res.end(big);
  });
  origin.route('/large/chunked', (_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60' });
    for (let i = 0; i < big.length; i += 10_000) res.write(big.subarray(i, i + 10_000));
    res.end();
  });
  for (const path of ['/large/cl', '/large/chunked']) {
    for (let i = 1; i <= 2; i++) {
      const r = await get(path);
      const body = Buffer.from(await r.arrayBuffer());
      t.equal(body.length, big.length, `${path} #${i}: every byte`);
      t.equal(sha(body), sha(big), `${path} #${i}: the same bytes`);
      t.notMatch(r.headers.get('cache-status'), path === '/large/cl' ? /stored|hit/ : /hit/);
    }
    t.equal(origin.count(path), 2, `${path}: second request went to the origin`);
  }
});

t.test('large bodies - under the entry limit: stored', async (t) => {
  const small = pattern(MAX_ENTRY - 1024, 9);
  origin.route('/large/small', (_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60' });
    res.end(small);
  });
  for (let i = 0; i < 2; i++) t.equal(sha(await (await get('/large/small')).arrayBuffer()), sha(small));
  t.equal(origin.count('/large/small'), 1);
});

t.test('cache-status - detail parameters on by default, left out when disabled', async (t) => {
  await text('/status/a');
  const hit = await text('/status/a');
  t.match(hit.status, new RegExp(`^sidecache; hit; ttl=\\d+; node="${sc.id}"; epoch=\\d+; seq=\\d+$`));
  const sc2 = await startSidecar({ env: { SIDECACHE_UPSTREAM: origin.url, SIDECACHE_CACHE_STATUS_DETAIL: 'false' } });
  t.teardown(() => sc2.stop());
  const miss = await fetch(`${sc2.url}/status/b`);
  await miss.text();
  t.equal(miss.headers.get('cache-status'), 'sidecache; fwd=uri-miss; fwd-status=200; stored');
  const hit2 = await fetch(`${sc2.url}/status/b`);
  await hit2.text();
  t.equal(hit2.headers.get('cache-status'), 'sidecache; hit');
  origin.route('/status/private', (_req, res) => { res.writeHead(200, { 'cache-control': 'private' }); res.end('p'); });
  const p = await fetch(`${sc2.url}/status/private`);
  await p.text();
  t.equal(p.headers.get('cache-status'), 'sidecache; fwd=uri-miss; fwd-status=200', 'no detail="not storable"');
});
