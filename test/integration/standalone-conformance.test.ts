// RFC 9111 behaviours a client of a standalone sidecar can see: which status codes are stored
// (§3, §4.2.2), malformed freshness fields (§5.3, §5.1, §4.2.1), interim responses (RFC 9110
// §15.2), and methods the cache does not know (RFC 9110 §9.1, RFC 9111 §4.4). The unit tests
// in test/unit/http/ hold each rule; these show that the process applies it.
import t from 'tap';
import { httpCall, rawRequest, RawSocket } from '../helpers/raw-http.js';
import { startSidecar, waitFor } from '../../support/sidecar.js';
import { startStandalone } from '../../support/standalone.js';

const { origin, sc } = await startStandalone(t);
const port = Number(new URL(sc.url).port);

const call = async (path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}, url = sc.url) => {
  const r = await httpCall(`${url}${path}`, { method: opts.method ?? 'GET', headers: { connection: 'close', ...opts.headers }, ...(opts.body === undefined ? {} : { body: opts.body }) });
  return { code: r.status, headers: r.headers, text: r.body.toString(), status: String(r.headers['cache-status'] ?? '') };
};

/** A route answering `status` with these headers and a numbered body. */
function answer(path: string, status: number, headers: Record<string, string>): void {
  origin.route(path, (_req, res, n) => {
    res.writeHead(status, headers);
    res.end(`${status} #${n}`);
  });
}

t.test('status - a 4xx or 5xx with explicit freshness is stored and served from the cache (§3)', async (t) => {
  const cases: ReadonlyArray<readonly [number, Record<string, string>]> = [
    [500, { 'cache-control': 'max-age=60' }],
    [503, { 'cache-control': 's-maxage=60' }],
    [403, { expires: new Date(Date.now() + 3_600_000).toUTCString() }],
    [429, { 'cache-control': 'public, max-age=60' }],
    [302, { 'cache-control': 'max-age=60', location: '/elsewhere' }],
  ];
  for (const [status, headers] of cases) {
    const path = `/status/explicit-${status}`;
    answer(path, status, headers);
    const first = await call(path);
    t.equal(first.code, status);
    t.match(first.status, /stored/, `${status} ${JSON.stringify(headers)}: stored`);
    const second = await call(path);
    t.equal(second.code, status);
    t.equal(second.text, `${status} #1`, `${status}: served from the cache`);
    t.match(second.status, /hit/);
    t.equal(origin.count(path), 1);
  }
});

t.test('status - heuristic freshness only for heuristically cacheable codes or with public (§4.2.2)', async (t) => {
  const ttl = await startSidecar({ env: { SIDECACHE_UPSTREAM: origin.url, SIDECACHE_DEFAULT_TTL: '1h' } });
  t.teardown(() => ttl.stop());
  const lastModified = new Date(Date.now() - 10 * 24 * 3_600_000).toUTCString();
  const cases: ReadonlyArray<readonly [number, Record<string, string>, boolean]> = [
    [404, {}, true],
    [410, { 'last-modified': lastModified }, true],
    [500, {}, false],
    [503, { 'last-modified': lastModified }, false],
    [302, { location: '/elsewhere' }, false],
    [403, {}, false],
    [500, { 'cache-control': 'public' }, true],
    [403, { 'cache-control': 'public', 'last-modified': lastModified }, true],
  ];
  for (const [status, headers, stored] of cases) {
    const path = `/status/heuristic-${status}-${Object.keys(headers).join('-')}`;
    answer(path, status, headers);
    await call(path, {}, ttl.url);
    const second = await call(path, {}, ttl.url);
    t.equal(second.text, stored ? `${status} #1` : `${status} #2`, `${status} ${JSON.stringify(headers)}: ${stored ? 'a heuristic lifetime' : 'none'}`);
  }
});

t.test('Expires - a value that is not an HTTP-date is already expired, whatever Date.parse makes of it (§5.3)', async (t) => {
  const year = new Date().getUTCFullYear() + 1;
  for (const expires of [`Fri, 01-Jan-${year} 00:00:00 GMT`, `Fri, 01 Jan ${year} 1:00:00 GMT`, `Fri,  01 Jan ${year} 00:00:00 GMT`, `${year}-01-01T00:00:00Z`]) {
    const path = `/expires/${encodeURIComponent(expires)}`;
    answer(path, 200, { expires });
    await call(path);
    const second = await call(path);
    t.equal(second.text, '200 #2', `${JSON.stringify(expires)}: not served from the cache`);
  }
  const good = `/expires/good`;
  answer(good, 200, { expires: new Date(Date.now() + 3_600_000).toUTCString() });
  await call(good);
  t.equal((await call(good)).text, '200 #1', 'a valid one gives a lifetime');
});

