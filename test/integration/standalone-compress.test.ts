// Compression on store through a real sidecar process and real clients: curl-like clients that
// send no Accept-Encoding, clients that take gzip (fetch, python requests, curl --compressed)
// and their ranges, conditionals and writes. What each gets must decode to the origin's bytes.
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import { httpCall } from '../helpers/raw-http.js';
import { startStandalone } from '../../support/standalone.js';
import { ADMIN_TOKEN, waitFor } from '../../support/sidecar.js';

const { origin, sc } = await startStandalone(t, { SIDECACHE_COMPRESS: 'true' });

const PAGE = Array.from({ length: 300 }, (_, i) => `{"row":${i},"name":"item ${i}","tags":["a","b","c"]}`).join(',\n');
const BODY = Buffer.from(`[${PAGE}]\n`);
/** What python requests sends. */
const REQUESTS = 'gzip, deflate';

const call = async (path: string, headers: Record<string, string> = {}, method = 'GET', body?: string) => {
  const r = await httpCall(`${sc.url}${path}`, { method, headers: { connection: 'close', ...headers }, ...(body === undefined ? {} : { body }) });
  return { ...r, status: String(r.headers['cache-status'] ?? ''), code: r.status };
};

/** Waits until the object has its gzip form (made after it is stored, off the event loop). */
const gzipped = (path: string) => waitFor(async () => (await call(path, { 'accept-encoding': 'gzip' })).headers['content-encoding'] === 'gzip',
  10_000, `${path} served as gzip`);

origin.route('/z/json', (req, res) => {
  if (req.method === 'PUT') {
    // An origin that compares If-Match strongly with its own tag (RFC 9110 §13.1.1).
    req.resume();
    res.writeHead(req.headers['if-match'] === '"j1"' ? 204 : 412);
    res.end();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=60', etag: '"j1"', 'content-length': BODY.length });
  res.end(BODY);
});

t.test('compress - one stored object, gzip to clients that take it, the origin\'s bytes to the others', async (t) => {
  const miss = await call('/z/json', { 'accept-encoding': 'deflate, gzip, br, zstd' });
  t.same(miss.body, BODY, 'the miss: the origin\'s bytes as they stream');
  t.equal(miss.headers['content-encoding'], undefined);
  t.match(miss.headers.vary, /Accept-Encoding/);
  await gzipped('/z/json');

  const gz = await call('/z/json', { 'accept-encoding': REQUESTS });
  t.match(gz.status, /hit/);
  t.equal(gz.headers['content-encoding'], 'gzip');
  t.equal(Number(gz.headers['content-length']), gz.body.length, 'Content-Length of the gzip bytes');
  t.ok(gz.body.length < BODY.length / 3, `${gz.body.length} gzip bytes for ${BODY.length}`);
  t.same(gunzipSync(gz.body), BODY, 'which decode to the origin\'s');
  t.equal(gz.headers.etag, '"j1-sc-gzip"', 'a strong ETag of its own');
  t.match(gz.headers.vary, /Accept-Encoding/);

  const viaFetch = await fetch(`${sc.url}/z/json`);
  t.equal(viaFetch.headers.get('content-encoding'), 'gzip', 'fetch asks for gzip and gets it');
  t.same(Buffer.from(await viaFetch.arrayBuffer()), BODY, 'and decodes it to the origin\'s bytes');

  const plain = await call('/z/json');
  t.match(plain.status, /hit/);
  t.equal(plain.headers['content-encoding'], undefined);
  t.equal(Number(plain.headers['content-length']), BODY.length);
  t.same(plain.body, BODY, 'no Accept-Encoding: the origin\'s bytes');
  t.equal(plain.headers.etag, '"j1"');

  const head = await call('/z/json', { 'accept-encoding': REQUESTS }, 'HEAD');
  t.equal(head.headers['content-length'], gz.headers['content-length'], 'HEAD: the fields GET gets');
  t.equal(head.headers['content-encoding'], 'gzip');
  t.equal(origin.count('/z/json'), 1, 'one origin fetch for all of them');
  const metrics = await (await fetch(`${sc.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
  t.match(metrics, /^sidecache_compressions_total\{outcome="stored"\} 1$/m, 'the metric counts the gzip form stored');
});

t.test('compress - a gzip client\'s Range and If-Range are of the origin\'s bytes and validators', async (t) => {
  const range = await call('/z/json', { 'accept-encoding': REQUESTS, range: 'bytes=100-199' });
  t.equal(range.code, 206);
  t.equal(range.headers['content-encoding'], undefined);
  t.same(range.body, BODY.subarray(100, 200), 'bytes 100-199 of what the origin sent');
  t.equal(range.headers['content-range'], `bytes 100-199/${BODY.length}`);
  const resumed = await call('/z/json', { 'accept-encoding': REQUESTS, range: 'bytes=100-', 'if-range': '"j1"' });
  t.equal(resumed.code, 206, 'a resumed download naming the origin\'s tag');
  t.same(Buffer.concat([BODY.subarray(0, 100), resumed.body]), BODY, 'completes the origin\'s bytes');
  const other = await call('/z/json', { 'accept-encoding': REQUESTS, range: 'bytes=100-', 'if-range': '"j1-sc-gzip"' });
  t.equal(other.code, 200, 'the gzip form\'s tag names no bytes a range is of: the whole');
  t.same(other.body, BODY);
});

t.test('compress - conditionals with the gzip form\'s tag: 304 on a hit, a write\'s If-Match reaches the origin as its own tag', async (t) => {
  const inm = await call('/z/json', { 'accept-encoding': REQUESTS, 'if-none-match': '"j1-sc-gzip"' });
  t.equal(inm.code, 304);
  t.equal(inm.headers.etag, '"j1-sc-gzip"');
  const put = await call('/z/json', { 'if-match': '"j1-sc-gzip"', 'content-type': 'application/json' }, 'PUT', '{}');
  t.equal(put.code, 204, 'not 412: the origin compared its own tag');
  t.equal(origin.requests.at(-1)!.headers['if-match'], '"j1"');
});

t.test('compress - a chunked body is compressed when complete, if over the floor', async (t) => {
  origin.route('/z/chunked*', (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=60' });
    const body = req.url === '/z/chunked-small' ? BODY.subarray(0, 500) : BODY;
    res.write(body.subarray(0, 100));
    setImmediate(() => res.end(body.subarray(100)));
  });
  await call('/z/chunked');
  await gzipped('/z/chunked');
  const gz = await call('/z/chunked', { 'accept-encoding': 'gzip' });
  t.same(gunzipSync(gz.body), BODY);

  const first = await call('/z/chunked-small');
  t.match(first.headers.vary, /Accept-Encoding/, 'a type that may be compressed says Vary before its size is known');
  const small = await call('/z/chunked-small', { 'accept-encoding': 'gzip' });
  t.match(small.status, /hit/);
  t.equal(small.headers['content-encoding'], undefined, 'under the floor: the origin\'s bytes only');
  t.same(small.body, BODY.subarray(0, 500));
});
