// One key for a URL however it is spelled: requests, purges (url and prefix) and RFC 9111 §4.4
// write invalidations must reach the same entry. Targets are sent raw, since fetch() would
// re-encode them the way a URL parser does, which is what hid the difference.
import t, { type Test } from 'tap';
import { rawRequest } from '../helpers/raw-http.js';
import { purge } from '../../support/sidecar.js';
import { startStandalone } from '../../support/standalone.js';

const { origin, sc } = await startStandalone(t);

const port = (): number => Number(new URL(sc.url).port);

/** A request with exactly this target, as a client writes it on the wire. */
async function send(target: string, method = 'GET', host = 'sidecar.test'): Promise<{ status: number; cacheStatus: string; body: string }> {
  const body = method === 'GET' ? '' : 'x';
  const r = await rawRequest(port(), `${method} ${target} HTTP/1.1\r\nHost: ${host}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  return { status: r.status, cacheStatus: r.headers['cache-status'] ?? '', body: r.body.toString() };
}

/** Is the target served from the cache? */
const isHit = async (target: string): Promise<boolean> => /^sidecache; hit/.test((await send(target)).cacheStatus);

/** Requests the target until it is cached, then checks that it is. */
async function cache(t: Test, target: string): Promise<void> {
  const first = await send(target);
  t.equal(first.status, 200, `${target} fetched`);
  t.ok(await isHit(target), `${target} cached`);
}

t.test('keys - purge by url of a target a URL parser re-encodes (o\'brien, {}) removes the entry', async (t) => {
  const cases: Array<[string, string[]]> = [
    ["/k/q?name=o'brien", ["/k/q?name=o'brien", `${origin.url}/k/q?name=o'brien`]],
    ['/k/a{b}', ['/k/a{b}', '/k/a%7Bb%7D', '/k/a%7bb%7d', `${origin.url}/k/a{b}`]],
    ['/k/c%7ed', ['/k/c~d', '/k/c%7Ed']],
  ];
  for (const [target, spellings] of cases) {
    for (const spelling of spellings) {
      await cache(t, target);
      const p = await purge(sc, { url: spelling });
      t.equal(p.status, 200, `purge ${spelling}: ${JSON.stringify(p.json)}`);
      t.same(p.json.missing, []);
      const before = origin.count();
      t.notOk(await isHit(target), `${target} no longer cached after a purge of ${spelling}`);
      t.equal(origin.count(), before + 1, 'the next request reached the origin');
    }
  }
});

t.test('keys - purge by prefix normalises like the keys', async (t) => {
  for (const [target, prefix] of [['/kp/{x}/1', '/kp/{x}/'], ['/kp/{y}/1', '/kp/%7By%7D/'], ["/kp/z?n=o'b", "/kp/z?n=o'"]]) {
    await cache(t, target!);
    const p = await purge(sc, { prefix });
    t.equal(p.status, 200, `purge prefix ${prefix}: ${JSON.stringify(p.json)}`);
    t.notOk(await isHit(target!), `${target} gone after a purge of prefix ${prefix}`);
  }
});

t.test('keys - a POST answered 302 invalidates its target and Location / Content-Location as spelled by the origin', async (t) => {
  origin.route('/kw/post', (req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(302, { location: '/kw/a{b}', 'content-location': "/kw/q?name=o'brien" });
      res.end();
    });
  });
  await cache(t, '/kw/a{b}');
  await cache(t, "/kw/q?name=o'brien");
  await cache(t, '/kw/self{1}');
  t.equal((await send('/kw/post', 'POST')).status, 302);
  t.notOk(await isHit('/kw/a{b}'), 'Location /kw/a{b} invalidated');
  t.notOk(await isHit("/kw/q?name=o'brien"), "Content-Location /kw/q?name=o'brien invalidated");
  // The target URI itself (§4.4), sent with another spelling than the cached one.
  origin.route('/kw/self%7B1%7D', (req, res) => { req.resume(); req.on('end', () => { res.writeHead(204); res.end(); }); });
  t.equal((await send('/kw/self%7b1%7d', 'POST')).status, 204);
  t.notOk(await isHit('/kw/self{1}'), 'the target invalidated whatever its spelling');
});

t.test('keys - dot segments are removed before the key is made and the request forwarded', async (t) => {
  await cache(t, '/kd/b');
  const before = origin.count();
  const r = await send('/kd/a/../b');
  t.match(r.cacheStatus, /^sidecache; hit/, '/kd/a/../b is /kd/b (RFC 3986 §5.2.4)');
  t.equal(origin.count(), before);
  await send('/kd/x/%2e%2e/c');
  t.equal(origin.requests.at(-1)!.url, '/kd/c', 'the origin is asked for the target the key names');
  t.ok(await isHit('/kd/c'));
  t.equal((await send('/kd/../../etc')).status, 200, 'dot segments cannot climb above the root');
  t.equal(origin.requests.at(-1)!.url, '/etc');
});

t.test('keys - a malformed percent-encoding is a 400, in requests and in purges', async (t) => {
  const r = await send('/kb/a%zz');
  t.equal(r.status, 400);
  t.match(r.body, /percent/);
  const p = await purge(sc, { url: '/kb/a%2' });
  t.equal(p.status, 400);
  t.match(p.json.error, /percent/);
});
