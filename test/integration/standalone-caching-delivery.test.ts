// A standalone sidecar in reverse mode, what each client gets: HEAD and Range answered from the
// cache, single flight (and when it does not apply), bodies over the entry limit streamed whole,
// and the Cache-Status field. One origin and one sidecar are shared by the whole file; each
// test uses its own paths.
import { createHash } from 'node:crypto';
import t from 'tap';
import { startSidecar, waitFor } from '../../support/sidecar.js';
import { startStandalone } from '../../support/standalone.js';
import { standaloneRequests } from '../helpers/standalone-requests.js';

const MAX_ENTRY = 64 * 1024;

const { origin, sc } = await startStandalone(t, { SIDECACHE_MAX_ENTRY_BYTES: '64KiB' });
const { get, text, seen } = standaloneRequests(origin, sc);

/** Requests the sidecar has finished, by outcome, from /metrics. */
async function outcomeCount(outcome: string): Promise<number> {
  const text = await (await fetch(`${sc.adminUrl}/metrics`)).text();
  const m = new RegExp(`^sidecache_requests_total\\{outcome="${outcome}"\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

t.test('HEAD - served from a cached GET: no body, the same headers', async (t) => {
  const g = await get('/head/a');
  const body = await g.text();
  const h = await get('/head/a', {}, 'HEAD');
  t.equal(h.status, 200);
  t.equal(await h.text(), '');
  t.equal(h.headers.get('etag'), g.headers.get('etag'));
  t.equal(h.headers.get('content-length'), String(Buffer.byteLength(body)));
  t.equal(h.headers.get('content-type'), 'text/plain');
  t.match(h.headers.get('cache-status'), /hit/);
  t.equal(origin.count('/head/a'), 1);
});

t.test('HEAD - a HEAD miss fills the cache for the next GET', async (t) => {
  const h = await get('/head/b', {}, 'HEAD');
  t.equal(h.status, 200);
  t.equal(await h.text(), '');
  const g = await text('/head/b');
  t.equal(g.body, 'body of /head/b #1\n');
  t.match(g.status, /hit/);
  t.equal(origin.count('/head/b'), 1);
});

t.test('range - answered from a cached object: 206, several ranges 200, unsatisfiable 416', async (t) => {
  origin.route('/range/obj', (_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' });
    res.end('0123456789abcdefghij');
  });
  await text('/range/obj');
  const p = await text('/range/obj', { range: 'bytes=0-4' });
  t.equal(p.r.status, 206);
  t.equal(p.body, '01234');
  t.equal(p.r.headers.get('content-range'), 'bytes 0-4/20');
  t.equal(p.r.headers.get('content-length'), '5');
  const s = await text('/range/obj', { range: 'bytes=-3' });
  t.equal(s.body, 'hij');
  const m = await text('/range/obj', { range: 'bytes=0-1,5-6' });
  t.equal(m.r.status, 200, 'several ranges: the whole object');
  t.equal(m.body, '0123456789abcdefghij');
  const u = await text('/range/obj', { range: 'bytes=50-' });
  t.equal(u.r.status, 416);
  t.equal(u.r.headers.get('content-range'), 'bytes */20');
  t.equal(origin.count('/range/obj'), 1, 'all from the cache');
});

t.test('range - a Range miss goes to the origin with its Range; a 206 without a strong ETag is not kept (RFC 9111 §3.4)', async (t) => {
  origin.route('/range/miss', (req, res) => {
    if (req.headers.range === 'bytes=0-2') {
      res.writeHead(206, { 'cache-control': 'max-age=60', 'content-range': 'bytes 0-2/10' });
      res.end('abc');
      return;
    }
    res.writeHead(200, { 'cache-control': 'max-age=60' });
    res.end('abcdefghij');
  });
  const p = await text('/range/miss', { range: 'bytes=0-2' });
  t.equal(p.r.status, 206);
  t.equal(p.body, 'abc');
  t.equal(p.r.headers.get('content-range'), 'bytes 0-2/10');
  t.equal(seen('/range/miss')[0]?.headers.range, 'bytes=0-2', 'origin saw the Range');
  const full = await text('/range/miss');
  t.equal(full.body, 'abcdefghij', 'the partial answer was not kept, and no 206 answers a request without Range');
  t.equal(origin.count('/range/miss'), 2);
});

t.test('single-flight - a non-shareable response: concurrent requests each get their own fetch', async (t) => {
  origin.route('/sf/private', (_req, res, n) => {
    setTimeout(() => {
      res.writeHead(200, { 'cache-control': 'private, max-age=60' });
      res.end(`private #${n}`);
    }, 200);
  });
  const N = 6;
  const bodies = await Promise.all(Array.from({ length: N }, () => get('/sf/private').then((r) => r.text())));
  t.equal(new Set(bodies).size, N, 'every client got its own response');
  t.equal(origin.count('/sf/private'), N);
});

