// Compression on store through the request path: what each client sees of an object kept in
// two codings (SIDECACHE_COMPRESS=true): gzip whole to clients that take it, the origin's
// bytes to the others and to every Range, with Vary, Content-Encoding, Content-Length,
// validators and conditionals right for each form.
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import { html, KEY, LM, ON, TEXT } from '../../helpers/compress-fixtures.js';
import { harness, type Harness } from '../../helpers/proxy-harness.js';

const LENGTH = String(Buffer.byteLength(TEXT));

/** A harness whose /page is stored and has its gzip form (compression done). */
async function compressed(extra: Record<string, string> = {}, env: Record<string, string> = {}): Promise<Harness> {
  const h = harness({ ...ON, ...env });
  h.origin.answer = () => ({ status: 200, headers: html(extra), body: TEXT });
  await h.get('/page');
  await h.handler.compressor.idle();
  return h;
}

t.test('pipeline compress - gzip clients get the gzip form whole, others the origin\'s bytes, each with its fields', async (t) => {
  const h = harness(ON);
  h.origin.answer = () => ({ status: 200, headers: html({ 'repr-digest': 'sha-256=:abc=:' }), body: TEXT });
  const miss = await h.get('/page', { 'accept-encoding': 'gzip, deflate' });
  t.equal(miss.body, TEXT, 'the miss streams what the origin sent');
  t.equal(miss.headers['content-encoding'], undefined);
  t.match(miss.headers.vary, /Accept-Encoding/, 'and says already that the coding depends on Accept-Encoding');
  await h.handler.compressor.idle();

  const gz = await h.get('/page', { 'accept-encoding': 'gzip, deflate' });
  t.match(gz.headers['cache-status'], /^sidecache; hit/);
  t.equal(gz.headers['content-encoding'], 'gzip');
  t.equal(gz.headers['content-length'], String(gz.bytes.length), 'Content-Length of the gzip bytes');
  t.ok(gz.bytes.length < Buffer.byteLength(TEXT) / 4, `${gz.bytes.length} bytes for ${LENGTH}`);
  t.equal(gunzipSync(gz.bytes).toString(), TEXT, 'which decode to the origin\'s bytes');
  t.equal(gz.headers.etag, '"v1-sc-gzip"', 'a strong ETag of its own');
  t.equal(gz.headers['last-modified'], LM);
  t.match(gz.headers.vary, /Accept-Encoding/);
  t.equal(gz.headers['content-type'], 'text/html; charset=utf-8');
  t.equal(gz.headers['repr-digest'], undefined, 'no digest of the identity bytes on the gzip form');

  for (const ae of [undefined, 'identity', 'br', 'gzip;q=0, *', 'deflate']) {
    const id = await h.get('/page', ae === undefined ? {} : { 'accept-encoding': ae });
    t.match(id.headers['cache-status'], /^sidecache; hit/);
    t.equal(id.body, TEXT, `${ae ?? 'no Accept-Encoding'}: the origin's bytes`);
    t.equal(id.headers['content-encoding'], undefined);
    t.equal(id.headers['content-length'], LENGTH);
    t.equal(id.headers.etag, '"v1"', 'the origin\'s ETag');
    t.equal(id.headers['repr-digest'], 'sha-256=:abc=:');
    t.match(id.headers.vary, /Accept-Encoding/);
  }
  t.equal(h.origin.requests.length, 1, 'one fetch served every coding');
});

t.test('pipeline compress - HEAD answers with the fields GET would', async (t) => {
  const h = await compressed();
  for (const headers of [{ 'accept-encoding': 'gzip' }, {}] as Record<string, string>[]) {
    const get = await h.get('/page', headers);
    const head = await h.get('/page', headers, 'HEAD');
    for (const f of ['content-encoding', 'content-length', 'etag', 'vary']) t.equal(head.headers[f], get.headers[f], `${JSON.stringify(headers)} ${f}`);
  }
});

