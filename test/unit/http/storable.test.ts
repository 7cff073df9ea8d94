// Admission (RFC 9111 §3) and the freshness lifetime an admitted response gets (§4.2), as
// http-cache-semantics is shown a response (policyResponse): directive names and values (§5.2,
// §4.2.1, §1.2.2), Expires (§5.3), Age (§5.1), which status codes are stored and which get
// heuristic freshness (§3, §4.2.2), and Authorization (§3.5). The library's clock is pinned to NOW.
import t from 'tap';
import {
  admit, CachePolicy, isUpdateFor, keepUntilOf, policyRequestOf, policyResponse, POLICY_OPTIONS, revalidatedPolicy, REVALIDATION_KEEP_MS,
  type PolicyRequest,
} from '../../../src/http/storable.js';

const NOW = Date.UTC(2024, 0, 10, 12, 0, 0);
const DATE = new Date(NOW).toUTCString();

class FixedPolicy extends CachePolicy {
  now(): number {
    return NOW;
  }
}

/** admit() for a response, through policyResponse as newPolicy does, at NOW; `auth`: the request
 *  carried Authorization (policyRequestOf). */
function admitOf(resHeaders: Record<string, string>, opts: { status?: number; reqHeaders?: Record<string, string>; defaultTtlMs?: number; auth?: boolean } = {}) {
  const base = policyRequestOf('/x', null, [], opts.auth === true);
  const req: PolicyRequest = { ...base, headers: { host: 'example.com', ...base.headers, ...opts.reqHeaders } };
  const res = { status: opts.status ?? 200, headers: { date: DATE, ...resHeaders } };
  const policy = new FixedPolicy(req, policyResponse(res, NOW), POLICY_OPTIONS);
  return admit(policy, res, NOW, opts.defaultTtlMs ?? 0);
}

/** Seconds of freshness an admitted response gets; undefined when it is not stored. */
function freshSec(resHeaders: Record<string, string>, opts: Parameters<typeof admitOf>[1] = {}): number | undefined {
  const a = admitOf(resHeaders, opts);
  return a.storable ? (a.freshness.freshUntil - NOW) / 1000 : undefined;
}

t.test('storable - max-age is stored fresh for its lifetime', async (t) => {
  const a = admitOf({ 'cache-control': 'max-age=60' });
  t.ok(a.storable);
  if (!a.storable) return;
  t.equal(a.freshness.freshUntil, NOW + 60_000);
  t.equal(a.freshness.storedAt, NOW);
  t.notOk(a.freshness.mustRevalidate);
  t.notOk(a.freshness.hasValidators);
  t.equal(a.keepUntil, NOW + 60_000, 'no validators: dropped when no longer usable');
});

t.test('storable - Age from upstream shortens the lifetime', async (t) => {
  const a = admitOf({ 'cache-control': 'max-age=60', age: '45' });
  t.ok(a.storable);
  if (a.storable) {
    t.equal(a.freshness.freshUntil, NOW + 15_000);
    t.equal(a.freshness.initialAgeSec, 45);
  }
});

t.test('storable - s-maxage beats max-age in a shared cache and implies revalidation', async (t) => {
  const a = admitOf({ 'cache-control': 'max-age=0, s-maxage=120' });
  t.ok(a.storable);
  if (a.storable) {
    t.equal(a.freshness.freshUntil, NOW + 120_000);
    t.ok(a.freshness.mustRevalidate, '§5.2.2.10');
  }
});

t.test('storable - stale windows and validators', async (t) => {
  const a = admitOf({ 'cache-control': 'max-age=10, stale-while-revalidate=20, stale-if-error=30', etag: '"a"' });
  t.ok(a.storable);
  if (!a.storable) return;
  t.equal(a.freshness.staleWhileRevalidateUntil, NOW + 30_000);
  t.equal(a.freshness.staleIfErrorUntil, NOW + 40_000);
  t.ok(a.freshness.hasValidators);
  t.equal(a.keepUntil, NOW + 10_000 + REVALIDATION_KEEP_MS, 'kept for revalidation');
  t.equal(keepUntilOf({ ...a.freshness, hasValidators: false }), NOW + 40_000);
});

t.test('storable - must-revalidate and proxy-revalidate', async (t) => {
  const a = admitOf({ 'cache-control': 'max-age=10, must-revalidate' });
  t.ok(a.storable && a.freshness.mustRevalidate);
  const p = admitOf({ 'cache-control': 'max-age=10, proxy-revalidate', etag: '"p"' });
  t.ok(p.storable && p.freshness.mustRevalidate);
  t.ok(p.storable && p.freshness.freshUntil === NOW + 10_000, 'proxy-revalidate is fresh for its max-age, then revalidated (§5.2.2.8)');
});

