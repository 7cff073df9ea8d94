// Partial content through a real sidecar process (RFC 9111 §3.3, §3.4): a 206 is kept, ranges
// inside it come from the cache byte for byte, the rest of the object fetched as a range
// completes it, and the whole object is then served as a 200 without the origin; a purge
// removes parts as it removes whole entries.
import { createHash } from 'node:crypto';
import t from 'tap';
import { purge } from '../../support/sidecar.js';
import { startStandalone } from '../../support/standalone.js';

const { origin, sc } = await startStandalone(t, { SIDECACHE_MAX_ENTRY_BYTES: '1MiB' });

/** 200 KiB of every byte value: binary, so a byte out of place shows. */
const BODY = Buffer.from(Array.from({ length: 200 * 1024 }, (_, i) => (i * 7 + (i >> 8)) & 0xff));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Answers `bytes=a-b` / `bytes=a-` with a 206 of BODY, anything else with the whole. */
function ranged(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void {
  const h = { 'cache-control': 'max-age=60', etag: '"body-1"', 'content-type': 'application/octet-stream' };
  const m = /^bytes=(\d+)-(\d*)$/.exec(String(req.headers.range ?? ''));
  if (m === null) {
    res.writeHead(200, h);
    res.end(BODY);
    return;
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? BODY.length - 1 : Math.min(Number(m[2]), BODY.length - 1);
  res.writeHead(206, { ...h, 'content-range': `bytes ${start}-${end}/${BODY.length}` });
  res.end(BODY.subarray(start, end + 1));
}

async function get(path: string, headers: Record<string, string> = {}, method = 'GET') {
  const r = await fetch(`${sc.url}${path}`, { method, headers });
  return { r, body: Buffer.from(await r.arrayBuffer()), status: r.headers.get('cache-status') ?? '' };
}
const count = (path: string) => origin.requests.filter((r) => r.url === path).length;

t.test('partial - a 206 kept, ranges inside it from the cache, the rest fetched and combined, the whole served as a 200', async (t) => {
  origin.route('/part/video', ranged);
  const HALF = 100 * 1024;
  const first = await get('/part/video', { range: `bytes=0-${HALF - 1}` });
  t.equal(first.r.status, 206);
  t.equal(first.r.headers.get('content-range'), `bytes 0-${HALF - 1}/${BODY.length}`);
  t.ok(first.body.equals(BODY.subarray(0, HALF)), 'the first half, byte for byte');
  t.match(first.status, /fwd=uri-miss; fwd-status=206; stored/);

  const inside = await get('/part/video', { range: 'bytes=1000-70999' });
  t.equal(inside.r.status, 206);
  t.equal(inside.r.headers.get('content-range'), `bytes 1000-70999/${BODY.length}`);
  t.equal(inside.r.headers.get('content-length'), '70000');
  t.ok(inside.body.equals(BODY.subarray(1000, 71000)), 'a range inside the part, byte for byte');
  t.match(inside.status, /^sidecache; hit/);
  t.equal(count('/part/video'), 1, 'from the cache');

  const rest = await get('/part/video', { range: `bytes=${HALF}-` });
  t.equal(rest.r.status, 206);
  t.ok(rest.body.equals(BODY.subarray(HALF)), 'the second half from the origin');
  t.equal(origin.requests.filter((r) => r.url === '/part/video').at(-1)?.headers.range, `bytes=${HALF}-`, 'the client\'s Range went to the origin');

  const whole = await get('/part/video');
  t.equal(whole.r.status, 200, 'the parts cover the object: served whole');
  t.equal(whole.r.headers.get('content-length'), String(BODY.length));
  t.equal(whole.r.headers.get('content-range'), null);
  t.equal(sha(whole.body), sha(BODY), 'byte for byte');
  t.match(whole.status, /^sidecache; hit/);
  const across = await get('/part/video', { range: `bytes=${HALF - 10}-${HALF + 9}` });
  t.ok(across.body.equals(BODY.subarray(HALF - 10, HALF + 10)), 'a range across the seam of the two parts');
  t.equal(count('/part/video'), 2, 'two origin requests in all');
});

t.test('partial - a request without Range on parts only is a miss; a purge removes parts', async (t) => {
  origin.route('/part/purged', ranged);
  await get('/part/purged', { range: 'bytes=0-9999' });
  t.match((await get('/part/purged', { range: 'bytes=10-19' })).status, /^sidecache; hit/);
  const p = await purge(sc, { url: '/part/purged' });
  t.equal(p.status, 200);
  const after = await get('/part/purged', { range: 'bytes=10-19' });
  t.ok(after.body.equals(BODY.subarray(10, 20)));
  t.notMatch(after.status, /hit/, 'the purged part is not served');
  t.equal(count('/part/purged'), 2);
  const whole = await get('/part/purged');
  t.equal(whole.r.status, 200, 'never a 206 without a Range');
  t.equal(sha(whole.body), sha(BODY));
  t.equal(count('/part/purged'), 3);
});
