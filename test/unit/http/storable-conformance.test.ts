// RFC 9111 as http-cache-semantics is shown a response (policyResponse): directive names and
// values (§5.2, §4.2.1, §1.2.2), Expires (§5.3), Age (§5.1), which status codes are storable and
// which get heuristic freshness (§3, §4.2.2), and Authorization (§3.5). The library's clock is
// pinned to NOW.
import t from 'tap';
import {
  admit, CachePolicy, policyRequestOf, policyResponse, POLICY_OPTIONS, type PolicyRequest,
} from '../../../src/http/storable.js';

const NOW = Date.UTC(2024, 0, 10, 12, 0, 0);
const DATE = new Date(NOW).toUTCString();

class FixedPolicy extends CachePolicy {
  now(): number {
    return NOW;
  }
}

/** admit() for a response, through policyResponse as newPolicy does, at NOW. */
function admitOf(resHeaders: Record<string, string>, opts: { status?: number; auth?: boolean; defaultTtlMs?: number } = {}) {
  const req: PolicyRequest = policyRequestOf('/x', null, [], opts.auth === true);
  const res = { status: opts.status ?? 200, headers: { date: DATE, ...resHeaders } };
  const policy = new FixedPolicy(req, policyResponse(res, NOW), POLICY_OPTIONS);
  return admit(policy, res, NOW, opts.defaultTtlMs ?? 0);
}

/** Seconds of freshness an admitted response gets; undefined when it is not stored. */
function freshSec(resHeaders: Record<string, string>, opts: Parameters<typeof admitOf>[1] = {}): number | undefined {
  const a = admitOf(resHeaders, opts);
  return a.storable ? (a.freshness.freshUntil - NOW) / 1000 : undefined;
}

t.test('directives - names are compared case-insensitively (§5.2)', async (t) => {
  t.equal(freshSec({ 'cache-control': 'Max-Age=60' }), 60);
  t.equal(freshSec({ 'cache-control': 'S-MAXAGE=30, max-age=5' }), 30, 'S-MAXAGE is s-maxage');
  t.equal(freshSec({ 'cache-control': 'Private, max-age=60' }), undefined);
  t.equal(freshSec({ 'cache-control': 'max-age=60, No-Store' }), undefined);
  const nc = admitOf({ 'cache-control': 'NO-CACHE, max-age=60', etag: '"e"' });
  t.ok(nc.storable && nc.freshness.freshUntil === NOW && nc.freshness.mustRevalidate, 'NO-CACHE: stored, never fresh');
  const mr = admitOf({ 'cache-control': 'max-age=60, Must-Revalidate' });
  t.ok(mr.storable && mr.freshness.mustRevalidate, 'Must-Revalidate');
});

t.test('directives - a value as token or quoted-string is one value (§5.2)', async (t) => {
  t.equal(freshSec({ 'cache-control': 'max-age="60"' }), 60);
  t.equal(freshSec({ 'cache-control': 's-maxage="30"' }), 30);
  t.equal(freshSec({ 'cache-control': 'no-cache="set-cookie, x-a", max-age=60', etag: '"e"' }), 0, 'a comma inside quotes adds no directive');
});

t.test('directives - an invalid max-age or s-maxage means stale, not its leading digits (§4.2.1, §1.2.2)', async (t) => {
  for (const cc of ['max-age=60abc', 'max-age=1.5', 'max-age=-1', 'max-age=', 'max-age=0x10', 'max-age=6 0', 's-maxage=60s', 's-maxage=+60']) {
    const a = admitOf({ 'cache-control': cc, etag: '"e"' });
    t.ok(a.storable, `${cc}: stored (it has a validator)`);
    t.equal(a.storable && a.freshness.freshUntil, NOW, `${cc}: already stale`);
  }
  t.equal(freshSec({ 'cache-control': 'max-age=99999999999' }), 2 ** 31, 'past 2^31: 2^31 (§1.2.2)');
  t.equal(freshSec({ 'cache-control': 'max-age=0060' }), 60, 'leading zeros are digits');
});