t.test('storable - no-store, private and Set-Cookie are never stored', async (t) => {
  t.same(admitOf({ 'cache-control': 'no-store, max-age=60' }), { storable: false, reason: 'not storable' });
  t.same(admitOf({ 'cache-control': 'private, max-age=60' }), { storable: false, reason: 'not storable' });
  t.same(admitOf({ 'cache-control': 'public, max-age=60', 'set-cookie': 'id=1' }), { storable: false, reason: 'set-cookie' });
  t.same(admitOf({ 'cache-control': 'max-age=60' }, { reqHeaders: { 'cache-control': 'no-store' } }), { storable: false, reason: 'not storable' },
    'request no-store');
});

t.test('storable - Vary: * and 206 are never stored', async (t) => {
  t.same(admitOf({ 'cache-control': 'max-age=60', vary: '*' }), { storable: false, reason: 'vary *' });
  t.notOk(admitOf({ 'cache-control': 'max-age=60', 'content-range': 'bytes 0-1/10' }, { status: 206 }).storable, '206');
});

t.test('storable - heuristic freshness from Last-Modified (10% of its age)', async (t) => {
  const lm = new Date(NOW - 10 * 24 * 3600_000).toUTCString();
  const a = admitOf({ 'last-modified': lm });
  t.ok(a.storable);
  if (a.storable) {
    t.equal(a.freshness.freshUntil, NOW + 24 * 3600_000);
    t.ok(a.freshness.hasValidators);
  }
  const d = admitOf({ 'last-modified': lm }, { defaultTtlMs: 5_000 });
  t.ok(d.storable && d.freshness.freshUntil === NOW + 24 * 3600_000, 'the heuristic wins over the default TTL');
});

t.test('storable - default TTL only for responses with no freshness information', async (t) => {
  t.same(admitOf({}), { storable: false, reason: 'no freshness and no validators' }, 'default TTL 0: not stored');
  const a = admitOf({}, { defaultTtlMs: 5_000 });
  t.ok(a.storable && a.freshness.freshUntil === NOW + 5_000);
  const explicit = admitOf({ 'cache-control': 'max-age=0', etag: '"e"' }, { defaultTtlMs: 5_000 });
  t.ok(explicit.storable && explicit.freshness.freshUntil === NOW, 'explicit max-age=0 is not overridden');
  const nc = admitOf({ 'cache-control': 'no-cache', etag: '"e"' }, { defaultTtlMs: 5_000 });
  t.ok(nc.storable, 'no-cache with a validator is stored');
  t.ok(nc.storable && nc.freshness.freshUntil === NOW && nc.freshness.mustRevalidate, '... but never fresh');
});

t.test('storable - Expires relative to Date', async (t) => {
  const a = admitOf({ expires: new Date(NOW + 30_000).toUTCString() });
  t.ok(a.storable && a.freshness.freshUntil === NOW + 30_000);
  t.same(admitOf({ expires: '0' }), { storable: false, reason: 'no freshness and no validators' }, 'invalid Expires is already expired');
});

t.test('storable - a response without freshness or validators is not stored', async (t) => {
  t.same(admitOf({ 'cache-control': 'max-age=0' }), { storable: false, reason: 'no freshness and no validators' });
  const sie = admitOf({ 'cache-control': 'max-age=0, stale-if-error=60' });
  t.ok(sie.storable, 'a stale-if-error window makes it worth keeping');
});

t.test('storable - a 304 replaces stored fields and adds new ones, never the body fields (§3.2)', async (t) => {
  const req: PolicyRequest = { method: 'GET', url: '/x', headers: { host: 'example.com' } };
  const stored = new CachePolicy(req, {
    status: 200,
    headers: { 'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT', etag: '"v"', 'x-version': '1', 'content-length': '10', date: new Date().toUTCString() },
  }, POLICY_OPTIONS);
  const r = revalidatedPolicy(stored, req, {
    status: 304,
    headers: { etag: '"v"', 'x-version': '2', 'cache-control': 'max-age=600', 'x-new': 'yes', 'content-length': '0', connection: 'x-hop', 'x-hop': '1', 'keep-alive': 'timeout=5' },
  });
  t.equal(r.modified, false);
  const h = r.policy.responseHeaders();
  t.equal(h['x-version'], '2', 'replaced');
  t.equal(h['x-new'], 'yes', 'added');
  t.equal(h['cache-control'], 'max-age=600', 'added, and it rules freshness:');
  t.equal(r.policy.maxAge(), 600);
  t.equal(h['content-length'], '10', 'describes the stored body: kept');
  t.equal(h['x-hop'], undefined, 'Connection-listed fields are not stored');
  t.equal(h['keep-alive'], undefined);
  t.equal(r.policy.storable(), true);
  const changed = revalidatedPolicy(stored, req, { status: 200, headers: { etag: '"w"' } });
  t.equal(changed.modified, true, 'a 200 is a new response');
});

