// Accept-Encoding normal forms (RFC 9110 §12.5.3): br, else gzip, else identity.
import t from 'tap';
import { accepts, Coding, normaliseAcceptEncoding, parseAcceptEncoding } from '../../../src/http/encoding.js';

t.test('encoding - what browsers, HTTP libraries and curl send', async (t) => {
  t.equal(normaliseAcceptEncoding('gzip, deflate, br, zstd'), 'br, gzip', 'Chrome: both, so an origin without br still compresses');
  t.equal(normaliseAcceptEncoding('gzip, deflate'), 'gzip', 'Node, Python requests');
  t.equal(normaliseAcceptEncoding('gzip'), 'gzip', 'Go');
  t.equal(normaliseAcceptEncoding('deflate, gzip, br, zstd'), 'br, gzip', 'curl --compressed');
  t.equal(normaliseAcceptEncoding(undefined), 'identity', 'no field: curl, wget');
  t.equal(normaliseAcceptEncoding(['gzip', 'br']), 'br, gzip', 'two field lines are one list');
  t.equal(normaliseAcceptEncoding('br'), 'br', 'br alone');
});

t.test('encoding - weights: q=0 excludes, the order of preference is ours, not the q values', async (t) => {
  t.equal(normaliseAcceptEncoding('br;q=0, gzip'), 'gzip');
  t.equal(normaliseAcceptEncoding('br;q=0.1, gzip;q=1'), 'br, gzip', 'any q above 0 accepts');
  t.equal(normaliseAcceptEncoding('br;q=0.000, gzip;q=0'), 'identity');
  t.equal(normaliseAcceptEncoding('gzip; Q=0.5'), 'gzip', '"Q" accepted (§12.4.2)');
  t.equal(normaliseAcceptEncoding('x-gzip'), 'gzip', 'x-gzip is gzip (§8.4.1.3)');
  t.equal(normaliseAcceptEncoding('GZIP'), 'gzip', 'names without case');
  t.equal(normaliseAcceptEncoding('gzip;q=0, gzip'), 'identity', 'the first weight of a repeated coding');
  t.equal(normaliseAcceptEncoding('deflate, zstd'), 'identity', 'nothing we name');
});

t.test('encoding - "*" stands for every coding not listed', async (t) => {
  t.equal(normaliseAcceptEncoding('*'), 'br, gzip');
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
