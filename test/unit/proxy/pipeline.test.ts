// The request path in-process (RFC 9111 as a client sees it): the handler with a fake origin
// and a fake clock moved in milliseconds. What only processes can show (sockets, undici, the
// cluster) stays in test/integration/.
import t from 'tap';
import { ErrorCode, SidecacheError } from '../../../src/core/errors.js';
import { gate, harness, settle, type Reply } from '../../helpers/proxy-harness.js';

const SEC = 1000;

t.test('pipeline - a fresh hit within max-age, its Age growing with the clock; stale at max-age to the millisecond', async (t) => {
  const h = harness();
  h.origin.answer = () => ({ status: 200, headers: { 'cache-control': 'max-age=60', etag: '"v1"' }, body: 'one' });
  const first = await h.get('/a');
  t.equal(first.status, 200);
  t.equal(first.body, 'one');
  t.equal(first.headers.age, '0');
  t.match(first.headers['cache-status'], /fwd=uri-miss; fwd-status=200; stored/);

  h.clock.advance(10_500);
  const hit = await h.get('/a');
  t.equal(hit.body, 'one');
  t.equal(hit.headers.age, '10', 'Age: whole seconds resident');
  t.match(hit.headers['cache-status'], /^sidecache; hit/);
  h.clock.advance(60 * SEC - 10_500 - 1);
  t.equal((await h.get('/a')).headers.age, '59', 'one millisecond before max-age: still a hit');
  t.equal(h.origin.requests.length, 1, 'hits never reach the origin');

  h.origin.answer = () => ({ status: 200, headers: { 'cache-control': 'max-age=60', etag: '"v2"' }, body: 'two' });
  h.clock.advance(1);
  const atMaxAge = await h.get('/a');
  t.equal(h.origin.requests.length, 2, 'at max-age the entry is stale: the origin is asked');
  t.equal(atMaxAge.body, 'two');
  t.equal(h.origin.requests[1]!.headers['if-none-match'], '"v1"', 'with the stored validator');
});

t.test('pipeline - stale after max-age: revalidated with If-None-Match, a 304 refreshes the entry', async (t) => {
  const h = harness();
  h.origin.answer = () => ({ status: 200, headers: { 'cache-control': 'max-age=10', etag: '"e1"', 'x-version': '1' }, body: 'body' });
  await h.get('/r');
  h.clock.advance(11 * SEC);
  h.origin.answer = () => ({ status: 304, headers: { 'cache-control': 'max-age=30', etag: '"e1"' } });
  const revalidated = await h.get('/r');
  t.equal(h.origin.requests.length, 2);
  t.equal(h.origin.requests[1]!.headers['if-none-match'], '"e1"');
  t.equal(revalidated.status, 200, 'the client asked unconditionally: the stored body, not the 304');
  t.equal(revalidated.body, 'body');
  t.match(revalidated.headers['cache-status'], /fwd=stale; fwd-status=304; stored/);
  t.equal(revalidated.headers.age, '0', 'the 304 resets the age');

  h.clock.advance(29 * SEC);
  const hit = await h.get('/r');
  t.match(hit.headers['cache-status'], /^sidecache; hit/, 'fresh again for the 304\'s max-age');
  t.equal(hit.headers.age, '29');
  t.equal(hit.headers['cache-control'], 'max-age=30', 'the 304\'s fields replace the stored ones');
  t.equal(hit.headers['x-version'], '1', 'fields the 304 does not carry are kept');
  t.equal(h.origin.requests.length, 2);

  h.clock.advance(1 * SEC);
  h.origin.answer = () => ({ status: 304, headers: { etag: '"e1"' } });
  await h.get('/r');
  t.equal(h.origin.requests.length, 3, 'stale again after the new max-age');
});

t.test('pipeline - a client\'s conditional request is answered 304 from a fresh entry', async (t) => {
  const h = harness();
  h.origin.answer = () => ({ status: 200, headers: { 'cache-control': 'max-age=60', etag: '"c1"' }, body: 'x' });
  await h.get('/c');
  h.clock.advance(5 * SEC);
  const r = await h.get('/c', { 'if-none-match': '"c1"' });
  t.equal(r.status, 304);
  t.equal(r.body, '');
  t.equal(r.headers.age, '5');
  t.equal(h.origin.requests.length, 1);
});