t.test('storable - a 304 never adds Set-Cookie to the stored response (§3.2)', async (t) => {
  const req: PolicyRequest = { method: 'GET', url: '/x', headers: {} };
  const stored = new CachePolicy(req, { status: 200, headers: { etag: '"v"', 'cache-control': 'max-age=0', date: new Date().toUTCString() } }, POLICY_OPTIONS);
  const r = revalidatedPolicy(stored, req, {
    status: 304,
    headers: { etag: '"v"', 'cache-control': 'max-age=60', 'set-cookie': 'sid=1' } as Record<string, string>,
  });
  const h = r.policy.responseHeaders();
  t.equal(h['set-cookie'], undefined, 'not added');
  t.equal(h['cache-control'], 'max-age=60', 'the other fields still update it');
  t.equal(JSON.stringify(r.policy.toObject()).includes('sid=1'), false);
});

t.test('storable - a 304 updates a stored response only when its validator matches (§4.3.4)', async (t) => {
  const both = { etag: '"a"', lastModified: 'Mon, 01 Jan 2024 00:00:00 GMT' };
  const upd = (headers: Record<string, string>) => ({ status: 304, headers });
  t.ok(isUpdateFor(both, upd({ etag: '"a"' }), true), 'the same strong ETag');
  t.notOk(isUpdateFor(both, upd({ etag: '"b"' }), true), 'another strong ETag');
  t.notOk(isUpdateFor({ etag: 'W/"a"', lastModified: undefined }, upd({ etag: '"a"' }), true), 'a strong ETag never matches a weak one');
  t.ok(isUpdateFor({ etag: '"a"', lastModified: undefined }, upd({ etag: 'W/"a"' }), true), 'a weak ETag matches weakly');
  t.notOk(isUpdateFor({ etag: undefined, lastModified: both.lastModified }, upd({ etag: '"a"' }), true), 'an ETag where none is stored');
  t.ok(isUpdateFor(both, upd({ 'last-modified': both.lastModified }), true), 'no ETag: Last-Modified decides');
  t.notOk(isUpdateFor(both, upd({ 'last-modified': 'Tue, 02 Jan 2024 00:00:00 GMT' }), true));
  t.ok(isUpdateFor({ etag: undefined, lastModified: both.lastModified }, upd({}), true), 'no validator: the answer to the validators we sent');
  t.notOk(isUpdateFor(both, upd({}), false), 'no validator, none asked: not for a stored response that has one');
  t.ok(isUpdateFor({ etag: undefined, lastModified: undefined }, upd({}), false), 'no validator on either side: the one stored response');
});

t.test('storable - the policy request holds the secondary key and nothing else', async (t) => {
  const r = policyRequestOf('/p', ['accept-language', 'cookie', 'x-forwarded-host'], ['de', 'hmac:abc', '']);
  t.same(r, { method: 'GET', url: '/p', headers: { 'accept-language': 'de', cookie: 'hmac:abc' } });
  const policy = new CachePolicy(r, { status: 200, headers: { vary: 'Accept-Language, Cookie', 'cache-control': 'max-age=60' } }, POLICY_OPTIONS);
  t.same(policy.toObject().reqh, { 'accept-language': 'de', cookie: 'hmac:abc' });
  t.equal(policy.storable(), true);
});

t.test('storable - directives: names are compared case-insensitively (§5.2)', async (t) => {
  t.equal(freshSec({ 'cache-control': 'Max-Age=60' }), 60);
  t.equal(freshSec({ 'cache-control': 'S-MAXAGE=30, max-age=5' }), 30, 'S-MAXAGE is s-maxage');
  t.equal(freshSec({ 'cache-control': 'Private, max-age=60' }), undefined);
  t.equal(freshSec({ 'cache-control': 'max-age=60, No-Store' }), undefined);
  const nc = admitOf({ 'cache-control': 'NO-CACHE, max-age=60', etag: '"e"' });
  t.ok(nc.storable && nc.freshness.freshUntil === NOW && nc.freshness.mustRevalidate, 'NO-CACHE: stored, never fresh');
  const mr = admitOf({ 'cache-control': 'max-age=60, Must-Revalidate' });
  t.ok(mr.storable && mr.freshness.mustRevalidate, 'Must-Revalidate');
});

