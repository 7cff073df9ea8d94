// Invalidation on a standalone sidecar: the purge API (kinds, soft, errors, auth), unsafe
// methods (RFC 9111 §4.4), and the metrics and health endpoints that report on them.
import t from 'tap';
import { startSidecar, ADMIN_TOKEN, purge, waitFor } from '../../support/sidecar.js';
import { startStandalone } from '../../support/standalone.js';

const { origin, sc } = await startStandalone(t);

async function get(path: string, headers: Record<string, string> = {}, method = 'GET') {
  const r = await fetch(`${sc.url}${path}`, { method, headers });
  return { status: r.status, body: await r.text(), cacheStatus: r.headers.get('cache-status') ?? '', headers: r.headers };
}
const isHit = async (path: string, headers: Record<string, string> = {}) => /^sidecache; hit/.test((await get(path, headers)).cacheStatus);
const gets = (path: string) => origin.requests.filter((r) => r.url === path && r.method === 'GET').length;

/** Vary on Accept-Encoding; tags from the query: ?sk=a+b (Surrogate-Key), ?ct=c,d (Cache-Tag). */
function taggedRoute(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, n: number): void {
  const u = new URL(req.url!, 'http://x');
  const h: Record<string, string> = { 'cache-control': 'max-age=60', vary: 'Accept-Encoding', etag: `"${n}"` };
  if (u.searchParams.has('sk')) h['surrogate-key'] = u.searchParams.get('sk')!;
  if (u.searchParams.has('ct')) h['cache-tag'] = u.searchParams.get('ct')!;
  if (req.headers['if-none-match'] === `"${n - 1}"` && u.pathname.startsWith('/p/soft')) {
    res.writeHead(304, { etag: `"${n - 1}"`, 'cache-control': 'max-age=60' });
    res.end();
    return;
  }
  res.writeHead(200, h);
  res.end(`${req.url} ${req.headers['accept-encoding'] ?? ''} #${n}`);
}

t.test('purge - by url: every Vary variant and HEAD go; path and absolute forms', async (t) => {
  origin.route('/p/url', taggedRoute);
  const variants = [{ 'accept-encoding': 'gzip' }, { 'accept-encoding': 'br' }];
  for (const form of ['/p/url', 'http://sidecar.example/p/url', `${origin.url}/p/url`]) {
    for (const v of variants) await get('/p/url', v);
    for (const v of variants) t.ok(await isHit('/p/url', v), `${form}: variant ${v['accept-encoding']} cached`);
    const head = await get('/p/url', variants[0], 'HEAD');
    t.match(head.cacheStatus, /hit/, 'HEAD served from the GET');
    const before = gets('/p/url');
    const p = await purge(sc, { url: form });
    t.equal(p.status, 200, JSON.stringify(p.json));
    t.notOk(await isHit('/p/url', variants[0]), `${form}: HEAD's variant gone`);
    const h2 = await get('/p/url', variants[1], 'HEAD');
    t.notMatch(h2.cacheStatus, /hit/, `${form}: HEAD misses too`);
    t.equal(gets('/p/url'), before + 2, 'both variants fetched again');
  }
});

t.test('purge - by url: a list, and percent-encoding normalised like the key', async (t) => {
  await get('/p/list/a~b');
  await get('/p/list/two');
  t.ok(await isHit('/p/list/a~b'));
  const p = await purge(sc, { url: ['/p/list/a%7Eb', '/p/list/two'] });
  t.equal(p.status, 200);
  t.notOk(await isHit('/p/list/a~b'));
  t.notOk(await isHit('/p/list/two'));
});

t.test('purge - by prefix', async (t) => {
  for (const p of ['/p/pre/a', '/p/pre/b?x=1', '/p/prex', '/p/other']) await get(p);
  const r = await purge(sc, { prefix: '/p/pre/' });
  t.equal(r.status, 200);
  t.notOk(await isHit('/p/pre/a'));
  t.notOk(await isHit('/p/pre/b?x=1'));
  t.ok(await isHit('/p/prex'), 'not under the prefix');
  t.ok(await isHit('/p/other'));
});

