// Compression on store and what a client's request says of the form it holds: an If-Range of
// our gzip form (or a date, which two forms share) never gets a range of the origin's bytes,
// a 304 that now forbids compression drops the gzip form, and a request's own no-transform
// gets the origin's bytes.
import t from 'tap';
import { html, KEY, LM, ON, TEXT } from '../../helpers/compress-fixtures.js';
import { harness, type Harness, type Reply } from '../../helpers/proxy-harness.js';
import type { OriginRequest } from '../../../src/proxy/origin.js';

const LENGTH = String(Buffer.byteLength(TEXT));

/** An origin that honours Range (with If-Range against its own "v1" and LM) as origins do. */
function rangeOrigin(extra: Record<string, string> = {}): (r: OriginRequest) => Reply {
  return (r) => {
    const range = r.headers.range;
    const ifRange = r.headers['if-range'];
    const holds = ifRange === undefined || ifRange === '"v1"' || ifRange === LM;
    const m = typeof range === 'string' ? /^bytes=(\d+)-$/.exec(range) : null;
    if (m !== null && holds) {
      const start = Number(m[1]);
      return { status: 206, headers: html({ ...extra, 'content-range': `bytes ${start}-${Number(LENGTH) - 1}/${LENGTH}` }), body: TEXT.slice(start) };
    }
    return { status: 200, headers: html(extra), body: TEXT };
  };
}

async function compressed(extra: Record<string, string> = {}, env: Record<string, string> = ON): Promise<Harness> {
  const h = harness(env);
  h.origin.answer = rangeOrigin(extra);
  await h.get('/page');
  await h.handler.compressor.idle();
  return h;
}

t.test('pipeline compress - a resumed download of the gzip form, entry gone: the whole object, never identity bytes', async (t) => {
  const h = await compressed({ 'accept-ranges': 'bytes' });
  const gz = await h.get('/page', { 'accept-encoding': 'gzip' });
  t.equal(gz.headers['content-encoding'], 'gzip');
  t.equal(gz.headers['accept-ranges'], undefined, 'the gzip form offers no ranges: none is ever served of it');
  const id = await h.get('/page');
  t.equal(id.headers['accept-ranges'], 'bytes', 'the origin\'s form keeps its Accept-Ranges');

  h.cache.apply(1, { kind: 'url', keys: [KEY] });
  const resumed = await h.get('/page', { 'accept-encoding': 'gzip', range: 'bytes=1000-', 'if-range': '"v1-sc-gzip"' });
  const sent = h.origin.requests.at(-1)!.headers;
  t.equal(sent.range, undefined, 'no Range to the origin');
  t.equal(sent['if-range'], undefined, 'nor the If-Range, mapped or not');
  t.equal(resumed.status, 200, 'the client gets the whole representation (RFC 9110 §13.1.5)');
  t.equal(resumed.body, TEXT);
  t.equal(resumed.headers['content-range'], undefined);
});

t.test('pipeline compress - an If-Range of the gzip form passed through (no-store) drops the Range too', async (t) => {
  const h = await compressed();
  const r = await h.get('/page', { range: 'bytes=1000-', 'if-range': '"v1-sc-gzip"', 'cache-control': 'no-store' });
  const sent = h.origin.requests.at(-1)!.headers;
  t.equal(sent.range, undefined);
  t.equal(sent['if-range'], undefined);
  t.equal(r.status, 200);
  t.equal(r.body, TEXT);
});

