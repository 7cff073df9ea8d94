// Accept-Encoding normal forms (RFC 9110 §12.5.3): br, else gzip, else identity.
import t from 'tap';
import { accepts, acceptsGzip, Coding, gzipHeaders, isCompressibleType, mayCompress, normaliseAcceptEncoding, parseAcceptEncoding, withVaryAcceptEncoding } from '../../../src/http/encoding.js';

t.test('encoding - what browsers, HTTP libraries and curl send', async (t) => {
  t.equal(normaliseAcceptEncoding('gzip, deflate, br, zstd'), 'br', 'Chrome');
  t.equal(normaliseAcceptEncoding('gzip, deflate'), 'gzip', 'Node, Python requests');
  t.equal(normaliseAcceptEncoding('gzip'), 'gzip', 'Go');
  t.equal(normaliseAcceptEncoding('deflate, gzip, br, zstd'), 'br', 'curl --compressed');
  t.equal(normaliseAcceptEncoding(undefined), 'identity', 'no field: curl, wget');
  t.equal(normaliseAcceptEncoding(['gzip', 'br']), 'br', 'two field lines are one list');
});

t.test('encoding - weights: q=0 excludes, the order of preference is ours, not the q values', async (t) => {
  t.equal(normaliseAcceptEncoding('br;q=0, gzip'), 'gzip');
  t.equal(normaliseAcceptEncoding('br;q=0.1, gzip;q=1'), 'br', 'any q above 0 accepts');
  t.equal(normaliseAcceptEncoding('br;q=0.000, gzip;q=0'), 'identity');
  t.equal(normaliseAcceptEncoding('gzip; Q=0.5'), 'gzip', '"Q" accepted (§12.4.2)');
  t.equal(normaliseAcceptEncoding('x-gzip'), 'gzip', 'x-gzip is gzip (§8.4.1.3)');
  t.equal(normaliseAcceptEncoding('GZIP'), 'gzip', 'names without case');
  t.equal(normaliseAcceptEncoding('gzip;q=0, gzip'), 'identity', 'the first weight of a repeated coding');
  t.equal(normaliseAcceptEncoding('deflate, zstd'), 'identity', 'nothing we name');
});

t.test('encoding - "*" stands for every coding not listed', async (t) => {
  t.equal(normaliseAcceptEncoding('*'), 'br');
  t.equal(normaliseAcceptEncoding('br;q=0, *'), 'gzip');
  t.equal(normaliseAcceptEncoding('*;q=0'), 'identity');
  t.equal(normaliseAcceptEncoding('gzip, *;q=0'), 'gzip');
  const w = parseAcceptEncoding('*;q=0')!;
  t.notOk(accepts(w, Coding.identity), '*;q=0 excludes identity too');
  t.ok(accepts(parseAcceptEncoding('identity, *;q=0')!, Coding.identity), 'unless named');
  t.ok(accepts(parseAcceptEncoding('gzip')!, Coding.identity), 'identity is acceptable by default');
});

t.test('encoding - empty and malformed fields are identity', async (t) => {
  t.equal(normaliseAcceptEncoding(''), 'identity', '§12.5.3: an empty value wants no coding');
  t.equal(normaliseAcceptEncoding(' , ,gzip'), 'gzip', 'empty list elements are allowed');
  for (const bad of ['gzip;q=2', 'br;q=0.5000', 'gzip;level=9', 'br;q=', 'gzip br', 'gzip;q=1.5', 'gz"ip', 'br;;q=1']) {
    t.equal(normaliseAcceptEncoding(bad), 'identity', bad);
    t.equal(parseAcceptEncoding(bad), null, bad);
  }
});

t.test('encoding - accepts gzip: by name, as x-gzip or by "*"; not when absent, excluded or malformed', async (t) => {
  for (const yes of ['gzip', 'gzip, deflate, br', 'x-gzip;q=0.1', '*', 'br, *;q=0.5']) t.ok(acceptsGzip(yes), yes);
  for (const no of [undefined, '', 'br', 'identity', 'gzip;q=0', '*, gzip;q=0', 'gzip;q=9', 'deflate']) t.notOk(acceptsGzip(no), String(no));
  t.ok(acceptsGzip(['br', 'gzip']));
});

t.test('encoding - what may be stored compressed', async (t) => {
  const rules = { compress: true, compressMinBytes: 1024, compressTypes: ['text/*', 'application/json'] };
  const ok = { 'content-type': 'text/html; charset=utf-8', 'content-length': '2048' };
  t.ok(mayCompress(200, ok, rules));
  t.ok(mayCompress(200, { 'content-type': 'APPLICATION/JSON' }, rules), 'no Content-Length: checked when complete');
  t.ok(mayCompress(200, { ...ok, 'content-encoding': 'identity' }, rules));
  t.notOk(mayCompress(200, ok, { ...rules, compress: false }));
  t.notOk(mayCompress(206, ok, rules), 'only a 200');
  t.notOk(mayCompress(404, ok, rules));
  t.notOk(mayCompress(200, { ...ok, 'content-encoding': 'gzip' }, rules), 'coded by the origin');
  t.notOk(mayCompress(200, { ...ok, 'content-range': 'bytes 0-1/2' }, rules));
  t.notOk(mayCompress(200, { ...ok, 'content-length': '1023' }, rules), 'under the floor');
  t.notOk(mayCompress(200, { ...ok, 'content-type': 'image/png' }, rules));
  t.notOk(mayCompress(200, { 'content-length': '4096' }, rules), 'no type');
  t.notOk(mayCompress(200, { ...ok, 'cache-control': 'max-age=60, No-Transform' }, rules), 'no-transform');
  t.ok(mayCompress(200, { ...ok, 'cache-control': 'max-age=60, x-no-transformer' }, rules), 'only the directive itself');
  t.ok(isCompressibleType(' text/plain ', ['text/*']));
  t.notOk(isCompressibleType('textplain', ['text/*']));
  t.notOk(isCompressibleType(['text/plain'], ['text/*']), 'a repeated field is no type');
});

t.test('encoding - the gzip representation\'s fields, and Vary', async (t) => {
  const identity = ['content-type', 'text/plain', 'etag', '"a"', 'content-length', '5000', 'vary', 'Accept-Encoding'];
  t.same(gzipHeaders(identity, 900), ['content-type', 'text/plain', 'etag', 'W/"a"', 'vary', 'Accept-Encoding', 'content-encoding', 'gzip', 'content-length', '900']);
  t.same(gzipHeaders(['repr-digest', 'sha-256=:x:', 'content-md5', 'y', 'x-a', '1'], 3), ['x-a', '1', 'content-encoding', 'gzip', 'content-length', '3'],
    'digests of the identity bytes are left out');
  t.same(gzipHeaders(['etag', 'W/"w"', 'content-length', '1'], 2), ['etag', 'W/"w"', 'content-encoding', 'gzip', 'content-length', '2'], 'a weak ETag stays as it is');
  t.same(withVaryAcceptEncoding(['a', '1']), ['a', '1', 'vary', 'Accept-Encoding']);
  t.same(withVaryAcceptEncoding(['vary', 'Origin']), ['vary', 'Origin, Accept-Encoding']);
  t.same(withVaryAcceptEncoding(['vary', 'origin', 'vary', ' ACCEPT-encoding']), ['vary', 'origin', 'vary', ' ACCEPT-encoding'], 'already named on another line');
});