t.test('storable - directives: a value as token or quoted-string is one value (§5.2)', async (t) => {
  t.equal(freshSec({ 'cache-control': 'max-age="60"' }), 60);
  t.equal(freshSec({ 'cache-control': 's-maxage="30"' }), 30);
  t.equal(freshSec({ 'cache-control': 'no-cache="set-cookie, x-a", max-age=60', etag: '"e"' }), 0, 'a comma inside quotes adds no directive');
});

t.test('storable - directives: an invalid max-age or s-maxage means stale, not its leading digits (§4.2.1, §1.2.2)', async (t) => {
  for (const cc of ['max-age=60abc', 'max-age=1.5', 'max-age=-1', 'max-age=', 'max-age=0x10', 'max-age=6 0', 's-maxage=60s', 's-maxage=+60']) {
    const a = admitOf({ 'cache-control': cc, etag: '"e"' });
    t.ok(a.storable, `${cc}: stored (it has a validator)`);
    t.equal(a.storable && a.freshness.freshUntil, NOW, `${cc}: already stale`);
  }
  t.equal(freshSec({ 'cache-control': 'max-age=99999999999' }), 2 ** 31, 'past 2^31: 2^31 (§1.2.2)');
  t.equal(freshSec({ 'cache-control': 'max-age=0060' }), 60, 'leading zeros are digits');
});

t.test('storable - Expires: an HTTP-date in any of its three formats gives the lifetime (§5.3)', async (t) => {
  const in60 = NOW + 60_000;
  t.equal(freshSec({ expires: new Date(in60).toUTCString() }), 60, 'IMF-fixdate');
  t.equal(freshSec({ expires: 'Wednesday, 10-Jan-24 12:01:00 GMT' }), 60, 'rfc850-date');
  t.equal(freshSec({ expires: 'Wed Jan 10 12:01:00 2024' }), 60, 'asctime-date');
});

t.test('storable - Expires: a value that is not an HTTP-date means already expired (§5.3)', async (t) => {
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

t.test('storable - Expires: measured against Date, and an invalid Date counts as absent (RFC 9110 §6.6.1)', async (t) => {
  t.equal(freshSec({ date: new Date(NOW - 30_000).toUTCString(), expires: new Date(NOW + 30_000).toUTCString() }), 60, 'Expires - Date');
  t.equal(freshSec({ date: 'Wed, 10 Jan 2024 2:00:00 GMT', expires: new Date(NOW + 60_000).toUTCString() }), 60, 'a malformed Date: the time it was received');
});

t.test('storable - Age: a non-negative integer; anything else is ignored (§5.1)', async (t) => {
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

t.test('storable - status: any final status with explicit freshness is storable, 4xx and 5xx included (§3)', async (t) => {
  for (const status of [201, 202, 203, 205, 226, 302, 303, 307, 400, 401, 403, 409, 418, 422, 429, 451, 500, 502, 503, 504, 599]) {
    t.equal(freshSec({ 'cache-control': 'max-age=60' }, { status }), 60, `${status} max-age`);
    t.equal(freshSec({ 'cache-control': 's-maxage=60' }, { status }), 60, `${status} s-maxage`);
    t.equal(freshSec({ expires: new Date(NOW + 60_000).toUTCString() }, { status }), 60, `${status} Expires`);
  }
});

t.test('storable - status: 206 and 304 are never stored as responses of their own', async (t) => {
  t.equal(freshSec({ 'cache-control': 'max-age=60', 'content-range': 'bytes 0-1/10' }, { status: 206 }), undefined);
  t.equal(freshSec({ 'cache-control': 'max-age=60', etag: '"e"' }, { status: 304 }), undefined);
});

t.test('storable - status: heuristic freshness only for heuristically cacheable codes, or with public (§4.2.2)', async (t) => {
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

t.test('storable - status: must-understand: stored only for a status this cache knows (§5.2.2.3)', async (t) => {
  t.equal(freshSec({ 'cache-control': 'must-understand, max-age=60' }, { status: 200 }), 60);
  t.equal(freshSec({ 'cache-control': 'must-understand, max-age=60' }, { status: 503 }), 60);
  t.equal(freshSec({ 'cache-control': 'must-understand, max-age=60' }, { status: 299 }), undefined, 'an unregistered code');
  t.equal(freshSec({ 'cache-control': 'max-age=60' }, { status: 299 }), 60, 'without it, any final code');
  t.equal(freshSec({ 'cache-control': 'must-understand, no-store, max-age=60' }, { status: 200 }), undefined, 'no-store still rules');
});

t.test('storable - Authorization: stored with public, s-maxage or must-revalidate, and not otherwise (§3.5)', async (t) => {
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