t.test('pipeline compress - an If-Range date is weak with two forms: a hit and a miss send the whole object', async (t) => {
  const h = await compressed();
  const hit = await h.get('/page', { 'accept-encoding': 'gzip', range: 'bytes=1000-', 'if-range': LM });
  t.match(hit.headers['cache-status'], /^sidecache; hit/);
  t.equal(hit.status, 200, 'a hit of an entry with a gzip form: the whole object');
  t.equal(hit.headers['content-range'], undefined);

  h.cache.apply(1, { kind: 'url', keys: [KEY] });
  const miss = await h.get('/page', { range: 'bytes=1000-', 'if-range': LM });
  const sent = h.origin.requests.at(-1)!.headers;
  t.equal(sent.range, undefined, 'compression on: no Range to the origin with a date');
  t.equal(sent['if-range'], undefined);
  t.equal(miss.status, 200);
  t.equal(miss.body, TEXT);
  const pass = await h.get('/page', { range: 'bytes=1000-', 'if-range': LM, 'cache-control': 'no-store' });
  t.equal(h.origin.requests.at(-1)!.headers.range, undefined, 'nor on a pass');
  t.equal(pass.status, 200);

  const strong = await h.get('/other', { range: 'bytes=1000-', 'if-range': '"v1"' });
  t.equal(h.origin.requests.at(-1)!.headers['if-range'], '"v1"', 'the origin\'s own tag goes as sent');
  t.equal(strong.status, 206);
});

t.test('pipeline compress - off: an If-Range date still holds', async (t) => {
  const h = await compressed({}, {});
  const hit = await h.get('/page', { range: 'bytes=1000-', 'if-range': LM });
  t.equal(hit.status, 206);
  h.cache.apply(1, { kind: 'url', keys: [KEY] });
  const miss = await h.get('/page', { range: 'bytes=1000-', 'if-range': LM });
  t.equal(h.origin.requests.at(-1)!.headers['if-range'], LM);
  t.equal(miss.status, 206);
});

const refreshes: [string, Record<string, string>][] = [
  ['Cache-Control: no-transform', { 'cache-control': 'max-age=30, no-transform', etag: '"v1"' }],
  ['a Content-Type not compressed', { 'cache-control': 'max-age=30', etag: '"v1"', 'content-type': 'image/png' }],
];
for (const [what, refreshed] of refreshes) {
  t.test(`pipeline compress - a 304 with ${what} drops the gzip form, and its Vary`, async (t) => {
    const h = await compressed({ 'cache-control': 'max-age=10' });
    t.ok(h.cache.main.get(KEY)!.entries[0]!.gzip, 'compressed before');
    h.clock.advance(11_000);
    h.origin.answer = () => ({ status: 304, headers: refreshed });
    const first = await h.get('/page', { 'accept-encoding': 'gzip' });
    t.match(first.headers['cache-status'], /fwd=stale; fwd-status=304; stored/);
    t.equal(first.headers['content-encoding'], undefined, 'the origin\'s bytes');
    t.equal(first.body, TEXT);
    t.equal(h.cache.main.get(KEY)!.entries[0]!.gzip, undefined, 'the refreshed entry has no gzip form');
    await h.handler.compressor.idle();
    const hit = await h.get('/page', { 'accept-encoding': 'gzip' });
    t.match(hit.headers['cache-status'], /^sidecache; hit/);
    t.equal(hit.headers['content-encoding'], undefined);
    t.equal(hit.body, TEXT);
    t.equal(hit.headers['content-length'], LENGTH);
    t.equal(hit.headers.vary, undefined, 'no Vary: Accept-Encoding for a response kept in one coding');
  });
}

t.test('pipeline compress - a request\'s own no-transform gets the origin\'s bytes', async (t) => {
  const h = await compressed();
  const r = await h.get('/page', { 'accept-encoding': 'gzip', 'cache-control': 'no-transform' });
  t.match(r.headers['cache-status'], /^sidecache; hit/);
  t.equal(r.headers['content-encoding'], undefined);
  t.equal(r.body, TEXT);
  t.equal(r.headers.etag, '"v1"');
  const gz = await h.get('/page', { 'accept-encoding': 'gzip', 'cache-control': 'max-stale=5' });
  t.equal(gz.headers['content-encoding'], 'gzip', 'other directives leave the gzip form');
});
