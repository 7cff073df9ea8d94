// Partial content in-process (RFC 9111 §3.3, §3.4; RFC 9110 §14): a storable 206 is kept, a
// later range inside what is held is answered from it, ranges of one representation are
// combined, a complete object is served whole, and purges, writes and fences apply to parts
// as to whole entries. What the client sees is asserted, byte for byte.
import t from 'tap';
import { NoPeers, type Router } from '../../../src/proxy/route.js';
import { MAX_PARTS } from '../../../src/store/parts.js';
import type { Entry } from '../../../src/store/types.js';
import { gate, harness, settle, type Answer, type Reply } from '../../helpers/proxy-harness.js';

const SEC = 1000;
const BODY = 'abcdefghijklmnopqrstuvwxyz0123456789'; // 36 bytes

/** An origin that answers Range (one first-last or first- range) with a 206 of `body`, a
 *  request without one with the whole, and a failed If-Range (strong comparison) with the whole. */
function rangeOrigin(body: string, headers: Record<string, string> = { 'cache-control': 'max-age=60', etag: '"v1"' }): Answer {
  return (r) => {
    const range = r.headers.range as string | undefined;
    const ifRange = r.headers['if-range'] as string | undefined;
    if (range === undefined || (ifRange !== undefined && ifRange !== headers.etag)) return { status: 200, headers, body };
    const m = /^bytes=(\d+)-(\d*)$/.exec(range)!;
    const start = Number(m[1]);
    const end = m[2] === '' ? body.length - 1 : Math.min(Number(m[2]), body.length - 1);
    return { status: 206, headers: { ...headers, 'content-range': `bytes ${start}-${end}/${body.length}` }, body: body.slice(start, end + 1) };
  };
}

const range = (r: string, more: Record<string, string> = {}) => ({ range: `bytes=${r}`, ...more });

t.test('partial - §3.3: a storable 206 is kept; a range inside it is answered from it, no origin request', async (t) => {
  const h = harness();
  h.origin.answer = rangeOrigin(BODY);
  const first = await h.get('/v', range('0-9'));
  t.equal(first.status, 206);
  t.equal(first.body, 'abcdefghij');
  t.equal(first.headers['content-range'], 'bytes 0-9/36');
  t.match(first.headers['cache-status'], /fwd=uri-miss; fwd-status=206; stored/);
  t.equal(h.origin.requests[0]!.headers.range, 'bytes=0-9', 'the client\'s Range went to the origin');

  h.clock.advance(5 * SEC);
  const hit = await h.get('/v', range('2-5'));
  t.equal(hit.status, 206);
  t.equal(hit.body, 'cdef');
  t.equal(hit.headers['content-range'], 'bytes 2-5/36');
  t.equal(hit.headers['content-length'], '4');
  t.equal(hit.headers.etag, '"v1"');
  t.equal(hit.headers.age, '5');
  t.match(hit.headers['cache-status'], /^sidecache; hit/);
  const whole = await h.get('/v', range('0-9'));
  t.equal(whole.body, 'abcdefghij', 'the whole part, from the cache');
  const past = await h.get('/v', range('40-'));
  t.equal(past.status, 416, 'RFC 9110 §15.5.17: past the complete length the Content-Range told');
  t.equal(past.headers['content-range'], 'bytes */36');
  t.equal(h.origin.requests.length, 1, 'one origin request in all');
});