t.test('purge - by tags: Surrogate-Key is space-separated, Cache-Tag comma-separated', async (t) => {
  origin.route('/p/tags/*', taggedRoute);
  const sk = '/p/tags/1?sk=alpha%20beta';
  const ct = '/p/tags/2?ct=gamma,%20delta';
  const other = '/p/tags/3?sk=other';
  for (const p of [sk, ct, other]) await get(p);
  for (const p of [sk, ct, other]) t.ok(await isHit(p), `${p} cached`);
  t.equal((await purge(sc, { tags: ['beta'] })).status, 200);
  t.notOk(await isHit(sk), 'second Surrogate-Key token');
  t.ok(await isHit(ct));
  t.equal((await purge(sc, { tags: 'delta' })).status, 200, 'a single tag as a string');
  t.notOk(await isHit(ct), 'second Cache-Tag token, trimmed');
  t.ok(await isHit(other));
  await get(ct);
  t.equal((await purge(sc, { tags: ['gamma', 'nothing'] })).status, 200);
  t.notOk(await isHit(ct), 'first Cache-Tag token');
  t.ok(await isHit(other), 'untagged by these');
});

t.test('purge - all', async (t) => {
  await get('/p/all/a');
  await get('/p/all/b');
  t.ok(await isHit('/p/all/a'));
  const r = await purge(sc, { all: true });
  t.equal(r.status, 200);
  t.notOk(await isHit('/p/all/a'));
  t.notOk(await isHit('/p/all/b'));
  t.ok(await isHit('/p/all/a'), 'cached again afterwards');
});

t.test('purge - soft: the entry is kept and revalidated (conditional request, 304)', async (t) => {
  origin.route('/p/soft', taggedRoute);
  const a = await get('/p/soft');
  t.ok(await isHit('/p/soft'));
  const r = await purge(sc, { url: '/p/soft', soft: true });
  t.equal(r.status, 200);
  const b = await get('/p/soft');
  t.equal(b.body, a.body, 'the kept body');
  t.match(b.cacheStatus, /fwd=stale; fwd-status=304/);
  const reqs = origin.requests.filter((q) => q.url === '/p/soft');
  t.equal(reqs.length, 2);
  t.equal(reqs[1]?.headers['if-none-match'], '"1"', 'origin saw a conditional request');
  t.ok(await isHit('/p/soft'), 'fresh again');
});

t.test('purge - soft by prefix marks stale without dropping', async (t) => {
  origin.route('/p/softpre/*', taggedRoute);
  await get('/p/softpre/x');
  t.equal((await purge(sc, { prefix: '/p/softpre/', soft: true })).status, 200);
  const b = await get('/p/softpre/x');
  t.match(b.cacheStatus, /fwd=stale/);
  t.equal(origin.requests.filter((q) => q.url === '/p/softpre/x')[1]?.headers['if-none-match'], '"1"');
});

t.test('purge - no resurrection: a fetch in flight during a purge is not stored, and later requests do not join it', async (t) => {
  const held: Array<() => void> = [];
  origin.route('/p/race', (_req, res, n) => {
    held.push(() => {
      res.writeHead(200, { 'cache-control': 'max-age=60' });
      res.end(`race #${n}`);
    });
  });
  const first = get('/p/race');
  await waitFor(() => held.length === 1, 5_000, 'the first fetch to reach the origin');
  t.equal((await purge(sc, { url: '/p/race' })).status, 200);
  const second = get('/p/race');
  await waitFor(() => held.length === 2, 5_000, 'a new fetch after the purge');
  held[0]!();
  t.equal((await first).body, 'race #1', 'the first client gets its answer');
  held[1]!();
  t.equal((await second).body, 'race #2', 'the request after the purge got a fetch of its own');
  const third = await get('/p/race');
  t.equal(third.body, 'race #2', 'only the fetch that began after the purge was stored');
  t.match(third.cacheStatus, /hit/);
  t.equal(gets('/p/race'), 2);
});

t.test('purge - the answer carries seq, acknowledged and missing', async (t) => {
  const a = await purge(sc, { url: '/p/answer' });
  const b = await purge(sc, { url: '/p/answer' });
  t.equal(a.status, 200);
  t.type(a.json.seq, 'number');
  t.ok(b.json.seq > a.json.seq, 'seq increases');
  t.same(a.json.acknowledged, [sc.id]);
  t.same(a.json.missing, []);
});

