// Compression on store, when and what: the entry is stored as the origin sent it and gains its
// gzip form when gzip, run off the event loop, completes, unless it was purged or replaced
// meanwhile; which responses get one; what replicas are sent.
import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import type { Entry } from '../../../src/store/types.js';
import { html, KEY, ON, TEXT } from '../../helpers/compress-fixtures.js';
import { harness } from '../../helpers/proxy-harness.js';

t.test('pipeline compress - stored as it came first, with its gzip form once gzip completes', async (t) => {
  const h = harness(ON);
  h.origin.answer = () => ({ status: 200, headers: html(), body: TEXT });
  await h.get('/page', { 'accept-encoding': 'gzip' });
  const first = h.cache.main.get(KEY)!.entries[0]!;
  t.equal(first.gzip, undefined, 'not compressed on the event loop before the entry is stored');
  const meanwhile = await h.get('/page', { 'accept-encoding': 'gzip' });
  t.match(meanwhile.headers['cache-status'], /^sidecache; hit/, 'a hit meanwhile');
  t.equal(meanwhile.headers['content-encoding'], undefined, 'gets the origin\'s bytes');
  t.equal(meanwhile.body, TEXT);
  t.match(meanwhile.headers.vary, /Accept-Encoding/);
  await h.handler.compressor.idle();
  const later = h.cache.main.get(KEY)!.entries[0]!;
  t.ok(later.gzip, 'the gzip form, once done');
  t.equal(later.body, first.body, 'beside the same identity bytes');
  t.ok(later.size > first.size + later.gzip!.body.length, 'charged for the gzip form too');
  t.equal(h.cache.main.stats.bytes, later.size);
});

t.test('pipeline compress - an entry purged while gzip runs is not brought back; one replaced keeps the newer', async (t) => {
  for (const soft of [false, true]) {
    const h = harness(ON);
    h.origin.answer = () => ({ status: 200, headers: html(), body: TEXT });
    await h.get('/page');
    h.cache.apply(1, { kind: 'url', keys: [KEY], soft });
    await h.handler.compressor.idle();
    const left = h.cache.main.get(KEY)?.entries ?? [];
    if (!soft) {
      t.same(left, [], 'a hard purge: nothing stored');
      t.equal(h.cache.main.stats.bytes, 0);
    } else {
      t.equal(left.length, 1);
      t.equal(left[0]!.softPurged, true, 'a soft purge: still marked, with its gzip form');
      const r = await h.get('/page', { 'accept-encoding': 'gzip' });
      t.match(r.headers['cache-status'], /fwd=stale/, 'and revalidated before it is served');
    }
  }
  const h = harness(ON);
  let n = 0;
  h.origin.answer = () => ({ status: 200, headers: html({ etag: `"v${++n}"`, 'cache-control': 'max-age=60' }), body: `${TEXT}${n}` });
  await h.get('/page');
  await h.get('/page', { 'cache-control': 'no-cache' });
  await h.handler.compressor.idle();
  const e = h.cache.main.get(KEY)!.entries;
  t.equal(e.length, 1);
  t.equal(e[0]!.etag, '"v2"', 'the newer response');
  t.equal(gunzipSync(e[0]!.gzip!.body).toString(), `${TEXT}2`, 'with its own gzip form, not the older one\'s');
});