t.test('partial - §3.4: a range not held goes to the origin with its Range; the answer is combined with the parts', async (t) => {
  const h = harness();
  h.origin.answer = rangeOrigin(BODY);
  await h.get('/c', range('0-9'));
  const second = await h.get('/c', range('10-19'));
  t.equal(second.status, 206);
  t.equal(second.body, 'klmnopqrst');
  t.equal(h.origin.requests[1]!.headers.range, 'bytes=10-19');
  t.match(second.headers['cache-status'], /fwd=partial; fwd-status=206; stored/);
  const across = await h.get('/c', range('5-14'));
  t.equal(across.status, 206);
  t.equal(across.body, 'fghijklmno', 'a range across both parts: they were combined');
  t.equal(across.headers['content-range'], 'bytes 5-14/36');
  t.match(across.headers['cache-status'], /^sidecache; hit/);
  const overlapping = await h.get('/c', range('15-24'));
  t.equal(overlapping.body, 'pqrstuvwxy', 'partly held: fetched');
  t.equal(h.origin.requests.length, 3);
  t.equal((await h.get('/c', range('0-24'))).body, BODY.slice(0, 25), 'overlapping parts merged');
  t.equal(h.origin.requests.length, 3);
});

t.test('partial - §3.4: a 206 with another strong ETag replaces the parts held (another representation)', async (t) => {
  const h = harness();
  h.origin.answer = rangeOrigin(BODY);
  await h.get('/e', range('0-9'));
  const NEW = BODY.toUpperCase();
  h.origin.answer = rangeOrigin(NEW, { 'cache-control': 'max-age=60', etag: '"v2"' });
  const second = await h.get('/e', range('10-19'));
  t.equal(second.body, 'KLMNOPQRST');
  const old = await h.get('/e', range('0-9'));
  t.equal(old.body, 'ABCDEFGHIJ', 'the old parts are gone: fetched again, of the new representation');
  t.equal(old.headers.etag, '"v2"');
  t.equal(h.origin.requests.length, 3);
  const across = await h.get('/e', range('5-14'));
  t.equal(across.body, 'FGHIJKLMNO', 'parts of the new representation combined, never mixed with the old');
  t.equal(across.headers.etag, '"v2"');
  t.equal(h.origin.requests.length, 3);
});

t.test('partial - §3.4: a complete object assembled from parts is served whole: 200, its Content-Length, no origin request', async (t) => {
  const h = harness();
  h.origin.answer = rangeOrigin(BODY);
  await h.get('/w', range('0-17'));
  await h.get('/w', range('18-'));
  t.equal(h.origin.requests.length, 2);
  const whole = await h.get('/w');
  t.equal(whole.status, 200);
  t.equal(whole.body, BODY);
  t.equal(whole.headers['content-length'], '36');
  t.equal(whole.headers['content-range'], undefined);
  t.equal(whole.headers.etag, '"v1"');
  t.match(whole.headers['cache-status'], /^sidecache; hit/);
  const head = await h.get('/w', {}, 'HEAD');
  t.equal(head.status, 200);
  t.equal(head.headers['content-length'], '36');
  const r = await h.get('/w', range('30-'));
  t.equal(r.status, 206);
  t.equal(r.body, '456789');
  t.equal(h.origin.requests.length, 2, 'all from the cache');
});

t.test('partial - a request without Range on a partial entry is a miss: the whole object is fetched and replaces the parts', async (t) => {
  const h = harness();
  h.origin.answer = rangeOrigin(BODY);
  await h.get('/m', range('0-9'));
  const whole = await h.get('/m');
  t.equal(whole.status, 200, 'never a 206 to a client that asked for no range');
  t.equal(whole.body, BODY);
  t.equal(h.origin.requests[1]!.headers.range, undefined, 'the origin was asked for the whole object');
  t.match(whole.headers['cache-status'], /fwd=uri-miss; fwd-status=200; stored/);
  const r = await h.get('/m', range('20-25'));
  t.equal(r.body, 'uvwxyz', 'a range of the whole entry now');
  t.equal(h.origin.requests.length, 2);

  const h2 = harness();
  h2.origin.answer = rangeOrigin(BODY);
  await h2.get('/m', range('0-9'));
  const head = await h2.get('/m', {}, 'HEAD');
  t.equal(head.status, 200, 'a HEAD on a partial entry: a miss as well');
  t.equal(head.headers['content-length'], '36');
  t.equal(h2.origin.requests.length, 2);
});

