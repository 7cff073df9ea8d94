// A standalone sidecar under input that would grow its work or memory without bound: many
// Vary variants of one URL, and a flood of writes with long URLs (each an invalidation).
// One origin and one sidecar for the file; each test uses its own paths.
import t from 'tap';
import { startSidecar, waitFor } from '../../support/sidecar.js';
import { startStandalone } from '../../support/standalone.js';

const HISTORY_BYTES = 1024 * 1024;

const { origin, sc } = await startStandalone(t, { SIDECACHE_INVAL_HISTORY_BYTES: '1MiB' });

/** A sample from /metrics (0 when absent). */
async function metric(name: string): Promise<number | undefined> {
  const text = await (await fetch(`${sc.adminUrl}/metrics`)).text();
  const m = new RegExp(`^${name} (\\d+(?:\\.\\d+)?(?:e\\+\\d+)?)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Runs `fn` over 0..n-1, `width` at a time. */
async function pool(n: number, width: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) await fn(next++);
  }));
}

t.test('variants - a URL with 300 variants keeps serving the 32 most recent as hits, each its own body', async (t) => {
  origin.route('/bounds/vary', (req, res, n) => {
    res.writeHead(200, { 'cache-control': 'public, max-age=300', vary: 'X-Variant' });
    res.end(`variant ${String(req.headers['x-variant'])} #${n}`);
  });
  const get = async (v: number) => {
    const r = await fetch(`${sc.url}/bounds/vary`, { headers: { 'x-variant': `v${v}` } });
    return { body: await r.text(), status: r.headers.get('cache-status') ?? '' };
  };
  const evictionsBefore = (await metric('sidecache_evictions_total')) ?? 0;
  const total = 300;
  for (let v = 0; v < total; v++) {
    const r = await get(v);
    if (r.body !== `variant v${v} #${v + 1}`) t.fail(`v${v}: expected its own body, got ${r.body}`);
  }
  t.equal(origin.count('/bounds/vary'), total, 'one origin request per variant');
  for (let v = total - 32; v < total; v++) {
    const r = await get(v);
    if (!/^sidecache; hit/.test(r.status) || r.body !== `variant v${v} #${v + 1}`) {
      t.fail(`v${v}: expected a hit with its own body, got ${r.status} ${r.body}`);
    }
  }
  t.equal(origin.count('/bounds/vary'), total, 'the 32 most recent variants are all hits');
  const early = await get(0);
  t.match(early.status, /fwd=uri-miss/, 'v0, the least recently used, was dropped: a miss');
  t.equal(early.body, `variant v0 #${total + 1}`, 'and fetched again with its own header');
  t.equal((await metric('sidecache_evictions_total'))! - evictionsBefore, total + 1 - 32, 'every dropped variant counted as an eviction');
  const again = await get(total - 1);
  t.match(again.status, /^sidecache; hit/, 'the most recent variant is still a hit');
});

t.test('history - a flood of POSTs with long URLs keeps the invalidation history within its bytes', async (t) => {
  const long = 'x'.repeat(6000);
  // Cached before the flood; a write in the flood and one after it must still invalidate.
  const first = await (await fetch(`${sc.url}/bounds/kept/first`)).text();
  t.equal(await (await fetch(`${sc.url}/bounds/kept/first`)).text(), first, 'cached');
  const last = await (await fetch(`${sc.url}/bounds/kept/last`)).text();
  const posts = 2_000;
  await pool(posts, 8, async (i) => {
    const path = i === 0 ? '/bounds/kept/first' : `/bounds/post/${long}/${i}`;
    const r = await fetch(`${sc.url}${path}`, { method: 'POST', body: 'x' });
    await r.arrayBuffer();
    if (r.status !== 200) t.fail(`POST ${i}: ${r.status}`);
  });
  const bytes = await metric('sidecache_inval_history_bytes');
  t.ok(bytes !== undefined && bytes > 0, `the history's bytes are exported (${bytes})`);
  t.ok(bytes! <= HISTORY_BYTES, `within SIDECACHE_INVAL_HISTORY_BYTES: ${bytes} <= ${HISTORY_BYTES} after ${posts} invalidations of ${long.length}+ characters`);
  t.ok((await metric('sidecache_inval_history_forgotten_total'))! > 0, 'the oldest records were forgotten');
  const refetched = await (await fetch(`${sc.url}/bounds/kept/first`)).text();
  t.not(refetched, first, 'the first write of the flood invalidated its URL');
  t.equal(await (await fetch(`${sc.url}/bounds/kept/last`)).text(), last, 'an unrelated entry stays cached');
  await (await fetch(`${sc.url}/bounds/kept/last`, { method: 'POST', body: 'x' })).arrayBuffer();
  t.not(await (await fetch(`${sc.url}/bounds/kept/last`)).text(), last, 'a write after the flood still invalidates');
  t.ok((await metric('sidecache_inval_history_bytes'))! <= HISTORY_BYTES, 'still within the bound');
});

t.test('writes - past SIDECACHE_WRITE_INVAL_RATE, write invalidations coalesce into soft ones of their parent path', async (t) => {
  const slow = await startSidecar({ env: { SIDECACHE_UPSTREAM: origin.url, SIDECACHE_WRITE_INVAL_RATE: '1' } });
  t.teardown(() => slow.stop());
  const read = async (path: string) => {
    const r = await fetch(`${slow.url}${path}`);
    return { body: await r.text(), status: r.headers.get('cache-status') ?? '' };
  };
  const sibling = await read('/coalesce/items/1');
  const other = await read('/coalesce/other/1');
  t.match((await read('/coalesce/items/1')).status, /^sidecache; hit/, 'cached');
  const writes = 50;
  for (let i = 0; i < writes; i++) {
    const r = await fetch(`${slow.url}/coalesce/items/${100 + i}`, { method: 'POST', body: 'x' });
    await r.arrayBuffer();
  }
  const coalesced = async () => {
    const text = await (await fetch(`${slow.adminUrl}/metrics`)).text();
    return Number(/^sidecache_write_invalidations_coalesced_total (\d+)$/m.exec(text)?.[1] ?? -1);
  };
  await waitFor(async () => (await coalesced()) >= writes - 2, 10_000, 'the coalesced writes to be published');
  t.ok((await coalesced()) <= writes - 1, 'at least the first write went out as it was');
  const after = await read('/coalesce/items/1');
  t.notMatch(after.status, /^sidecache; hit/, `a sibling of the written URLs is revalidated, not served as it was (${after.status})`);
  t.not(after.body, sibling.body, 'and the origin\'s new answer is served');
  t.equal(origin.count('/coalesce/items/1'), 2);
  t.match((await read('/coalesce/other/1')).status, /^sidecache; hit/, 'another path stays a hit');
  t.equal(origin.count('/coalesce/other/1'), 1, other.body);
});