t.test('single-flight - a waiter still gets every byte when the client that started the fetch goes away', async (t) => {
  const total = 2 * 1024 * 1024;
  const data = pattern(total, 3);
  let release: (() => void) | undefined;
  origin.route('/sf/abandoned', (_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60' }); // chunked: shareable until it outgrows the entry limit
    res.write(data.subarray(0, 1024));
    release = () => {
      let off = 1024;
      const pump = () => {
        while (off < total) {
          const ok = res.write(data.subarray(off, off + 65_536));
          off += 65_536;
          if (!ok) { res.once('drain', pump); return; }
        }
        res.end();
      };
      pump();
    };
  });
  const ac = new AbortController();
  const leader = await get('/sf/abandoned', {}, 'GET', ac.signal);
  const waiter = await get('/sf/abandoned');
  t.match(waiter.headers.get('cache-status'), /collapsed/, 'the second request joined the first');
  const missesBefore = await outcomeCount('miss');
  ac.abort();
  await leader.body?.cancel().catch(() => {});
  // The sidecar has seen the leader go when it counts its request as finished.
  await waitFor(async () => (await outcomeCount('miss')) > missesBefore, 5_000, 'the leader to be gone');
  release!();
  const body = await Promise.race([
    waiter.arrayBuffer(),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error('waiter stalled')), 10_000)),
  ]);
  t.equal(body.byteLength, total);
  t.equal(sha(body), sha(data));
  t.equal(origin.count('/sf/abandoned'), 1);
});

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}
const sha = (b: Buffer | ArrayBuffer) => createHash('sha256').update(Buffer.from(b as ArrayBuffer)).digest('hex');

t.test('large bodies - over the entry limit: streamed whole, not stored', async (t) => {
  const big = pattern(5 * MAX_ENTRY + 123, 7);
  origin.route('/large/cl', (_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': big.length });
    res.end(big);
  });
  origin.route('/large/chunked', (_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60' });
    for (let i = 0; i < big.length; i += 10_000) res.write(big.subarray(i, i + 10_000));
    res.end();
  });
  for (const path of ['/large/cl', '/large/chunked']) {
    for (let i = 1; i <= 2; i++) {
      const r = await get(path);
      const body = Buffer.from(await r.arrayBuffer());
      t.equal(body.length, big.length, `${path} #${i}: every byte`);
      t.equal(sha(body), sha(big), `${path} #${i}: the same bytes`);
      t.notMatch(r.headers.get('cache-status'), path === '/large/cl' ? /stored|hit/ : /hit/);
    }
    t.equal(origin.count(path), 2, `${path}: second request went to the origin`);
  }
});

t.test('large bodies - under the entry limit: stored', async (t) => {
  const small = pattern(MAX_ENTRY - 1024, 9);
  origin.route('/large/small', (_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60' });
    res.end(small);
  });
  for (let i = 0; i < 2; i++) t.equal(sha(await (await get('/large/small')).arrayBuffer()), sha(small));
  t.equal(origin.count('/large/small'), 1);
});

t.test('cache-status - detail parameters on by default, left out when disabled', async (t) => {
  await text('/status/a');
  const hit = await text('/status/a');
  t.match(hit.status, new RegExp(`^sidecache; hit; ttl=\\d+; node="${sc.id}"; epoch=\\d+; seq=\\d+$`));
  const sc2 = await startSidecar({ env: { SIDECACHE_UPSTREAM: origin.url, SIDECACHE_CACHE_STATUS_DETAIL: 'false' } });
  t.teardown(() => sc2.stop());
  const miss = await fetch(`${sc2.url}/status/b`);
  await miss.text();
  t.equal(miss.headers.get('cache-status'), 'sidecache; fwd=uri-miss; fwd-status=200; stored');
  const hit2 = await fetch(`${sc2.url}/status/b`);
  await hit2.text();
  t.equal(hit2.headers.get('cache-status'), 'sidecache; hit');
  origin.route('/status/private', (_req, res) => { res.writeHead(200, { 'cache-control': 'private' }); res.end('p'); });
  const p = await fetch(`${sc2.url}/status/private`);
  await p.text();
  t.equal(p.headers.get('cache-status'), 'sidecache; fwd=uri-miss; fwd-status=200', 'no detail="not storable"');
});