t.test('partial - purges (url, prefix, tag, all) and a write remove partial entries: no purged part is served', async (t) => {
  const purges = [
    (h: ReturnType<typeof harness>) => h.cache.apply(1, { kind: 'url', keys: [...h.cache.main.keys()] }),
    (h: ReturnType<typeof harness>) => h.cache.apply(1, { kind: 'prefix', prefix: [...h.cache.main.keys()][0]!.slice(0, -2) }),
    (h: ReturnType<typeof harness>) => h.cache.apply(1, { kind: 'tags', tags: ['t1'] }),
    (h: ReturnType<typeof harness>) => h.cache.apply(1, { kind: 'all' }),
  ];
  for (const [i, purge] of purges.entries()) {
    const h = harness();
    h.origin.answer = rangeOrigin(BODY, { 'cache-control': 'max-age=60', etag: '"v1"', 'surrogate-key': 't1' });
    await h.get('/p', range('0-9'));
    await h.get('/p', range('0-4'));
    t.equal(h.origin.requests.length, 1, `purge ${i}: held before`);
    purge(h);
    const after = await h.get('/p', range('0-4'));
    t.equal(after.body, 'abcde');
    t.equal(h.origin.requests.length, 2, `purge ${i}: gone after`);
  }
  const h = harness();
  h.origin.answer = rangeOrigin(BODY);
  await h.get('/p', range('0-9'));
  h.origin.answer = (r) => (r.method === 'POST' ? { status: 204 } : rangeOrigin(BODY)(r, 0));
  await h.get('/p', {}, 'POST');
  await h.get('/p', range('0-4'));
  t.equal(h.origin.requests.length, 3, 'RFC 9111 §4.4: a write invalidated the parts');
});

t.test('partial - fences: a purge applied while a range fetch flies keeps its part and the held ones out', async (t) => {
  const h = harness();
  h.origin.answer = rangeOrigin(BODY);
  await h.get('/f', range('0-9'));
  const g = gate<Reply>();
  h.origin.answer = async (r, n) => { await g.promise; return rangeOrigin(BODY)(r, n) as Reply; };
  const flying = h.get('/f', range('10-19'));
  await settle();
  h.cache.apply(1, { kind: 'url', keys: [...h.cache.main.keys()] });
  h.log.appliedSeq = 1;
  g.open({ status: 0 });
  t.equal((await flying).body, 'klmnopqrst', 'served to the client that asked before the purge');
  h.origin.answer = rangeOrigin(BODY);
  await h.get('/f', range('10-19'));
  await h.get('/f', range('0-9'));
  t.equal(h.origin.requests.length, 4, 'neither the part fetched across the purge nor the purged one was kept');
  await h.get('/f', range('0-19'));
  t.equal(h.origin.requests.length, 4, 'parts fetched after it are');
});

t.test('partial - §3: a 206 that may not be stored is passed, not kept (no-store, private, Set-Cookie, Authorization)', async (t) => {
  const cases: [string, Record<string, string>, Record<string, string>][] = [
    ['no-store', { 'cache-control': 'no-store', etag: '"v1"' }, {}],
    ['private', { 'cache-control': 'private, max-age=60', etag: '"v1"' }, {}],
    ['set-cookie', { 'cache-control': 'max-age=60', etag: '"v1"', 'set-cookie': 'a=1' }, {}],
    ['authorization', { 'cache-control': 'max-age=60', etag: '"v1"' }, { authorization: 'Bearer x' }],
  ];
  for (const [name, headers, req] of cases) {
    const h = harness();
    h.origin.answer = rangeOrigin(BODY, headers);
    const a = await h.get('/n', range('0-9', req));
    t.equal(a.body, 'abcdefghij', `${name}: served`);
    t.notMatch(a.headers['cache-status'], /stored/, name);
    await h.get('/n', range('0-9', req));
    t.equal(h.origin.requests.length, 2, `${name}: not kept`);
  }
});