t.test('Expires - an HTTP-date in any of its three formats gives the lifetime (§5.3)', async (t) => {
  const in60 = NOW + 60_000;
  t.equal(freshSec({ expires: new Date(in60).toUTCString() }), 60, 'IMF-fixdate');
  t.equal(freshSec({ expires: 'Wednesday, 10-Jan-24 12:01:00 GMT' }), 60, 'rfc850-date');
  t.equal(freshSec({ expires: 'Wed Jan 10 12:01:00 2024' }), 60, 'asctime-date');
});

t.test('Expires - a value that is not an HTTP-date means already expired (§5.3)', async (t) => {
  const bad = [
    '0', '-1', 'never', '',
    'Wed, 10-Jan-2099 12:00:00 GMT', // wrong separators
    'Wed, 10 Jan 2099 2:00:00 GMT', // a one-digit hour
    'Wed,  10 Jan 2099 12:00:00 GMT', // an extra space
    'Wed, 10 Jan 2099  12:00:00 GMT',
    'Wed, 10 Jan 2099 12:00:00 UTC',
    '2099-01-10T12:00:00Z',
    'Sat Jan 10 2099 12:00:00 GMT+0000 (Coordinated Universal Time)',
  ];
  for (const expires of bad) {
    const a = admitOf({ expires, etag: '"e"' });
    t.ok(a.storable, `${JSON.stringify(expires)}: stored (Expires is explicit, and there is a validator)`);
    t.equal(a.storable && a.freshness.freshUntil, NOW, `${JSON.stringify(expires)}: already expired`);
    t.same(admitOf({ expires }), { storable: false, reason: 'no freshness and no validators' }, `${JSON.stringify(expires)}: without a validator, not kept`);
    t.same(admitOf({ expires }, { defaultTtlMs: 60_000 }), { storable: false, reason: 'no freshness and no validators' },
      `${JSON.stringify(expires)}: not given the default TTL either`);
  }
  t.equal(freshSec({ 'cache-control': 'max-age=60', expires: '0' }), 60, 'max-age overrides even an invalid Expires (§5.3)');
});

t.test('Expires - measured against Date, and an invalid Date counts as absent (RFC 9110 §6.6.1)', async (t) => {
  t.equal(freshSec({ date: new Date(NOW - 30_000).toUTCString(), expires: new Date(NOW + 30_000).toUTCString() }), 60, 'Expires - Date');
  t.equal(freshSec({ date: 'Wed, 10 Jan 2024 2:00:00 GMT', expires: new Date(NOW + 60_000).toUTCString() }), 60, 'a malformed Date: the time it was received');
});

t.test('Age - a non-negative integer; anything else is ignored (§5.1)', async (t) => {
  const initialAge = (age: string) => {
    const a = admitOf({ 'cache-control': 'max-age=600', etag: '"e"', age });
    return a.storable ? a.freshness.initialAgeSec : undefined;
  };
  t.equal(initialAge('45'), 45);
  t.equal(initialAge('0045'), 45);
  for (const age of ['-45', '45abc', '4.5', '45, 50', '', 'abc', '+45', '0x2d']) t.equal(initialAge(age), 0, `${JSON.stringify(age)} is ignored`);
  t.equal(initialAge('99999999999'), 2 ** 31, 'past 2^31: 2^31 (§1.2.2)');
  t.same(admitOf({ 'cache-control': 'max-age=600', age: '99999999999' }), { storable: false, reason: 'no freshness and no validators' }, 'and so stale');
});

t.test('status - any final status with explicit freshness is storable, 4xx and 5xx included (§3)', async (t) => {
  for (const status of [201, 202, 203, 205, 226, 302, 303, 307, 400, 401, 403, 409, 418, 422, 429, 451, 500, 502, 503, 504, 599]) {
    t.equal(freshSec({ 'cache-control': 'max-age=60' }, { status }), 60, `${status} max-age`);
    t.equal(freshSec({ 'cache-control': 's-maxage=60' }, { status }), 60, `${status} s-maxage`);
    t.equal(freshSec({ expires: new Date(NOW + 60_000).toUTCString() }, { status }), 60, `${status} Expires`);
  }
});

