// Compression on store through the request path: a compressible identity response is stored
// gzipped once, served as gzip to clients that accept it and decompressed to the others, with
// Vary, Content-Encoding, Content-Length, validators and ranges right for each representation.
import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import type { Entry } from '../../../src/store/types.js';
import { harness } from '../../helpers/proxy-harness.js';

const TEXT = Array.from({ length: 200 }, (_, i) => `<p>line ${i} of a page that compresses well</p>\n`).join('');
const KEY = 'http://origin.test/page';

function html(extra: Record<string, string> = {}): Record<string, string> {
  return { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'max-age=60', etag: '"v1"', 'last-modified': 'Thu, 01 Jan 2026 00:00:00 GMT', ...extra };
}

t.test('pipeline compress - stored gzipped once; gzip clients get gzip, others identity, each with its own fields', async (t) => {
  const h = harness();
  h.origin.answer = () => ({ status: 200, headers: html(), body: TEXT });
  const miss = await h.get('/page', { 'accept-encoding': 'gzip, deflate' });
  t.equal(miss.body, TEXT, 'the miss streams what the origin sent');
  t.equal(miss.headers['content-encoding'], undefined);
  t.match(miss.headers.vary, /Accept-Encoding/, 'and says already that the coding depends on Accept-Encoding');
  const entry = h.cache.main.get(KEY)!.entries[0]!;
  t.ok(entry.identity, 'stored compressed');
  t.ok(entry.body.length < TEXT.length / 4, `${entry.body.length} bytes for ${TEXT.length}`);
  t.equal(gunzipSync(entry.body).toString(), TEXT);
  t.ok(entry.size < TEXT.length, 'charged for the compressed bytes');

  const gz = await h.get('/page', { 'accept-encoding': 'gzip, deflate' });
  t.match(gz.headers['cache-status'], /^sidecache; hit/);
  t.equal(gz.headers['content-encoding'], 'gzip');
  t.equal(gz.headers['content-length'], String(entry.body.length));
  t.equal(gz.headers.etag, 'W/"v1"', 'a strong ETag made weak for bytes of our making');
  t.equal(gz.headers['last-modified'], 'Thu, 01 Jan 2026 00:00:00 GMT');
  t.match(gz.headers.vary, /Accept-Encoding/);
  t.equal(gz.headers['content-type'], 'text/html; charset=utf-8');
  t.same(gz.bytes, entry.body, 'the stored gzip bytes');
  t.equal(gunzipSync(gz.bytes).toString(), TEXT);

  for (const ae of [undefined, 'identity', 'br', 'gzip;q=0, *', 'deflate']) {
    const id = await h.get('/page', ae === undefined ? {} : { 'accept-encoding': ae });
    t.match(id.headers['cache-status'], /^sidecache; hit/);
    t.equal(id.body, TEXT, `${ae ?? 'no Accept-Encoding'}: decompressed`);
    t.equal(id.headers['content-encoding'], undefined);
    t.equal(id.headers['content-length'], String(Buffer.byteLength(TEXT)));
    t.equal(id.headers.etag, '"v1"', 'the origin\'s ETag');
    t.match(id.headers.vary, /Accept-Encoding/);
  }
  const head = await h.get('/page', {}, 'HEAD');
  t.equal(head.headers['content-length'], String(Buffer.byteLength(TEXT)), 'HEAD: the identity length');
  t.equal(h.origin.requests.length, 1, 'one fetch served every coding');
  t.equal(h.origin.requests[0]!.headers['accept-encoding'], 'gzip');
});