t.test('partial - a multipart/byteranges 206, a weak ETag or none, an unknown complete length: not kept (§3.4 needs a strong validator)', async (t) => {
  const multipart: Reply = {
    status: 206,
    headers: { 'cache-control': 'max-age=60', etag: '"v1"', 'content-type': 'multipart/byteranges; boundary=B' },
    body: '--B\r\nContent-Range: bytes 0-1/36\r\n\r\nab\r\n--B\r\nContent-Range: bytes 4-5/36\r\n\r\nef\r\n--B--\r\n',
  };
  const cases: [string, Answer][] = [
    ['multipart', () => multipart],
    ['weak etag', rangeOrigin(BODY, { 'cache-control': 'max-age=60', etag: 'W/"v1"' })],
    ['last-modified only', rangeOrigin(BODY, { 'cache-control': 'max-age=60', 'last-modified': 'Thu, 01 Jan 2026 00:00:00 GMT' })],
    ['length unknown', () => ({ status: 206, headers: { 'cache-control': 'max-age=60', etag: '"v1"', 'content-range': 'bytes 0-9/*' }, body: BODY.slice(0, 10) })],
  ];
  for (const [name, answer] of cases) {
    const h = harness();
    h.origin.answer = answer;
    const a = await h.get('/x', range(name === 'multipart' ? '0-1,4-5' : '0-9'));
    t.equal(a.status, 206, name);
    await h.get('/x', range(name === 'multipart' ? '0-1,4-5' : '0-9'));
    t.equal(h.origin.requests.length, 2, `${name}: not kept`);
  }
  const h = harness();
  h.origin.answer = rangeOrigin(BODY, { 'cache-control': 'max-age=60', etag: 'W/"v1"' });
  await h.get('/x', range('0-9'));
  await h.get('/x', range('10-19'));
  await h.get('/x', range('5-14'));
  t.equal(h.origin.requests.length, 3, 'weak ETags: parts are never combined');
});

t.test('partial - RFC 9110 §13.1.5: If-Range by strong comparison; a range not held or If-Range not holding goes to the origin', async (t) => {
  const h = harness();
  h.origin.answer = rangeOrigin(BODY);
  await h.get('/i', range('0-9'));
  const ok = await h.get('/i', range('0-4', { 'if-range': '"v1"' }));
  t.equal(ok.status, 206);
  t.equal(ok.body, 'abcde');
  t.equal(h.origin.requests.length, 1);
  const weak = await h.get('/i', range('0-4', { 'if-range': 'W/"v1"' }));
  t.equal(h.origin.requests.length, 2, 'a weak tag never holds');
  t.equal(weak.status, 200, 'the origin sent the whole');
  t.equal(weak.body, BODY);
  t.equal(h.origin.requests[1]!.headers['if-range'], 'W/"v1"', 'If-Range went with the Range');
  // The 200 a failed If-Range drew is the whole representation: kept whole, it answers now.
  const whole = await h.get('/i');
  t.equal(whole.body, BODY);
  t.match(whole.headers['cache-status'], /^sidecache; hit/);
  const other = await h.get('/i', range('0-4', { 'if-range': '"v0"' }));
  t.equal(other.status, 200, 'If-Range not holding on the whole entry: the whole');
  t.equal(other.body, BODY);
  t.match(other.headers['cache-status'], /^sidecache; hit/);
  t.equal(h.origin.requests.length, 2);
});

t.test('partial - a full entry: If-Range that does not hold gets the whole object (RFC 9110 §13.1.5)', async (t) => {
  const h = harness();
  h.origin.answer = rangeOrigin(BODY);
  await h.get('/full');
  const no = await h.get('/full', range('0-4', { 'if-range': '"other"' }));
  t.equal(no.status, 200);
  t.equal(no.body, BODY);
  const yes = await h.get('/full', range('0-4', { 'if-range': '"v1"' }));
  t.equal(yes.status, 206);
  t.equal(yes.body, 'abcde');
  t.equal(h.origin.requests.length, 1);
});

