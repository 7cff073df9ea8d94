// Read-your-writes across a fetch under way: a write through this sidecar (RFC 9111 §4.4)
// removes the key at once, but the store's fence check learns of it only when the write's
// invalidation comes back through the log. A fetch that began before the write (a flight, or a
// range fetch, which is in no flight table) may carry the version the write replaced, and must
// not be stored: the writer's next read goes to the origin and sees its write.
import t from 'tap';
import { gate, harness, settle, type Reply } from '../../helpers/proxy-harness.js';

const BODY_V1 = 'version-1 '.repeat(10);
const BODY_V2 = 'version-2 '.repeat(10);

/** An origin whose GETs of /doc wait for the test, and whose PUT makes version 2. */
function setUp() {
  const h = harness();
  let version = 1;
  const held = gate<void>();
  let holdNext = true;
  h.origin.answer = async (r): Promise<Reply> => {
    if (r.method === 'PUT') {
      version = 2;
      return { status: 204 };
    }
    const v = version;
    if (holdNext) {
      holdNext = false;
      await held.promise;
    }
    const body = v === 1 ? BODY_V1 : BODY_V2;
    const range = r.headers.range;
    if (typeof range === 'string') {
      return { status: 206, headers: { 'cache-control': 'max-age=300', etag: `"v${v}"`, 'content-range': `bytes 0-9/${body.length}` }, body: body.slice(0, 10) };
    }
    return { status: 200, headers: { 'cache-control': 'max-age=300', etag: `"v${v}"` }, body };
  };
  return { h, release: () => held.open() };
}

t.test('write during fetch - a GET that began before a write through this sidecar is not stored (§4.4, read-your-writes)', async (t) => {
  const { h, release } = setUp();
  const before = h.get('/doc');
  await settle();
  const put = await h.get('/doc', {}, 'PUT');
  t.equal(put.status, 204, 'the write went through');
  release();
  const first = await before;
  t.equal(first.body, BODY_V1, 'the read that began before the write gets what the origin sent it');
  const after = await h.get('/doc');
  t.equal(after.body, BODY_V2, 'the writer\'s next read sees its write');
  t.notMatch(after.headers['cache-status'], /hit/, 'from the origin, not from the copy fetched before the write');
});

t.test('write during fetch - a range fetch that began before a write is not kept as parts (§3.3, §4.4)', async (t) => {
  const { h, release } = setUp();
  const before = h.get('/doc', { range: 'bytes=0-9' });
  await settle();
  const put = await h.get('/doc', {}, 'PUT');
  t.equal(put.status, 204);
  release();
  const first = await before;
  t.equal(first.status, 206);
  t.equal(first.body, BODY_V1.slice(0, 10));
  const after = await h.get('/doc', { range: 'bytes=0-9' });
  t.equal(after.body, BODY_V2.slice(0, 10), 'the next range read sees the write');
  t.notMatch(after.headers['cache-status'], /hit/);
});

t.test('write during fetch - a fetch that began after the write is stored as usual', async (t) => {
  const { h, release } = setUp();
  release();
  await h.get('/doc', {}, 'PUT');
  const miss = await h.get('/doc');
  t.equal(miss.body, BODY_V2);
  const hit = await h.get('/doc');
  t.match(hit.headers['cache-status'], /hit/, 'stored: no write came after it began');
  t.equal(hit.body, BODY_V2);
});

t.test('write during fetch - writes are remembered up to a bound; a fetch older than all of them counts as overtaken', async (t) => {
  const { Flights } = await import('../../../src/proxy/flight.js');
  const f = new Flights();
  const seq = f.writeSeq;
  t.notOk(f.writtenSince('/a', seq), 'no write yet');
  f.wrote(['/b']);
  t.notOk(f.writtenSince('/a', seq), 'a write to another key');
  t.ok(f.writtenSince('/b', seq), 'a write to this key');
  for (let i = 0; i < 300; i++) f.wrote([`/x${i}`]);
  t.ok(f.writtenSince('/a', seq), 'the writes since are no longer all remembered: assume one removed it');
  t.notOk(f.writtenSince('/a', f.writeSeq - 10), 'a recent fetch is judged by the writes remembered');
});