t.test('purge - bad requests get 400 with a reason', async (t) => {
  const cases: Array<[string, string | object, RegExp]> = [
    ['bad JSON', '{"url": ', /not JSON/],
    ['not an object', '[1]', /object/],
    ['unknown field', { url: '/x', hard: true }, /unknown field "hard"/],
    ['two kinds', { url: '/x', prefix: '/y' }, /exactly one/],
    ['no kind', {}, /exactly one/],
    ['bad url', { url: 'not a url' }, /"url"/],
    ['empty url list', { url: [] }, /"url"/],
    ['bad tags', { tags: [1] }, /"tags"/],
    ['all false', { all: false }, /"all" must be true/],
    ['soft not boolean', { all: true, soft: 'yes' }, /"soft"/],
    ['bad scheme', { url: 'ftp://h/x' }, /http/],
  ];
  for (const [what, body, reason] of cases) {
    const r = await purge(sc, body);
    t.equal(r.status, 400, what);
    t.match(r.json.error, reason, what);
  }
});

t.test('purge - auth: no token 401, wrong token 401; a body over 64 KiB 413', async (t) => {
  const none = await fetch(`${sc.adminUrl}/purge`, { method: 'POST', body: '{"all":true}' });
  t.equal(none.status, 401);
  t.match((await none.json()).error, /token/);
  const wrong = await purge(sc, { all: true }, 'wrong-token-wrong-token');
  t.equal(wrong.status, 401);
  const basic = await fetch(`${sc.adminUrl}/purge`, { method: 'POST', body: '{"all":true}', headers: { authorization: `Basic ${ADMIN_TOKEN}` } });
  t.equal(basic.status, 401, 'only a bearer token');
  await basic.text();
  const big = await purge(sc, JSON.stringify({ tags: Array.from({ length: 900 }, (_, i) => `tag-${i}-${'x'.repeat(80)}`) }));
  t.equal(big.status, 413);
  t.match(big.json.error, /larger than/);
  t.equal((await purge(sc, { url: '/p/after-413' })).status, 200, 'the admin API still answers');
});

t.test('purge - with no token configured, writes are refused with 403 and a message', async (t) => {
  const sc2 = await startSidecar({ env: { SIDECACHE_UPSTREAM: origin.url, SIDECACHE_ADMIN_TOKEN: '' } });
  t.teardown(() => sc2.stop());
  const r = await purge(sc2, { all: true });
  t.equal(r.status, 403);
  t.match(r.json.error, /SIDECACHE_ADMIN_TOKEN/);
  const m = await fetch(`${sc2.adminUrl}/metrics`);
  t.equal(m.status, 200, 'reads need no token');
  await m.text();
});

t.test('unsafe methods - POST passes through with its body and invalidates the target', async (t) => {
  origin.route('/w/post', (req, res, n) => {
    let body = '';
    req.on('data', (c: Buffer) => { body += c.toString(); });
    req.on('end', () => {
      res.writeHead(200, { 'cache-control': 'max-age=60' });
      res.end(`${req.method} ${body} #${n}`);
    });
  });
  t.equal((await get('/w/post')).body, 'GET  #1');
  t.ok(await isHit('/w/post'));
  const r = await fetch(`${sc.url}/w/post`, { method: 'POST', body: 'hello=1' });
  t.equal(r.status, 200);
  t.equal(await r.text(), 'POST hello=1 #2', 'body forwarded, answer passed back');
  t.match(r.headers.get('cache-status'), /fwd=method/);
  const after = await get('/w/post');
  t.equal(after.body, 'GET  #3', 'invalidated: the next GET is a miss');
  t.equal((await get('/w/post')).body, 'GET  #3', 'and the POST answer was never stored');
});