t.test('pipeline compress - conditional requests per representation', async (t) => {
  const h = harness();
  h.origin.answer = () => ({ status: 200, headers: html(), body: TEXT });
  await h.get('/page');
  const gz = await h.get('/page', { 'accept-encoding': 'gzip', 'if-none-match': 'W/"v1"' });
  t.equal(gz.status, 304);
  t.equal(gz.headers.etag, 'W/"v1"');
  const id = await h.get('/page', { 'if-none-match': '"v1"' });
  t.equal(id.status, 304);
  t.equal(id.headers.etag, '"v1"');
  const crossed = await h.get('/page', { 'accept-encoding': 'gzip', 'if-none-match': '"v1"' });
  t.equal(crossed.status, 304, 'If-None-Match compares weakly (RFC 9110 §13.1.2)');
  const other = await h.get('/page', { 'accept-encoding': 'gzip', 'if-none-match': '"v0"' });
  t.equal(other.status, 200);
});

t.test('pipeline compress - ranges are of the representation served; If-Range needs a strong match', async (t) => {
  const h = harness();
  h.origin.answer = () => ({ status: 200, headers: html(), body: TEXT });
  await h.get('/page');
  const entry = h.cache.main.get(KEY)!.entries[0]!;

  const id = await h.get('/page', { range: 'bytes=3-12' });
  t.equal(id.status, 206);
  t.equal(id.body, TEXT.slice(3, 13), 'identity: bytes of the decompressed body');
  t.equal(id.headers['content-range'], `bytes 3-12/${Buffer.byteLength(TEXT)}`);
  t.equal((await h.get('/page', { range: 'bytes=3-12', 'if-range': '"v1"' })).status, 206, 'the origin\'s strong ETag matches');
  t.equal((await h.get('/page', { range: 'bytes=3-12', 'if-range': 'Thu, 01 Jan 2026 00:00:00 GMT' })).status, 206, 'so does its Last-Modified');
  const changed = await h.get('/page', { range: 'bytes=3-12', 'if-range': '"v0"' });
  t.equal(changed.status, 200, 'another ETag: the whole representation');
  t.equal(changed.body, TEXT);

  const gz = await h.get('/page', { 'accept-encoding': 'gzip', range: 'bytes=0-1' });
  t.equal(gz.status, 206);
  t.equal(gz.headers['content-encoding'], 'gzip');
  t.equal(gz.headers['content-range'], `bytes 0-1/${entry.body.length}`, 'gzip: bytes of the gzip body');
  t.same(gz.bytes, entry.body.subarray(0, 2));
  const weak = await h.get('/page', { 'accept-encoding': 'gzip', range: 'bytes=0-1', 'if-range': 'W/"v1"' });
  t.equal(weak.status, 200, 'a weak validator never satisfies If-Range (§13.1.5)');
  t.equal(weak.headers['content-length'], String(entry.body.length));
});

t.test('pipeline compress - a 304 refreshes a compressed entry: the origin gets its own ETag, the gzip fields follow', async (t) => {
  const h = harness();
  h.origin.answer = () => ({ status: 200, headers: html({ 'cache-control': 'max-age=10' }), body: TEXT });
  await h.get('/page', { 'accept-encoding': 'gzip' });
  h.clock.advance(11_000);
  h.origin.answer = () => ({ status: 304, headers: { 'cache-control': 'max-age=30', etag: '"v1"' } });
  const gz = await h.get('/page', { 'accept-encoding': 'gzip' });
  t.equal(h.origin.requests[1]!.headers['if-none-match'], '"v1"', 'the origin\'s validator, not ours');
  t.match(gz.headers['cache-status'], /fwd=stale; fwd-status=304; stored/);
  t.equal(gz.headers['content-encoding'], 'gzip');
  t.equal(gz.headers.etag, 'W/"v1"');
  t.equal(gz.headers['cache-control'], 'max-age=30');
  t.equal(gunzipSync(h.cache.main.get(KEY)!.entries[0]!.body).toString(), TEXT);
  const id = await h.get('/page');
  t.match(id.headers['cache-status'], /^sidecache; hit/);
  t.equal(id.body, TEXT);
  t.equal(id.headers['cache-control'], 'max-age=30');
  t.equal(id.headers['content-length'], String(Buffer.byteLength(TEXT)));
  t.match(id.headers.vary, /Accept-Encoding/);
});

