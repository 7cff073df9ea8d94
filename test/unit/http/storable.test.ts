// Admission (RFC 9111 §3) and the freshness lifetime an admitted response gets (§4.2),
// with http-cache-semantics' clock pinned to a fixed `now`.
import t from 'tap';
import {
  admit, CachePolicy, isUpdateFor, keepUntilOf, policyRequestOf, POLICY_OPTIONS, revalidatedPolicy, REVALIDATION_KEEP_MS, type PolicyRequest,
} from '../../../src/http/storable.js';

const NOW = Date.UTC(2024, 0, 10, 12, 0, 0);
const DATE = new Date(NOW).toUTCString();

class FixedPolicy extends CachePolicy {
  now(): number {
    return NOW;
  }
}

function admitOf(resHeaders: Record<string, string>, opts: { status?: number; reqHeaders?: Record<string, string>; defaultTtlMs?: number } = {}) {
  const req: PolicyRequest = { method: 'GET', url: '/x', headers: { host: 'example.com', ...opts.reqHeaders } };
  const res = { status: opts.status ?? 200, headers: { date: DATE, ...resHeaders } };
  const policy = new FixedPolicy(req, res, POLICY_OPTIONS);
  return admit(policy, res, NOW, opts.defaultTtlMs ?? 0);
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

t.test('storable - Authorization: stored only when the response says public (§3.5)', async (t) => {
  const auth = { authorization: 'Bearer x' };
  t.notOk(admitOf({ 'cache-control': 'max-age=60' }, { reqHeaders: auth }).storable);
  t.ok(admitOf({ 'cache-control': 'public, max-age=60' }, { reqHeaders: auth }).storable);
  t.ok(admitOf({ 'cache-control': 's-maxage=60' }, { reqHeaders: auth }).storable);
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
