// Secondary keys (RFC 9111 §4.1).
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { upstreamRequestHeaders, upstreamValue } from '../../../src/http/headers.js';
import { hasImplicitVaryField, IMPLICIT_VARY, objectView, SecondaryKey, secondaryKeyNames, secondaryKeySecret, varyNames } from '../../../src/http/vary.js';

const keys = new SecondaryKey(randomBytes(32));
const varyValues = (names: readonly string[], h: Record<string, string | string[] | undefined>) => keys.values(names, objectView, h);
const varyMatches = (names: readonly string[], values: readonly string[], h: Record<string, string | string[] | undefined>) =>
  keys.matches(names, values, objectView, h);

t.test('vary - names are lower-cased, de-duplicated and sorted', async (t) => {
  t.same(varyNames('Accept-Encoding, accept-language ,ACCEPT-ENCODING'), ['accept-encoding', 'accept-language']);
  t.same(varyNames(['Origin', 'Accept']), ['accept', 'origin']);
  t.equal(varyNames(undefined), null);
  t.equal(varyNames(' , '), null, 'empty Vary: no secondary key');
});

t.test('vary - the secondary key always holds the forwarded host, scheme, port and prefix fields', async (t) => {
  t.same(secondaryKeyNames(undefined), IMPLICIT_VARY);
  t.same(IMPLICIT_VARY, [...IMPLICIT_VARY].sort(), 'sorted, as secondaryKeyNames returns names');
  for (const name of ['forwarded', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-scheme', 'x-forwarded-port', 'x-forwarded-prefix', 'x-host']) {
    t.ok(IMPLICIT_VARY.includes(name), name);
  }
  t.same(secondaryKeyNames('Accept-Encoding, X-Forwarded-Host'), ['accept-encoding', ...IMPLICIT_VARY]);
  t.same(secondaryKeyNames('X-Host, Zeta'), [...IMPLICIT_VARY, 'zeta']);
});

t.test('vary - hasImplicitVaryField: any of the implicit fields, and only those', async (t) => {
  t.equal(hasImplicitVaryField({ host: 'a', 'accept-encoding': 'gzip', 'x-forwarded-for': '10.0.0.1' }), false);
  for (const name of IMPLICIT_VARY) t.equal(hasImplicitVaryField({ [name]: 'x' }), true, name);
  for (const name of ['forwarded-host', 'x-forwarded', 'x-forwarded-hosts', 'x-original-url']) t.equal(hasImplicitVaryField({ [name]: 'x' }), false, name);
});

t.test('vary - values are normalised: combined lines, whitespace around commas', async (t) => {
  const names = ['accept-encoding', 'accept-language'];
  t.same(varyValues(names, { 'accept-encoding': ' gzip ,br ' }), ['gzip, br', '']);
  t.same(varyValues(['x'], { x: ['a', 'b'] }), ['a, b']);
});

t.test('vary - matching', async (t) => {
  const names = ['accept-encoding'];
  const stored = varyValues(names, { 'accept-encoding': 'gzip, br' });
  t.ok(varyMatches(names, stored, { 'accept-encoding': 'gzip,br' }), 'same after normalisation');
  t.notOk(varyMatches(names, stored, { 'accept-encoding': 'gzip' }));
  t.notOk(varyMatches(names, stored, {}), 'absent differs from present');
  const none = varyValues(names, {});
  t.ok(varyMatches(names, none, {}), 'absent matches absent');
  t.notOk(varyMatches(names, none, { 'accept-encoding': 'gzip' }));
});

t.test('vary - credentials are kept only as a keyed hash that still matches', async (t) => {
  const names = ['authorization', 'cookie', 'x-api-key'];
  const req = { cookie: 'sid=s3cret-cookie', 'x-api-key': 'k3y-value', authorization: 'Bearer t0ken' };
  const stored = varyValues(names, req);
  for (const v of stored) {
    t.match(v, /^hmac:[A-Za-z0-9_-]{43}$/);
    t.notMatch(v, /s3cret|k3y|t0ken/);
  }
  t.ok(varyMatches(names, stored, req), 'the same credentials match');
  t.notOk(varyMatches(names, stored, { ...req, cookie: 'sid=other' }), 'another cookie does not');
  const other = new SecondaryKey(randomBytes(32));
  t.notOk(other.matches(names, stored, objectView, req), 'without the key the values are useless');
  const a = new SecondaryKey(secondaryKeySecret('cluster-secret-0123456789'));
  const b = new SecondaryKey(secondaryKeySecret('cluster-secret-0123456789'));
  t.ok(b.matches(names, a.values(names, objectView, req), objectView, req), 'members of one cluster compute the same values');
});

t.test('vary - a field this hop does not forward keys as absent', async (t) => {
  const req = { 'accept-language': 'de', connection: 'accept-language', origin: 'https://a.example', host: 'h' };
  const sent = upstreamRequestHeaders(req, '10.0.0.1');
  t.equal(sent['accept-language'], undefined);
  t.equal(upstreamValue(req, 'accept-language', '10.0.0.1'), undefined, 'the per-field view agrees with the head sent');
  t.equal(upstreamValue(req, 'origin', '10.0.0.1'), 'https://a.example');
  t.equal(upstreamValue(req, 'x-forwarded-for', '10.0.0.1'), sent['x-forwarded-for']);
  t.equal(upstreamValue(req, 'via', '10.0.0.1'), sent.via);
  t.equal(upstreamValue(req, 'host', '10.0.0.1'), undefined);
  t.equal(upstreamValue({ range: 'bytes=0-1' }, 'range', undefined, new Set(['range'])), undefined, 'dropped fields too');
});