t.test('pipeline compress - what keeps one form only', async (t) => {
  const cases: { name: string; env?: Record<string, string>; status?: number; headers: Record<string, string>; body?: string | Buffer }[] = [
    { name: 'SIDECACHE_COMPRESS=false', env: { SIDECACHE_COMPRESS: 'false' }, headers: html() },
    { name: 'already coded by the origin', headers: html({ 'content-encoding': 'br', vary: 'Accept-Encoding' }) },
    { name: 'a type not listed', headers: html({ 'content-type': 'image/png' }) },
    { name: 'no Content-Type', headers: { 'cache-control': 'max-age=60' } },
    { name: 'a 404', status: 404, headers: html() },
    { name: 'under the size floor', headers: html(), body: TEXT.slice(0, 1000) },
    { name: 'over SIDECACHE_COMPRESS_MAX_BYTES', env: { SIDECACHE_COMPRESS_MAX_BYTES: '4KiB' }, headers: html() },
    { name: 'under a size floor set', env: { SIDECACHE_COMPRESS_MIN_BYTES: '1MiB' }, headers: html() },
    { name: 'no-transform (RFC 9110 §7.7)', headers: html({ 'cache-control': 'max-age=60, No-Transform' }) },
    { name: 'a type left out of the list', env: { SIDECACHE_COMPRESS_TYPES: 'application/json' }, headers: html() },
    { name: 'bytes that do not shrink', headers: html(), body: randomBytes(3000) },
  ];
  for (const c of cases) {
    const h = harness({ ...ON, ...c.env });
    const body = c.body ?? TEXT;
    h.origin.answer = () => ({ status: c.status ?? 200, headers: c.headers, body });
    await h.get('/page', { 'accept-encoding': 'gzip' });
    await h.handler.compressor.idle();
    t.equal(h.cache.main.get(KEY)!.entries[0]!.gzip, undefined, c.name);
    const hit = await h.get('/page', { 'accept-encoding': 'gzip' });
    t.match(hit.headers['cache-status'], /^sidecache; hit/);
    t.equal(hit.headers['content-encoding'], c.headers['content-encoding'], `${c.name}: served as it came`);
    t.same(hit.bytes, Buffer.from(body));
  }
  const h = harness({ ...ON, SIDECACHE_COMPRESS_TYPES: 'application/json, TEXT/*' });
  h.origin.answer = () => ({ status: 200, headers: html({ 'content-type': 'Application/JSON' }), body: TEXT });
  await h.get('/page');
  await h.handler.compressor.idle();
  t.ok(h.cache.main.get(KEY)!.entries[0]!.gzip, 'types compared without case');
});

t.test('pipeline compress - an origin that varies on Accept-Encoding: a gzip form only for variants that take gzip', async (t) => {
  const h = harness(ON);
  h.origin.answer = () => ({ status: 200, headers: html({ vary: 'accept-encoding, Origin' }), body: TEXT });
  await h.get('/page', { 'accept-encoding': 'gzip' });
  await h.get('/page', { 'accept-encoding': 'identity' });
  await h.handler.compressor.idle();
  const byForm = new Map(h.cache.main.get(KEY)!.entries.map((e) => [e.varyValues[0], e]));
  t.ok(byForm.get('gzip')?.gzip, 'the gzip variant has one');
  t.equal(byForm.get('identity')?.gzip, undefined, 'the identity variant none: no client of it takes gzip');
  const gz = await h.get('/page', { 'accept-encoding': 'gzip' });
  t.equal(gz.headers.vary, 'accept-encoding, Origin', 'the origin\'s Vary as it was');
  t.equal(gz.headers['content-encoding'], 'gzip');
});

t.test('pipeline compress - replicas are sent the origin\'s bytes and fields, after a 304 too', async (t) => {
  const published: Entry[] = [];
  const h = harness(ON, { onStored: (e) => published.push(e) });
  h.origin.answer = () => ({ status: 200, headers: html({ 'cache-control': 'max-age=10' }), body: TEXT });
  await h.get('/page', { 'accept-encoding': 'gzip' });
  await h.handler.compressor.idle();
  h.clock.advance(11_000);
  h.origin.answer = () => ({ status: 304, headers: { 'cache-control': 'max-age=30', etag: '"v1"' } });
  await h.get('/page', { 'accept-encoding': 'gzip' });
  t.equal(published.length, 2);
  for (const e of published) {
    t.equal(e.body.toString(), TEXT, 'the origin\'s bytes: each member makes its own gzip form');
    t.notOk(e.headers.includes('content-encoding'));
    t.equal(e.headers[e.headers.indexOf('content-length') + 1], String(Buffer.byteLength(TEXT)));
    t.equal(e.headers[e.headers.indexOf('etag') + 1], '"v1"');
  }
  t.ok(h.cache.main.get(KEY)!.entries[0]!.gzip, 'while this member keeps its gzip form');
});