t.test('status - 206 and 304 are never stored as responses of their own', async (t) => {
  t.equal(freshSec({ 'cache-control': 'max-age=60', 'content-range': 'bytes 0-1/10' }, { status: 206 }), undefined);
  t.equal(freshSec({ 'cache-control': 'max-age=60', etag: '"e"' }, { status: 304 }), undefined);
});

t.test('status - heuristic freshness only for heuristically cacheable codes, or with public (§4.2.2)', async (t) => {
  const lm = new Date(NOW - 10 * 24 * 3600_000).toUTCString();
  const day = 24 * 3600;
  for (const status of [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]) {
    t.equal(freshSec({ 'last-modified': lm }, { status }), day, `${status}: 10% of Last-Modified's age`);
    t.equal(freshSec({}, { status, defaultTtlMs: 5_000 }), 5, `${status}: SIDECACHE_DEFAULT_TTL`);
  }
  for (const status of [201, 302, 303, 307, 400, 403, 429, 500, 502, 503, 504]) {
    t.equal(freshSec({ 'last-modified': lm }, { status }), undefined, `${status}: no heuristic from Last-Modified`);
    t.equal(freshSec({}, { status, defaultTtlMs: 5_000 }), undefined, `${status}: no default TTL`);
    t.equal(freshSec({ 'cache-control': 'public', 'last-modified': lm }, { status }), day, `${status} public: the heuristic`);
    t.equal(freshSec({ 'cache-control': 'public' }, { status, defaultTtlMs: 5_000 }), 5, `${status} public: the default TTL`);
  }
});

t.test('status - must-understand: stored only for a status this cache knows (§5.2.2.3)', async (t) => {
  t.equal(freshSec({ 'cache-control': 'must-understand, max-age=60' }, { status: 200 }), 60);
  t.equal(freshSec({ 'cache-control': 'must-understand, max-age=60' }, { status: 503 }), 60);
  t.equal(freshSec({ 'cache-control': 'must-understand, max-age=60' }, { status: 299 }), undefined, 'an unregistered code');
  t.equal(freshSec({ 'cache-control': 'max-age=60' }, { status: 299 }), 60, 'without it, any final code');
  t.equal(freshSec({ 'cache-control': 'must-understand, no-store, max-age=60' }, { status: 200 }), undefined, 'no-store still rules');
});

t.test('authorization - stored with public, s-maxage or must-revalidate, and not otherwise (§3.5)', async (t) => {
  t.equal(freshSec({ 'cache-control': 'public, max-age=60' }, { auth: true }), 60);
  t.equal(freshSec({ 'cache-control': 's-maxage=60' }, { auth: true }), 60);
  t.equal(freshSec({ 'cache-control': 'max-age=60, must-revalidate' }, { auth: true }), 60);
  t.equal(freshSec({ 'cache-control': 'Public, max-age=60' }, { auth: true }), 60, 'in any case');
  for (const cc of ['max-age=60', 'max-age=60, proxy-revalidate', 'no-cache, max-age=60', 'private, public, max-age=60']) {
    t.equal(freshSec({ 'cache-control': cc, etag: '"e"' }, { auth: true }), undefined, cc);
  }
  t.equal(freshSec({ expires: new Date(NOW + 60_000).toUTCString() }, { auth: true }), undefined, 'Expires alone');
  t.equal(freshSec({ 'last-modified': DATE }, { auth: true, defaultTtlMs: 5_000 }), undefined, 'a heuristic alone');
  const r = policyRequestOf('/x', ['authorization'], ['hmac:abc'], true);
  t.equal(r.headers.authorization, 'hmac:abc', 'a secondary key\'s hash stands for the credential when Vary names it');
  const anon = policyRequestOf('/x', null, [], true);
  t.notOk(JSON.stringify(anon).includes('Bearer'), 'the policy request never holds the credential itself');
});