t.test('pipeline compress - both forms are kept, and the entry is charged for both: no hit decompresses', async (t) => {
  const h = await compressed();
  const entry = h.cache.main.get(KEY)!.entries[0]!;
  t.equal(entry.body.toString(), TEXT, 'the origin\'s bytes are kept as they came');
  t.ok(entry.gzip, 'beside a gzip form');
  t.equal(gunzipSync(entry.gzip!.body).toString(), TEXT);
  t.ok(entry.size >= entry.body.length + entry.gzip!.body.length, 'charged for both bodies');
  t.equal(h.cache.main.stats.bytes, entry.size, 'and the store counts that charge');
  const id = await h.get('/page');
  t.same(id.bytes, entry.body, 'an identity hit sends the kept bytes');
  const gz = await h.get('/page', { 'accept-encoding': 'gzip' });
  t.same(gz.bytes, entry.gzip!.body, 'a gzip hit sends the kept gzip bytes');
});

t.test('pipeline compress - a Range is answered from the origin\'s bytes, for a gzip client too', async (t) => {
  const h = await compressed();
  for (const ae of ['gzip, deflate, br', 'gzip', undefined]) {
    const r = await h.get('/page', { range: 'bytes=3-12', ...(ae === undefined ? {} : { 'accept-encoding': ae }) });
    t.equal(r.status, 206, String(ae));
    t.equal(r.body, TEXT.slice(3, 13), 'bytes 3-12 of what the origin sent');
    t.equal(r.headers['content-range'], `bytes 3-12/${LENGTH}`);
    t.equal(r.headers['content-encoding'], undefined);
    t.equal(r.headers.etag, '"v1"', 'the origin\'s validators');
    t.match(r.headers.vary, /Accept-Encoding/);
  }
  const past = await h.get('/page', { range: `bytes=${LENGTH}-`, 'accept-encoding': 'gzip' });
  t.equal(past.status, 416);
  t.equal(past.headers['content-range'], `bytes */${LENGTH}`, 'unsatisfiable against the origin\'s length');
});

t.test('pipeline compress - If-Range: the origin\'s validators match, the gzip form\'s never do', async (t) => {
  const h = await compressed();
  const gzip = { 'accept-encoding': 'gzip', range: 'bytes=3-12' };
  t.equal((await h.get('/page', { ...gzip, 'if-range': '"v1"' })).status, 206, 'the origin\'s strong ETag');
  // A date is weak with two forms of it (RFC 9110 §8.8.2.2): even the origin's Last-Modified.
  for (const other of ['"v1-sc-gzip"', '"v0"', 'W/"v1"', LM, 'Fri, 02 Jan 2026 00:00:00 GMT']) {
    const whole = await h.get('/page', { ...gzip, 'if-range': other });
    t.equal(whole.status, 200, `${other}: the Range is ignored (RFC 9110 §13.1.5)`);
    t.equal(whole.body, TEXT, 'and the origin\'s bytes sent whole');
    t.equal(whole.headers['content-length'], LENGTH);
  }
});

t.test('pipeline compress - If-None-Match on a hit: each form\'s own tag gets a 304', async (t) => {
  const h = await compressed();
  const gz = await h.get('/page', { 'accept-encoding': 'gzip', 'if-none-match': '"v1-sc-gzip"' });
  t.equal(gz.status, 304, 'a client holding the gzip form');
  t.equal(gz.headers.etag, '"v1-sc-gzip"');
  t.match(gz.headers.vary, /Accept-Encoding/);
  const id = await h.get('/page', { 'if-none-match': '"v1"' });
  t.equal(id.status, 304);
  t.equal(id.headers.etag, '"v1"');
  const other = await h.get('/page', { 'accept-encoding': 'gzip', 'if-none-match': '"v0"' });
  t.equal(other.status, 200);
  t.equal(other.headers['content-encoding'], 'gzip');
});

