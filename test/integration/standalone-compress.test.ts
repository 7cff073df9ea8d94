// Compression on store through a real sidecar process: a client that sends no Accept-Encoding
// (curl, wget) and one that takes gzip (curl --compressed, browsers) each get bytes they can
// read from one stored copy, with the fields that describe them.
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import { httpCall } from '../helpers/raw-http.js';
import { startStandalone } from '../../support/standalone.js';

const { origin, sc } = await startStandalone(t);

const PAGE = Array.from({ length: 300 }, (_, i) => `{"row":${i},"name":"item ${i}","tags":["a","b","c"]}`).join(',\n');
const BODY = Buffer.from(`[${PAGE}]\n`);

const call = async (path: string, headers: Record<string, string> = {}) => {
  const r = await httpCall(`${sc.url}${path}`, { headers: { connection: 'close', ...headers } });
  return { ...r, status: String(r.headers['cache-status'] ?? ''), code: r.status };
};

t.test('compress - one stored copy, gzip to clients that take it, the origin\'s bytes to the others', async (t) => {
  origin.route('/z/json', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=60', etag: '"j1"', 'content-length': BODY.length });
    res.end(BODY);
  });
  const miss = await call('/z/json', { 'accept-encoding': 'deflate, gzip, br, zstd' });
  t.same(miss.body, BODY, 'the miss: the origin\'s bytes as they stream');
  t.equal(miss.headers['content-encoding'], undefined);
  t.match(miss.headers.vary, /Accept-Encoding/);
  t.equal(origin.requests.at(-1)!.headers['accept-encoding'], 'br', 'the origin is asked with the normal form');

  const gz = await call('/z/json', { 'accept-encoding': 'deflate, gzip, br, zstd' });
  t.match(gz.status, /hit/);
  t.equal(gz.headers['content-encoding'], 'gzip');
  t.equal(Number(gz.headers['content-length']), gz.body.length, 'Content-Length of the gzip bytes');
  t.ok(gz.body.length < BODY.length / 3, `${gz.body.length} gzip bytes for ${BODY.length}`);
  t.same(gunzipSync(gz.body), BODY, 'which decompress to the origin\'s');
  t.equal(gz.headers.etag, 'W/"j1"');
  t.match(gz.headers.vary, /Accept-Encoding/);

  const plain = await call('/z/json');
  t.match(plain.status, /hit/);
  t.equal(plain.headers['content-encoding'], undefined);
  t.equal(Number(plain.headers['content-length']), BODY.length);
  t.same(plain.body, BODY, 'no Accept-Encoding: the origin\'s bytes');
  t.equal(plain.headers.etag, '"j1"');

  const range = await call('/z/json', { range: 'bytes=100-199' });
  t.equal(range.code, 206);
  t.same(range.body, BODY.subarray(100, 200), 'a range of the identity representation');
  t.equal(range.headers['content-range'], `bytes 100-199/${BODY.length}`);

  const head = await httpCall(`${sc.url}/z/json`, { method: 'HEAD', headers: { connection: 'close' } });
  t.equal(Number(head.headers['content-length']), BODY.length);
  t.equal(origin.count('/z/json'), 1, 'one origin fetch for all of them');
});

t.test('compress - a chunked body is compressed when complete, if over the floor', async (t) => {
  origin.route('/z/chunked*', (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=60' });
    const body = req.url === '/z/chunked-small' ? BODY.subarray(0, 500) : BODY;
    res.write(body.subarray(0, 100));
    setImmediate(() => res.end(body.subarray(100)));
  });
  await call('/z/chunked');
  const gz = await call('/z/chunked', { 'accept-encoding': 'gzip' });
  t.match(gz.status, /hit/);
  t.equal(gz.headers['content-encoding'], 'gzip');
  t.same(gunzipSync(gz.body), BODY);

  const first = await call('/z/chunked-small');
  t.match(first.headers.vary, /Accept-Encoding/, 'a type that may be compressed says Vary before its size is known');
  const small = await call('/z/chunked-small', { 'accept-encoding': 'gzip' });
  t.match(small.status, /hit/);
  t.equal(small.headers['content-encoding'], undefined, 'under the floor: stored as it came');
  t.same(small.body, BODY.subarray(0, 500));
});
