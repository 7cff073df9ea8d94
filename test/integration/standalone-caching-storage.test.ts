// A standalone sidecar in reverse mode, what it stores: what RFC 9111 lets it store and for how
// long (freshness), variants by Vary, the cache key, and what it never replays to another
// client (Set-Cookie, Authorization). One origin and one sidecar are shared by the whole file;
// each test uses its own paths.
import t from 'tap';
import { startStandalone } from '../../support/standalone.js';
import { standaloneRequests } from '../helpers/standalone-requests.js';

const { origin, sc } = await startStandalone(t);
const { get, text, seen } = standaloneRequests(origin, sc);

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