t.test('pipeline - stale-while-revalidate serves the stale entry at once and refreshes it once', async (t) => {
  const h = harness();
  h.origin.answer = () => ({ status: 200, headers: { 'cache-control': 'max-age=10, stale-while-revalidate=30', etag: '"s1"' }, body: 'old' });
  await h.get('/s');
  h.clock.advance(15 * SEC);
  const refresh = gate<Reply>();
  h.origin.answer = () => refresh.promise;
  const [a, b] = await Promise.all([h.get('/s'), h.get('/s')]);
  t.equal(a.body, 'old');
  t.equal(b.body, 'old');
  t.equal(a.headers.age, '15');
  t.match(a.headers['cache-status'], /hit.*stale-while-revalidate/);
  t.equal(h.origin.requests.length, 2, 'one background refresh for both requests');
  t.equal(h.origin.requests[1]!.headers['if-none-match'], '"s1"');

  refresh.open({ status: 200, headers: { 'cache-control': 'max-age=10, stale-while-revalidate=30', etag: '"s2"' }, body: 'new' });
  await settle();
  const after = await h.get('/s');
  t.equal(after.body, 'new', 'the refreshed entry is served fresh');
  t.match(after.headers['cache-status'], /^sidecache; hit/);
  t.equal(h.origin.requests.length, 2);

  h.clock.advance(41 * SEC);
  h.origin.answer = () => ({ status: 200, headers: { 'cache-control': 'max-age=10' }, body: 'newest' });
  const past = await h.get('/s');
  t.equal(past.body, 'newest', 'past the window the client waits for the origin');
  t.match(past.headers['cache-status'], /fwd=stale/);
});

t.test('pipeline - stale-if-error serves the stale entry on a 5xx or a failed fetch within the window, not after', async (t) => {
  const h = harness();
  h.origin.answer = () => ({ status: 200, headers: { 'cache-control': 'max-age=10, stale-if-error=60', etag: '"x"' }, body: 'kept' });
  await h.get('/e');

  h.clock.advance(20 * SEC);
  h.origin.answer = () => ({ status: 503, body: 'down' });
  const on5xx = await h.get('/e');
  t.equal(on5xx.status, 200);
  t.equal(on5xx.body, 'kept');
  t.equal(on5xx.headers.age, '20');
  t.match(on5xx.headers['cache-status'], /fwd=stale; fwd-status=503.*stale-if-error/);

  h.origin.answer = () => new SidecacheError(ErrorCode.upstream, 'origin refused the connection', { status: 502 });
  const onError = await h.get('/e');
  t.equal(onError.status, 200, 'no response at all: the stale entry too');
  t.equal(onError.body, 'kept');

  h.clock.advance(50 * SEC - 1);
  h.origin.answer = () => ({ status: 503, body: 'down' });
  t.equal((await h.get('/e')).body, 'kept', 'one millisecond before the window closes');
  h.clock.advance(1);
  const after = await h.get('/e');
  t.equal(after.status, 503, 'past max-age + stale-if-error the error reaches the client');
  t.equal(after.body, 'down');
  h.origin.answer = () => new SidecacheError(ErrorCode.upstream, 'origin refused the connection', { status: 502 });
  t.equal((await h.get('/e')).status, 502);
});

t.test('pipeline - must-revalidate: no stale-if-error', async (t) => {
  const h = harness();
  h.origin.answer = () => ({ status: 200, headers: { 'cache-control': 'max-age=10, stale-if-error=60, must-revalidate', etag: '"m"' }, body: 'm' });
  await h.get('/m');
  h.clock.advance(20 * SEC);
  h.origin.answer = () => ({ status: 500, body: 'err' });
  t.equal((await h.get('/m')).status, 500);
});

t.test('pipeline - no-store is not stored, on the response or the request', async (t) => {
  const h = harness();
  h.origin.answer = () => ({ status: 200, headers: { 'cache-control': 'no-store' }, body: 'private' });
  for (let i = 0; i < 3; i++) {
    const r = await h.get('/n');
    t.equal(r.body, 'private');
    t.notMatch(r.headers['cache-status'], /stored/);
  }
  t.equal(h.origin.requests.length, 3, 'every request reaches the origin');
  t.equal(h.cache.main.stats.entries, 0);

  h.origin.answer = () => ({ status: 200, headers: { 'cache-control': 'max-age=60' }, body: 'cacheable' });
  await h.get('/q', { 'cache-control': 'no-store' });
  await h.get('/q', { 'cache-control': 'no-store' });
  t.equal(h.origin.requests.length, 5, 'a request with no-store is passed');
  t.equal(h.cache.main.stats.entries, 0, 'and its answer not stored');
});

t.test('pipeline - concurrent misses for one key collapse into one origin request', async (t) => {
  const h = harness();
  const answer = gate<Reply>();
  h.origin.answer = () => answer.promise;
  const pending = Array.from({ length: 5 }, () => h.get('/hot'));
  await settle();
  t.equal(h.origin.requests.length, 1, 'one fetch while the others wait');
  h.clock.advance(2 * SEC);
  answer.open({ status: 200, headers: { 'cache-control': 'max-age=60' }, body: 'shared' });
  const all = await Promise.all(pending);
  for (const r of all) {
    t.equal(r.status, 200);
    t.equal(r.body, 'shared');
  }
  t.equal(all.filter((r) => /collapsed/.test(r.headers['cache-status'] ?? '')).length, 4, 'four waiters collapsed');
  t.equal(h.origin.requests.length, 1);
  t.equal((await h.get('/hot')).headers.age, '0', 'stored as received: its age counts from the answer');
});

