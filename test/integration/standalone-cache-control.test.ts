// Cache-Control directive names are case-insensitive (RFC 9111 §5.2): a response an origin
// marks `Private` or `NO-STORE` is never served to a second client.
import t from 'tap';
import { startOrigin, type TestOrigin } from '../../support/origin.js';
import { startSidecar, type SidecarProcess } from '../../support/sidecar.js';

let origin: TestOrigin;
let sc: SidecarProcess;

t.before(async () => {
  origin = await startOrigin();
  for (const [path, cc] of [['/private', 'Private, max-age=60'], ['/no-store', 'NO-STORE, max-age=60'], ['/twice', 'max-age=0, max-age=3600'], ['/upper', 'Public, MAX-AGE=60']]) {
    origin.route(path!, (req, res, n) => {
      const body = `${path} for ${req.headers['x-user'] ?? 'nobody'} #${n}`;
      res.writeHead(200, { 'cache-control': cc!, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  }
  sc = await startSidecar({ env: { SIDECACHE_UPSTREAM: origin.url } });
});
t.teardown(async () => {
  await sc.stop();
  await origin.close();
});

const get = async (path: string, user: string) => (await fetch(`${sc.url}${path}`, { headers: { 'x-user': user } })).text();

t.test('cache-control - "Private" and "NO-STORE" are not stored: a second user gets their own answer', async (t) => {
  for (const path of ['/private', '/no-store']) {
    t.equal(await get(path, 'alice'), `${path} for alice #1`);
    t.equal(await get(path, 'bob'), `${path} for bob #2`, `${path}: bob never sees alice's response`);
    t.equal(origin.count(path), 2);
  }
});

t.test('cache-control - the first of two max-age directives decides (§4.2.1), and an upper-case one counts', async (t) => {
  await get('/twice', 'a');
  await get('/twice', 'b');
  t.equal(origin.count('/twice'), 2, 'max-age=0 first: not served from cache');
  await get('/upper', 'a');
  t.equal(await get('/upper', 'b'), '/upper for a #1', 'MAX-AGE=60 is a lifetime');
  t.equal(origin.count('/upper'), 1);
});