t.test('directives - an invalid max-age is stale, not its leading digits (§4.2.1)', async (t) => {
  for (const cc of ['max-age=60abc', 'max-age=1.5e2', 'Max-Age=60; public']) {
    const path = `/directive/${encodeURIComponent(cc)}`;
    answer(path, 200, { 'cache-control': cc });
    await call(path);
    t.equal((await call(path)).text, '200 #2', `${cc}: not served from the cache`);
  }
  answer('/directive/upper', 200, { 'cache-control': 'PUBLIC, MAX-AGE="60"' });
  await call('/directive/upper');
  t.equal((await call('/directive/upper')).text, '200 #1', 'names in any case, a quoted value');
});

t.test('Age - an origin Age that is not a non-negative integer is ignored (§5.1)', async (t) => {
  for (const age of ['5000abc', '-3600', '5000, 1']) {
    const path = `/age/${encodeURIComponent(age)}`;
    answer(path, 200, { 'cache-control': 'max-age=60', age });
    const first = await call(path);
    t.equal(first.headers.age, '0', `${JSON.stringify(age)}: the response is as old as its resident time`);
    const second = await call(path);
    t.equal(second.text, '200 #1', `${JSON.stringify(age)}: fresh for its max-age`);
    t.match(second.status, /hit/);
    t.ok(Number(second.headers.age) >= 0 && Number(second.headers.age) < 60, `Age ${String(second.headers.age)}`);
  }
});

t.test('authorization - concurrent requests with Authorization each go to the origin at once, none waits on another\'s fetch', async (t) => {
  // The origin answers only once it holds both requests: a request that waited for the other's
  // answer (collapsed forwarding) would never reach it.
  const held: Array<() => void> = [];
  origin.route('/auth-concurrent', (req, res) => {
    held.push(() => {
      res.writeHead(200, { 'cache-control': 'max-age=60' });
      res.end(`for ${String(req.headers.authorization)}`);
    });
    if (held.length === 2) for (const answer of held) answer();
  });
  const [alice, bob] = await Promise.all([
    call('/auth-concurrent', { headers: { authorization: 'Bearer alice' } }),
    call('/auth-concurrent', { headers: { authorization: 'Bearer bob' } }),
  ]);
  t.equal(alice.text, 'for Bearer alice');
  t.equal(bob.text, 'for Bearer bob');
});

/** A route that sends 102, then 103 with a Link and another field, then waits for `release`
 *  before its final answer: the client must see the interim responses before the final one exists. */