t.test('pipeline - a collapsed revalidation: waiters share the 304', async (t) => {
  const h = harness();
  h.origin.answer = () => ({ status: 200, headers: { 'cache-control': 'max-age=5', etag: '"w"' }, body: 'w' });
  await h.get('/w');
  h.clock.advance(6 * SEC);
  const answer = gate<Reply>();
  h.origin.answer = () => answer.promise;
  const pending = [h.get('/w'), h.get('/w'), h.get('/w')];
  await settle();
  answer.open({ status: 304, headers: { etag: '"w"' } });
  for (const r of await Promise.all(pending)) t.equal(r.body, 'w');
  t.equal(h.origin.requests.length, 2);
});

t.test('pipeline - an unsafe method passes and invalidates the stored response (RFC 9111 §4.4)', async (t) => {
  const h = harness();
  h.origin.answer = () => ({ status: 200, headers: { 'cache-control': 'max-age=60' }, body: 'v1' });
  await h.get('/p');
  h.origin.answer = () => ({ status: 204 });
  t.equal((await h.get('/p', {}, 'POST')).status, 204);
  t.same(h.published, [{ kind: 'url', keys: ['http://origin.test/p'] }], 'published for every sidecar');
  h.origin.answer = () => ({ status: 200, headers: { 'cache-control': 'max-age=60' }, body: 'v2' });
  t.equal((await h.get('/p')).body, 'v2', 'removed here at once');
  t.equal(h.origin.requests.length, 3);
});

t.test('pipeline - a sidecar that may not trust its cache revalidates before serving, even within stale-while-revalidate', async (t) => {
  let distrust = false;
  const h = harness({}, { mustRevalidateAll: () => distrust });
  h.origin.answer = () => ({ status: 200, headers: { 'cache-control': 'max-age=10, stale-while-revalidate=60', etag: '"t1"' }, body: 'v1' });
  await h.get('/t');
  distrust = true;
  h.origin.answer = () => ({ status: 200, headers: { 'cache-control': 'max-age=10, stale-while-revalidate=60', etag: '"t2"' }, body: 'v2' });
  t.equal((await h.get('/t')).body, 'v2', 'a fresh entry is revalidated first');
  h.clock.advance(15 * SEC);
  h.origin.answer = () => ({ status: 200, headers: { 'cache-control': 'max-age=10', etag: '"t3"' }, body: 'v3' });
  const r = await h.get('/t');
  t.equal(r.body, 'v3', 'a stale-while-revalidate entry too: the client waits for the origin');
  t.match(r.headers['cache-status'], /fwd=stale/);
  t.equal(h.origin.requests.length, 3);
});

t.test('pipeline - a sidecar that may not trust its cache joins no fetch under way: it may predate a purge it missed', async (t) => {
  let distrust = false;
  const h = harness({}, { mustRevalidateAll: () => distrust });
  h.origin.answer = () => ({ status: 200, headers: { 'cache-control': 'max-age=10', etag: '"t1"' }, body: 'v1' });
  await h.get('/j');
  h.clock.advance(11 * SEC);
  const first = gate<Reply>();
  h.origin.answer = () => first.promise;
  const a = h.get('/j');
  await settle();
  t.equal(h.origin.requests.length, 2, 'a revalidation is under way');
  distrust = true;
  h.origin.answer = () => ({ status: 304, headers: { 'cache-control': 'max-age=10', etag: '"t1"' } });
  const b = await h.get('/j');
  t.equal(h.origin.requests.length, 3, 'the request that came after asked the origin itself');
  t.equal(b.body, 'v1');
  t.notMatch(b.headers['cache-status'], /collapsed/, 'not collapsed onto the earlier fetch');
  first.open({ status: 304, headers: { 'cache-control': 'max-age=10', etag: '"t1"' } });
  t.equal((await a).body, 'v1');
});

t.test('pipeline - a waiter on another Vary variant\'s revalidation fetches its own', async (t) => {
  const h = harness();
  const vary = { 'cache-control': 'max-age=10', vary: 'accept-language' };
  h.origin.answer = (r) => ({ status: 200, headers: { ...vary, etag: `"${String(r.headers['accept-language'])}"` }, body: String(r.headers['accept-language']) });
  await h.get('/v', { 'accept-language': 'en' });
  h.clock.advance(11 * SEC);
  const revalidation = gate<Reply>();
  h.origin.answer = (r) => r.headers['accept-language'] === 'en'
    ? revalidation.promise
    : { status: 200, headers: { ...vary, etag: '"fr"' }, body: 'fr' };
  const en = h.get('/v', { 'accept-language': 'en' });
  await settle();
  const fr = h.get('/v', { 'accept-language': 'fr' });
  await settle();
  t.equal(h.origin.requests.length, 2, 'the fr miss waits on the flight for the key');
  revalidation.open({ status: 304, headers: { ...vary, etag: '"en"' } });
  t.equal((await en).body, 'en');
  t.equal((await fr).body, 'fr', 'never the en variant the flight settled');
  t.equal(h.origin.requests.length, 3);
});
