// Accept-Encoding through the request path: the origin receives the normal form (`br, gzip`,
// `br`, `gzip` or `identity`), and a `Vary: Accept-Encoding` answer is keyed by it, so clients whose lists
// normalise alike share one stored variant.
import t from 'tap';
import { harness } from '../../helpers/proxy-harness.js';

const varyOnCoding = (r: { headers: Record<string, string | string[]> }): { status: number; headers: Record<string, string>; body: string } => ({
  status: 200,
  headers: { 'cache-control': 'max-age=60', vary: 'Accept-Encoding' },
  body: `for ${String(r.headers['accept-encoding'])}`,
});

t.test('pipeline encoding - two spellings that normalise alike share one variant; gzip and identity do not', async (t) => {
  const h = harness();
  h.origin.answer = varyOnCoding;
  const a = await h.get('/v', { 'accept-encoding': 'gzip, deflate' });
  t.equal(a.body, 'for gzip', 'the origin receives the normal form');
  t.equal(h.origin.requests[0]!.headers['accept-encoding'], 'gzip');
  const b = await h.get('/v', { 'accept-encoding': 'deflate;q=1, GZIP;q=0.5, br;q=0' });
  t.match(b.headers['cache-status'], /^sidecache; hit/, 'another spelling of gzip: a hit on the same variant');
  t.equal(b.body, 'for gzip');
  t.equal(h.origin.requests.length, 1);

  const plain = await h.get('/v');
  t.equal(plain.body, 'for identity', 'no Accept-Encoding: the identity variant, fetched');
  t.equal(h.origin.requests.length, 2);
  const identity = await h.get('/v', { 'accept-encoding': 'identity' });
  t.match(identity.headers['cache-status'], /^sidecache; hit/);
  t.equal(identity.body, 'for identity');
  const malformed = await h.get('/v', { 'accept-encoding': 'gzip;q=7' });
  t.match(malformed.headers['cache-status'], /^sidecache; hit/, 'malformed: identity');
  t.equal(malformed.body, 'for identity');

  const br = await h.get('/v', { 'accept-encoding': 'gzip, deflate, br, zstd' });
  t.equal(br.body, 'for br, gzip', 'a browser: both codings, so an origin without br still compresses');
  t.equal(h.origin.requests.length, 3, 'three normal forms, three variants, however many spellings');
  await h.get('/v', { 'accept-encoding': '*' });
  t.equal(h.origin.requests.length, 3, '"*" accepts both');
  t.equal(h.cache.main.get('http://origin.test/v')?.entries.length, 3);
});

t.test('pipeline encoding - without Vary the origin still receives the normal form, and every client shares the entry', async (t) => {
  const h = harness();
  h.origin.answer = () => ({ status: 200, headers: { 'cache-control': 'max-age=60' }, body: 'one' });
  await h.get('/p', { 'accept-encoding': 'deflate, gzip' });
  t.equal(h.origin.requests[0]!.headers['accept-encoding'], 'gzip');
  const hit = await h.get('/p', { 'accept-encoding': 'br' });
  t.match(hit.headers['cache-status'], /^sidecache; hit/);
  await h.get('/q');
  t.equal(h.origin.requests[1]!.headers['accept-encoding'], 'identity', 'absent: identity is asked for');
});

t.test('pipeline encoding - a revalidation sends the normal form, and the 304 refreshes that variant', async (t) => {
  const h = harness();
  h.origin.answer = (r) => ({ ...varyOnCoding(r), headers: { 'cache-control': 'max-age=10', vary: 'accept-encoding', etag: '"g"' } });
  await h.get('/r', { 'accept-encoding': 'gzip;q=0.9' });
  h.clock.advance(11_000);
  h.origin.answer = () => ({ status: 304, headers: { 'cache-control': 'max-age=10', etag: '"g"' } });
  const again = await h.get('/r', { 'accept-encoding': 'x-gzip' });
  t.equal(h.origin.requests[1]!.headers['accept-encoding'], 'gzip');
  t.equal(h.origin.requests[1]!.headers['if-none-match'], '"g"');
  t.equal(again.body, 'for gzip');
  t.match(again.headers['cache-status'], /fwd=stale; fwd-status=304; stored/);
  const hit = await h.get('/r', { 'accept-encoding': 'gzip' });
  t.match(hit.headers['cache-status'], /^sidecache; hit/);
});