t.test('partial - a stale partial entry: a range inside it goes to the origin; the same strong ETag combines', async (t) => {
  const h = harness();
  h.origin.answer = rangeOrigin(BODY, { 'cache-control': 'max-age=10', etag: '"v1"' });
  await h.get('/s', range('0-9'));
  h.clock.advance(11 * SEC);
  const again = await h.get('/s', range('2-3'));
  t.equal(again.body, 'cd');
  t.equal(h.origin.requests.length, 2, 'stale: asked');
  const fresh = await h.get('/s', range('0-9'));
  t.equal(fresh.body, 'abcdefghij', 'combined with the fresh answer: fresh again');
  t.equal(h.origin.requests.length, 2);
});

t.test('partial - the parts of one entry are bounded: past MAX_PARTS a scattered range is served, not kept', async (t) => {
  const big = 'x'.repeat(4 * (MAX_PARTS + 4));
  const h = harness();
  h.origin.answer = rangeOrigin(big);
  for (let i = 0; i < MAX_PARTS; i++) await h.get('/cap', range(`${4 * i}-${4 * i}`));
  const bytes = h.cache.main.stats.bytes;
  const over = await h.get('/cap', range(`${4 * MAX_PARTS}-${4 * MAX_PARTS}`));
  t.equal(over.body, 'x');
  t.equal(h.cache.main.stats.bytes, bytes, 'nothing more charged');
  await h.get('/cap', range(`${4 * MAX_PARTS}-${4 * MAX_PARTS}`));
  t.equal(h.origin.requests.length, MAX_PARTS + 2, 'the part past the bound was not kept');
  await h.get('/cap', range('0-0'));
  t.equal(h.origin.requests.length, MAX_PARTS + 2, 'the parts held stay');
  // Adjacent ranges merge into one part: a client reading in order never reaches the bound.
  const seq = harness();
  seq.origin.answer = rangeOrigin(big);
  for (let i = 0; i < MAX_PARTS + 4; i++) await seq.get('/seq', range(`${4 * i}-${4 * i + 3}`));
  const whole = await seq.get('/seq');
  t.equal(whole.status, 200);
  t.equal(whole.body, big, 'read in order, the parts became the whole object');
  t.equal(seq.origin.requests.length, MAX_PARTS + 4);
});

t.test('partial - parts are charged to the budget', async (t) => {
  const h = harness();
  h.origin.answer = rangeOrigin('y'.repeat(100_000));
  await h.get('/b', range('0-9999'));
  const one = h.cache.main.stats.bytes;
  t.ok(one > 10_000, `charged ${one} bytes for a 10000-byte part`);
  await h.get('/b', range('50000-69999'));
  t.ok(h.cache.main.stats.bytes >= one + 20_000, 'the second part charged too');
});

t.test('partial - Vary applies: a part kept for one variant answers no other', async (t) => {
  const h = harness();
  h.origin.answer = (r, n) => {
    const lang = String(r.headers['accept-language']);
    const reply = rangeOrigin(lang === 'fr' ? BODY.toUpperCase() : BODY, { 'cache-control': 'max-age=60', etag: `"${lang}"`, vary: 'accept-language' })(r, n) as Reply;
    return reply;
  };
  t.equal((await h.get('/vary', range('0-3', { 'accept-language': 'en' }))).body, 'abcd');
  t.equal((await h.get('/vary', range('0-3', { 'accept-language': 'fr' }))).body, 'ABCD');
  t.equal(h.origin.requests.length, 2);
  t.equal((await h.get('/vary', range('1-2', { 'accept-language': 'en' }))).body, 'bc');
  t.equal((await h.get('/vary', range('1-2', { 'accept-language': 'fr' }))).body, 'BC');
  t.equal(h.origin.requests.length, 2, 'each variant from its own parts');
});