t.test('pipeline compress - the origin only ever sees its own tags: writes, ranges passed through, revalidation', async (t) => {
  const h = await compressed({ 'cache-control': 'max-age=10' });
  h.origin.answer = () => ({ status: 204 });
  const put = await h.get('/page', { 'if-match': '"v1-sc-gzip"', 'content-length': '0' }, 'PUT');
  t.equal(put.status, 204);
  t.equal(h.origin.requests.at(-1)!.headers['if-match'], '"v1"', 'If-Match: the origin\'s tag, strong comparison holds (RFC 9110 §13.1.1)');
  await h.get('/other', { 'if-none-match': '"a-sc-gzip", W/"b-sc-gzip", "c"', 'cache-control': 'no-store' });
  t.equal(h.origin.requests.at(-1)!.headers['if-none-match'], '"a", W/"b", "c"');
  await h.get('/never-stored', { range: 'bytes=0-1', 'if-range': '"v1-sc-gzip"' });
  t.equal(h.origin.requests.at(-1)!.headers['if-range'], undefined, 'an If-Range of the gzip form is not mapped: it never holds there');
  t.equal(h.origin.requests.at(-1)!.headers.range, undefined, 'and the whole object is asked for (RFC 9110 §13.1.5)');

  // The PUT removed /page (RFC 9111 §4.4): stored again, stale, revalidated.
  h.origin.answer = () => ({ status: 200, headers: html({ 'cache-control': 'max-age=10' }), body: TEXT });
  await h.get('/page', { 'accept-encoding': 'gzip' });
  await h.handler.compressor.idle();
  h.clock.advance(11_000);
  h.origin.answer = () => ({ status: 304, headers: { 'cache-control': 'max-age=30', etag: '"v1"' } });
  const gz = await h.get('/page', { 'accept-encoding': 'gzip' });
  t.equal(h.origin.requests.at(-1)!.headers['if-none-match'], '"v1"', 'revalidation sends the origin\'s tag');
  t.match(gz.headers['cache-status'], /fwd=stale; fwd-status=304; stored/);
});

t.test('pipeline compress - a 304 refreshes both forms\' fields', async (t) => {
  const h = await compressed({ 'cache-control': 'max-age=10' });
  h.clock.advance(11_000);
  h.origin.answer = () => ({ status: 304, headers: { 'cache-control': 'max-age=30', etag: '"v1"', 'x-build': '7' } });
  const first = await h.get('/page', { 'accept-encoding': 'gzip' });
  t.equal(first.headers['content-encoding'], 'gzip', 'the gzip form, refreshed');
  t.equal(first.headers['cache-control'], 'max-age=30');
  t.equal(first.headers.etag, '"v1-sc-gzip"');
  t.equal(gunzipSync(first.bytes).toString(), TEXT);
  for (const ae of ['gzip', 'identity']) {
    const r = await h.get('/page', { 'accept-encoding': ae });
    t.match(r.headers['cache-status'], /^sidecache; hit/, ae);
    t.equal(r.headers['cache-control'], 'max-age=30');
    t.equal(r.headers['x-build'], '7');
    t.match(r.headers.vary, /Accept-Encoding/, 'Vary added again to the refreshed fields');
    t.equal(r.headers['content-length'], String(r.bytes.length));
  }
  t.equal(h.origin.requests.length, 2);
});

t.test('pipeline compress - a purge removes both forms: one entry', async (t) => {
  const h = await compressed();
  h.cache.apply(1, { kind: 'url', keys: [KEY] });
  t.equal(h.cache.main.stats.entries, 0);
  t.equal(h.cache.main.stats.bytes, 0);
  const gz = await h.get('/page', { 'accept-encoding': 'gzip' });
  t.match(gz.headers['cache-status'], /fwd=uri-miss/, 'a gzip client misses');
  t.equal(gz.body, TEXT);
});

t.test('pipeline compress - off by default', async (t) => {
  const h = harness();
  h.origin.answer = () => ({ status: 200, headers: html(), body: TEXT });
  const miss = await h.get('/page', { 'accept-encoding': 'gzip' });
  t.equal(miss.headers.vary, undefined);
  await h.handler.compressor.idle();
  t.equal(h.cache.main.get(KEY)!.entries[0]!.gzip, undefined);
  const hit = await h.get('/page', { 'accept-encoding': 'gzip' });
  t.equal(hit.headers['content-encoding'], undefined);
  t.equal(hit.body, TEXT);
});