t.test('unsafe methods - PUT and DELETE invalidate the target and same-origin Location / Content-Location', async (t) => {
  origin.route('/w/put', (req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.method !== 'PUT') { res.writeHead(200, { 'cache-control': 'max-age=60' }); res.end('put target'); return; }
      res.writeHead(201, { location: '/w/loc', 'content-location': `${origin.url}/w/cloc` });
      res.end();
    });
  });
  origin.route('/w/del', (req, res) => {
    if (req.method === 'DELETE') { res.writeHead(204); res.end(); return; }
    res.writeHead(200, { 'cache-control': 'max-age=60' });
    res.end('del target');
  });
  origin.route('/w/cross', (req, res) => {
    req.resume();
    res.writeHead(200, { location: 'http://elsewhere.example/w/keep' });
    res.end();
  });
  for (const p of ['/w/put', '/w/loc', '/w/cloc', '/w/keep', '/w/del']) await get(p);
  for (const p of ['/w/put', '/w/loc', '/w/cloc', '/w/keep', '/w/del']) t.ok(await isHit(p), `${p} cached`);
  const put = await fetch(`${sc.url}/w/put`, { method: 'PUT', body: 'data' });
  t.equal(put.status, 201);
  await put.text();
  t.notOk(await isHit('/w/put'), 'target');
  t.notOk(await isHit('/w/loc'), 'Location');
  t.notOk(await isHit('/w/cloc'), 'Content-Location (absolute, same origin)');
  const cross = await fetch(`${sc.url}/w/cross`, { method: 'POST', body: 'x' });
  await cross.text();
  t.ok(await isHit('/w/keep'), 'a Location on another host invalidates nothing here');
  const del = await fetch(`${sc.url}/w/del`, { method: 'DELETE' });
  t.equal(del.status, 204);
  t.notOk(await isHit('/w/del'), 'DELETE');
});

t.test('unsafe methods - a 4xx or 5xx does not invalidate', async (t) => {
  origin.route('/w/fail', (req, res) => {
    req.resume();
    if (req.method === 'GET') { res.writeHead(200, { 'cache-control': 'max-age=60' }); res.end('ok'); return; }
    res.writeHead(req.method === 'POST' ? 404 : 500);
    res.end('no');
  });
  await get('/w/fail');
  const post = await fetch(`${sc.url}/w/fail`, { method: 'POST', body: 'x' });
  t.equal(post.status, 404);
  await post.text();
  t.ok(await isHit('/w/fail'), 'still cached after a 404');
  const put = await fetch(`${sc.url}/w/fail`, { method: 'PUT', body: 'x' });
  t.equal(put.status, 500);
  await put.text();
  t.ok(await isHit('/w/fail'), 'still cached after a 500');
  t.equal(gets('/w/fail'), 1);
});

/** Prometheus text -> value of one sample (0 when absent). */
function sample(text: string, name: string, labels = ''): number {
  const re = new RegExp(`^${name}${labels ? `\\{${labels.replace(/[{}]/g, '')}\\}` : ''} ([0-9.e+-]+)$`, 'm');
  const m = re.exec(text);
  return m ? Number(m[1]) : 0;
}
const metrics = async () => (await fetch(`${sc.adminUrl}/metrics`)).text();

t.test('metrics - requests by outcome, origin requests, bytes and entries, purges', async (t) => {
  const before = await metrics();
  await get('/m/a');
  await get('/m/a');
  await get('/m/a');
  const post = await fetch(`${sc.url}/m/a`, { method: 'POST', body: 'x' });
  await post.text();
  await purge(sc, { url: '/m/other' });
  await purge(sc, { tags: ['m-tag'] });
  let after = '';
  await waitFor(async () => {
    after = await metrics();
    return sample(after, 'sidecache_requests_total', 'outcome="hit"') - sample(before, 'sidecache_requests_total', 'outcome="hit"') >= 2;
  }, 5_000, 'hits counted');
  const delta = (name: string, labels = '') => sample(after, name, labels) - sample(before, name, labels);
  t.equal(delta('sidecache_requests_total', 'outcome="hit"'), 2);
  t.equal(delta('sidecache_requests_total', 'outcome="miss"'), 1);
  t.equal(delta('sidecache_requests_total', 'outcome="pass"'), 1);
  t.equal(delta('sidecache_origin_requests_total'), 2, 'the miss and the POST');
  t.equal(delta('sidecache_purges_total', 'kind="url"'), 1);
  t.equal(delta('sidecache_purges_total', 'kind="tags"'), 1);
  t.ok(sample(after, 'sidecache_cache_entries') >= 1, 'entries');
  t.ok(sample(after, 'sidecache_cache_bytes') > 0, 'bytes');
  t.match(after, /^# TYPE sidecache_request_duration_seconds histogram$/m);
});

t.test('health - /healthz and /readyz', async (t) => {
  const h = await fetch(`${sc.adminUrl}/healthz`);
  t.equal(h.status, 200);
  t.same(await h.json(), { status: 'ok' });
  const r = await fetch(`${sc.adminUrl}/readyz`);
  t.equal(r.status, 200);
  t.match(await r.json(), { status: 'ready' });
  const nf = await fetch(`${sc.adminUrl}/nope`);
  t.equal(nf.status, 404);
  await nf.text();
});