t.test('partial - replication: parts stay on the member that fetched them; a completed object is published by an owner only', async (t) => {
  const published: Entry[] = [];
  const owner = harness({}, { onStored: (e) => published.push(e) });
  owner.origin.answer = rangeOrigin(BODY);
  await owner.get('/r', range('0-9'));
  t.equal(published.length, 0, 'a partial entry is not published as a fill');
  await owner.get('/r', range('10-'));
  t.equal(published.length, 1, 'complete: published');
  t.equal(published[0]!.status, 200);
  t.equal(published[0]!.body.toString(), BODY);
  t.equal(published[0]!.parts, undefined);

  // Another member owns the key: the range still goes to the origin from here (a forward to
  // the owner asks for whole objects), and its parts are a hot copy, never published.
  const notOwnerPublished: Entry[] = [];
  const router: Router = { ...NoPeers, peersFor: () => ['peer-a'] };
  const member = harness({}, { router, onStored: (e) => notOwnerPublished.push(e) });
  member.origin.answer = rangeOrigin(BODY);
  await member.get('/r', range('0-9'));
  t.equal(member.origin.requests.length, 1, 'from the origin');
  t.equal((await member.get('/r', range('3-5'))).body, 'def', 'served here from its parts');
  t.equal(member.origin.requests.length, 1);
  await member.get('/r', range('10-'));
  t.equal(member.cache.hot.stats.entries, 1, 'kept in the hot set');
  t.equal(member.cache.main.stats.entries, 0);
  t.equal(notOwnerPublished.length, 0, 'a non-owner publishes nothing');
});

t.test('partial - range fetches hold at most an eighth of SIDECACHE_MAX_BYTES while they wait to be kept; past it they stream on, not kept', async (t) => {
  const h = harness({ SIDECACHE_MAX_BYTES: '64KiB', SIDECACHE_MAX_ENTRY_BYTES: '32KiB' });
  const part = (n: number) => Buffer.alloc(6 * 1024, 48 + n);
  const ends: Array<() => void> = [];
  // An origin that sends each 206's head and its whole body at once, and ends it when told: the
  // bodies of two fetches are held at the same time (6 KiB each against an 8 KiB bound).
  h.origin.dispatch = (r, sink) => {
    h.origin.requests.push(r);
    const n = h.origin.requests.length;
    const control = { pause() {}, resume() {}, destroy() {} };
    void Promise.resolve().then(() => {
      sink.onHead(206, { 'content-length': String(6 * 1024), 'content-range': `bytes 0-6143/12288`, etag: `"big"`, 'cache-control': 'max-age=300' }, control);
      sink.onData(part(n));
      ends.push(() => sink.onEnd());
    });
    return control;
  };
  /** Ends every fetch the origin holds, once it holds one. */
  const endAll = async () => {
    for (let i = 0; i < 20 && ends.length === 0; i++) await settle();
    for (const end of ends.splice(0)) end();
  };
  const a = h.get('/big-a', { range: 'bytes=0-6143' });
  const b = h.get('/big-b', { range: 'bytes=0-6143' });
  await settle();
  t.equal(ends.length, 2, 'both fetches hold their bodies');
  for (const end of ends.splice(0)) end();
  const [ra, rb] = await Promise.all([a, b]);
  t.equal(ra.status, 206);
  t.equal(rb.status, 206);
  t.same(rb.bytes, part(2), 'the second client gets its bytes all the same');
  const againP = h.get('/big-a', { range: 'bytes=0-99' });
  await settle();
  const again = await againP;
  t.match(again.headers['cache-status'], /hit/, 'the first, within the bound, was kept');
  const before = h.origin.requests.length;
  const bAgain = h.get('/big-b', { range: 'bytes=0-99' });
  await endAll();
  await bAgain;
  t.equal(h.origin.requests.length, before + 1, 'the second, past the bound, was not kept: the origin is asked again');
  const c = h.get('/big-c', { range: 'bytes=0-6143' });
  await endAll();
  await c;
  const cAgain = await h.get('/big-c', { range: 'bytes=0-99' });
  t.match(cAgain.headers['cache-status'], /hit/, 'what the finished fetches held is let go: a later one is kept again');
});