function interim(path: string, final: Record<string, string>): { release: () => void } {
  let release: () => void = () => {};
  origin.route(path, (req, res, n) => {
    res.writeProcessing();
    res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style', 'x-hint': 'early' });
    release = () => {
      const body = `${req.method} final #${n}`;
      res.writeHead(200, { ...final, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    req.resume();
  });
  return { release: () => release() };
}

t.test('interim - 102 and 103 reach the client as they arrive, are not stored, and add nothing to the final response', async (t) => {
  const o = interim('/interim/get', { 'cache-control': 'public, max-age=60' });
  const s = await RawSocket.open(port);
  t.teardown(() => s.close());
  s.write('GET /interim/get HTTP/1.1\r\nHost: x\r\n\r\n');
  const processing = await s.readResponse();
  t.equal(processing.status, 102);
  const hints = await s.readResponse();
  t.equal(hints.status, 103, 'Early Hints while the origin still holds the final answer');
  t.equal(hints.headers.link, '</style.css>; rel=preload; as=style');
  t.equal(hints.headers['x-hint'], 'early');
  o.release();
  const final = await s.readResponse();
  t.equal(final.status, 200);
  t.equal(final.body.toString(), 'GET final #1');
  t.equal(final.headers.link, undefined, 'the hints are not merged into the final response');
  t.equal(final.headers['x-hint'], undefined);
  // The next request on the same connection is a hit: no interim response, no hints.
  s.write('GET /interim/get HTTP/1.1\r\nHost: x\r\n\r\n');
  const hit = await s.readResponse();
  t.equal(hit.status, 200, 'a hit starts with its final response');
  t.match(hit.headers['cache-status'] ?? '', /hit/);
  t.equal(hit.headers.link, undefined, 'nothing of the 103 was stored');
  t.equal(hit.headers['x-hint'], undefined);
});

t.test('interim - 103 is relayed on a pass (POST) too', async (t) => {
  const o = interim('/interim/post', {});
  const s = await RawSocket.open(port);
  t.teardown(() => s.close());
  s.write('POST /interim/post HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi');
  t.equal((await s.readResponse()).status, 102);
  const hints = await s.readResponse();
  t.equal(hints.status, 103);
  t.equal(hints.headers.link, '</style.css>; rel=preload; as=style');
  o.release();
  const final = await s.readResponse();
  t.equal(final.status, 200);
  t.equal(final.body.toString(), 'POST final #1');
  t.equal(final.headers.link, undefined);
});

t.test('interim - an HTTP/1.0 client gets no 1xx (RFC 9110 §15.2)', async (t) => {
  const o = interim('/interim/http10', { 'cache-control': 'no-store' });
  const s = await RawSocket.open(port);
  t.teardown(() => s.close());
  s.write('GET /interim/http10 HTTP/1.0\r\nHost: x\r\n\r\n');
  // The origin sends both interim responses as soon as it has the request, before the final one.
  await waitFor(() => origin.count('/interim/http10') === 1, 5_000, 'the origin to get the request');
  o.release();
  const first = await s.readResponse();
  t.equal(first.status, 200, 'the first response it reads is the final one');
  t.equal(first.headers.link, undefined);
});

t.test('methods - a method the cache does not know is passed through, not refused', async (t) => {
  const seen: string[] = [];
  origin.route('/dav/*', (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    let body = '';
    req.on('data', (c: Buffer) => { body += c.toString(); });
    req.on('end', () => {
      res.writeHead(req.method === 'PROPFIND' ? 207 : 201, { 'content-type': 'text/plain' });
      res.end(`${req.method} got ${body || 'nothing'}`);
    });
  });
  for (const method of ['PROPFIND', 'MKCOL', 'LOCK', 'REPORT', 'PURGE', 'TRACE']) {
    const r = await call(`/dav/${method}`, { method, ...(method === 'TRACE' ? {} : { body: '<x/>', headers: { 'content-length': '4' } }) });
    t.equal(r.code, method === 'PROPFIND' ? 207 : 201, `${method}: the origin's answer`);
    t.equal(r.text, `${method} got ${method === 'TRACE' ? 'nothing' : '<x/>'}`, `${method}: with its body`);
    t.match(r.status, /fwd=method/);
  }
  t.same(seen, ['PROPFIND', 'MKCOL', 'LOCK', 'REPORT', 'PURGE', 'TRACE'].map((m) => `${m} /dav/${m}`));
  const garbage = await rawRequest(port, 'FROB /dav/frob HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  t.equal(garbage.status, 400, 'a method token node:http cannot parse is a malformed request');
  t.equal(origin.count('/dav/frob'), 0);
});

t.test('methods - a non-error answer to an unknown or unsafe method invalidates the target; a safe one does not (§4.4)', async (t) => {
  const bump = (path: string) => origin.route(path, (req, res, n) => {
    if (req.method === 'GET') {
      res.writeHead(200, { 'cache-control': 'public, max-age=60' });
      res.end(`GET #${n}`);
      return;
    }
    req.resume();
    const status = Number(/status=(\d+)/.exec(String(req.headers['x-want'] ?? ''))?.[1] ?? 200);
    res.writeHead(status);
    res.end();
  });
  const cases: ReadonlyArray<readonly [string, number, boolean]> = [
    ['MKCOL', 201, true], ['PROPPATCH', 207, true], ['LOCK', 200, true], ['PURGE', 200, true], ['MOVE', 301, true],
    ['PROPFIND', 207, false], ['REPORT', 200, false], ['SEARCH', 200, false], ['OPTIONS', 204, false],
    ['MKCOL', 403, false], ['LOCK', 500, false],
  ];
  for (const [method, status, invalidates] of cases) {
    const path = `/inval/${method}-${status}`;
    bump(path);
    t.equal((await call(path)).text, 'GET #1');
    t.match((await call(path)).status, /hit/, `${path} cached`);
    const w = await call(path, { method, headers: { 'x-want': `status=${status}` } });
    t.equal(w.code, status);
    const after = await call(path);
    t.equal(after.text, invalidates ? 'GET #3' : 'GET #1', `${method} answered ${status}: ${invalidates ? 'invalidates' : 'leaves the entry'}`);
  }
});