t.test('pipeline compress - what is stored as it came', async (t) => {
  const cases: { name: string; env?: Record<string, string>; headers: Record<string, string>; body?: string | Buffer }[] = [
    { name: 'SIDECACHE_COMPRESS=false', env: { SIDECACHE_COMPRESS: 'false' }, headers: html() },
    { name: 'already coded by the origin', headers: html({ 'content-encoding': 'br', vary: 'Accept-Encoding' }) },
    { name: 'a type not listed', headers: html({ 'content-type': 'image/png' }) },
    { name: 'no Content-Type', headers: { 'cache-control': 'max-age=60' } },
    { name: 'under the size floor', headers: html(), body: TEXT.slice(0, 1000) },
    { name: 'under a size floor set', env: { SIDECACHE_COMPRESS_MIN_BYTES: '1MiB' }, headers: html() },
    { name: 'no-transform (RFC 9110 §7.7)', headers: html({ 'cache-control': 'max-age=60, no-transform' }) },
    { name: 'a type left out of the list', env: { SIDECACHE_COMPRESS_TYPES: 'application/json' }, headers: html() },
    { name: 'bytes that do not shrink', headers: html(), body: randomBytes(3000) },
  ];
  for (const c of cases) {
    const h = harness(c.env);
    const body = c.body ?? TEXT;
    h.origin.answer = () => ({ status: 200, headers: c.headers, body });
    await h.get('/page', { 'accept-encoding': 'gzip' });
    const entry = h.cache.main.get(KEY)!.entries[0]!;
    t.equal(entry.identity, undefined, c.name);
    const hit = await h.get('/page', { 'accept-encoding': 'gzip' });
    t.equal(hit.headers['content-encoding'], c.headers['content-encoding'], `${c.name}: served as it came`);
    t.same(hit.bytes, Buffer.from(body));
  }
  const h = harness({ SIDECACHE_COMPRESS_TYPES: 'application/json, TEXT/*' });
  h.origin.answer = () => ({ status: 200, headers: html({ 'content-type': 'Application/JSON' }), body: TEXT });
  await h.get('/page');
  t.ok(h.cache.main.get(KEY)!.entries[0]!.identity, 'types compared without case');
});

t.test('pipeline compress - an origin that varies on Accept-Encoding keeps its Vary as it is', async (t) => {
  const h = harness();
  h.origin.answer = () => ({ status: 200, headers: html({ vary: 'accept-encoding, Origin' }), body: TEXT });
  await h.get('/page', { 'accept-encoding': 'gzip' });
  const gz = await h.get('/page', { 'accept-encoding': 'gzip' });
  t.equal(gz.headers.vary, 'accept-encoding, Origin');
  t.equal(gz.headers['content-encoding'], 'gzip');
});

t.test('pipeline compress - what is published for replicas is the origin\'s representation, after a 304 too', async (t) => {
  const published: Entry[] = [];
  const h = harness({}, { onStored: (e) => published.push(e) });
  h.origin.answer = () => ({ status: 200, headers: html({ 'cache-control': 'max-age=10' }), body: TEXT });
  await h.get('/page', { 'accept-encoding': 'gzip' });
  h.clock.advance(11_000);
  h.origin.answer = () => ({ status: 304, headers: { 'cache-control': 'max-age=30', etag: '"v1"' } });
  await h.get('/page', { 'accept-encoding': 'gzip' });
  t.equal(published.length, 2);
  for (const e of published) {
    t.equal(e.identity, undefined);
    t.equal(e.body.toString(), TEXT, 'identity bytes: a replica of any version stores them as they are');
    t.notOk(e.headers.includes('content-encoding'));
    t.equal(e.headers[e.headers.indexOf('content-length') + 1], String(Buffer.byteLength(TEXT)));
    t.equal(e.headers[e.headers.indexOf('etag') + 1], '"v1"');
  }
  t.ok(h.cache.main.get(KEY)!.entries[0]!.identity, 'while this member keeps it compressed');
});
