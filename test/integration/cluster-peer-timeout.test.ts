// A slow origin is not a dead owner: an owner that accepted a forwarded request and waits on
// its origin keeps it (no breaker, no second origin fetch), while an owner that is gone
// (killed) or cannot accept (stopped) is still skipped after SIDECACHE_PEER_TIMEOUT.
import t from 'tap';
import { startCluster } from '../../support/cluster.js';
import { startNats } from '../../support/nats-server.js';
import { startOrigin } from '../../support/origin.js';
import { waitFor, type SidecarProcess } from '../../support/sidecar.js';

// Long enough that a sidecar on a loaded machine sends its 102 in time, short beside SLOW_MS.
const PEER_TIMEOUT_MS = 1000;
/** The origin answers this long after a request: well past the peer timeout. */
const SLOW_MS = 3 * PEER_TIMEOUT_MS;

const nats = await startNats({ nodes: 1 });
t.teardown(() => nats.stop());
const origin = await startOrigin({
  // A probe (x-probe) is answered at once and not stored, so tests can find a key's owner in
  // the answer's Cache-Status without caching the key; everything else answers after SLOW_MS.
  '/slow/*': (req, res, n) => {
    const probe = req.headers['x-probe'] !== undefined;
    setTimeout(() => {
      res.writeHead(200, { 'cache-control': probe ? 'no-store' : 'public, max-age=60', 'content-type': 'text/plain' });
      res.end(`${req.url} #${n}`);
    }, probe ? 0 : SLOW_MS);
  },
});
t.teardown(() => origin.close());

const slowGets = (path: string): number => origin.requests.filter((r) => r.url === path && r.headers['x-probe'] === undefined).length;

async function get(sc: SidecarProcess, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; cacheStatus: string }> {
  const r = await fetch(sc.url + path, { headers });
  return { status: r.status, body: await r.text(), cacheStatus: r.headers.get('cache-status') ?? '' };
}

/** Sum of a counter over its labels. */
async function metric(sc: SidecarProcess, name: string): Promise<number> {
  const text = await (await fetch(`${sc.adminUrl}/metrics`)).text();
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) sum += Number(m[1]);
  return sum;
}

/** The owner named first in a forwarded answer's Cache-Status, or undefined when served here. */
function ownerOf(cacheStatus: string): string | undefined {
  const entries = cacheStatus.split(', sidecache');
  return entries.length === 2 ? /node="([^"]+)"/.exec(entries[0]!)?.[1] : undefined;
}

/** Keys under /slow/ whose primary is `owner`, found by probing at `at`. */
async function keysOwnedBy(at: SidecarProcess, owner: SidecarProcess, n: number, tag: string): Promise<string[]> {
  const out: string[] = [];
  for (let k = 0; out.length < n && k < 200; k++) {
    const path = `/slow/${tag}-${k}`;
    if (ownerOf((await get(at, path, { 'x-probe': '1' })).cacheStatus) === owner.id) out.push(path);
  }
  if (out.length < n) throw new Error(`no ${n} keys owned by ${owner.id} among 200`);
  return out;
}

const env = { SIDECACHE_PEER_TIMEOUT: `${PEER_TIMEOUT_MS}ms`, SIDECACHE_HEADERS_TIMEOUT: '20s' };

t.test('peers - an owner waiting on a slow origin is waited for: one origin request, no breaker', async (t) => {
  const { sidecars } = await startCluster(2, { natsUrls: nats.urls, upstream: origin.url, env });
  t.teardown(() => Promise.all(sidecars.map((s) => s.kill())));
  const [a, b] = sidecars as [SidecarProcess, SidecarProcess];
  const [k1, k2] = await keysOwnedBy(a, b, 2, 'wait');
  const errors = await metric(a, 'sidecache_peer_errors_total');
  const degraded = await metric(a, 'sidecache_degraded_fetches_total');

  const r1 = await get(a, k1!);
  t.equal(r1.status, 200);
  t.match(r1.body, `${k1} #`);
  t.equal(ownerOf(r1.cacheStatus), b.id, 'answered by the owner');
  t.equal(slowGets(k1!), 1, 'the origin saw one request');
  t.equal(await metric(a, 'sidecache_peer_errors_total'), errors, 'no peer error');
  t.equal(await metric(a, 'sidecache_degraded_fetches_total'), degraded, 'no degraded fetch');

  // The breaker did not open: the next miss owned by b is forwarded to b again.
  const r2 = await get(a, k2!);
  t.equal(ownerOf(r2.cacheStatus), b.id, 'the next request is still forwarded');
  t.equal(slowGets(k2!), 1);
  t.equal(await metric(a, 'sidecache_degraded_fetches_total'), degraded);
  t.match((await get(a, k1!)).cacheStatus, /^sidecache; hit/, 'and the first answer was kept');
});

t.test('peers - a killed owner is skipped at once: degraded fetch, breaker open', async (t) => {
  const { sidecars } = await startCluster(2, { natsUrls: nats.urls, upstream: origin.url, env });
  t.teardown(() => Promise.all(sidecars.map((s) => s.kill())));
  const [a, b] = sidecars as [SidecarProcess, SidecarProcess];
  const [k1, k2] = await keysOwnedBy(a, b, 2, 'dead');
  const errors = await metric(a, 'sidecache_peer_errors_total');
  const degraded = await metric(a, 'sidecache_degraded_fetches_total');
  await b.kill();

  const started = Date.now();
  const r1 = await get(a, k1!);
  const tookMs = Date.now() - started;
  t.equal(r1.status, 200);
  t.match(r1.body, `${k1} #`, 'fetched by a itself');
  t.equal(await metric(a, 'sidecache_peer_errors_total'), errors + 1, 'one peer error');
  t.equal(await metric(a, 'sidecache_degraded_fetches_total'), degraded + 1, 'one degraded fetch');
  // A refused connection is not given the origin's allowance (20 s): only the origin's delay.
  t.ok(tookMs < 10_000, `answered in ${tookMs} ms, far below the headers timeout`);
  const forwarded = await metric(a, 'sidecache_forwarded_requests_total');
  await get(a, k2!);
  t.equal(await metric(a, 'sidecache_forwarded_requests_total'), forwarded, 'the breaker is open: not forwarded again');
  // What a fetched itself is its own answer, fenced by it: kept (as a hot copy), not taken for
  // a peer's answer without a fence.
  const again = await get(a, k1!);
  t.match(again.cacheStatus, /^sidecache; hit/, 'the degraded fetch was kept');
  t.match(again.body, r1.body, 'the same body');
  t.equal(await metric(a, 'sidecache_fences_untrusted_total{source="peer",reason="missing"}'), 0, 'not counted as a peer answer without a fence');
});

t.test('peers - an owner that cannot accept (stopped process) is skipped after the peer timeout', async (t) => {
  const { sidecars } = await startCluster(2, { natsUrls: nats.urls, upstream: origin.url, env });
  const [a, b] = sidecars as [SidecarProcess, SidecarProcess];
  t.teardown(async () => {
    b.proc.kill('SIGCONT');
    await Promise.all(sidecars.map((s) => s.kill()));
  });
  const [k1] = await keysOwnedBy(a, b, 1, 'stopped');
  const degraded = await metric(a, 'sidecache_degraded_fetches_total');
  // Its sockets still accept connections (the kernel does), but nothing reads them.
  b.proc.kill('SIGSTOP');

  const started = Date.now();
  const r1 = await get(a, k1!);
  const tookMs = Date.now() - started;
  t.equal(r1.status, 200);
  t.match(r1.body, `${k1} #`, 'fetched by a itself');
  t.equal(await metric(a, 'sidecache_degraded_fetches_total'), degraded + 1, 'one degraded fetch');
  t.ok(tookMs < 10_000, `answered in ${tookMs} ms, far below the headers timeout`);
  await waitFor(() => slowGets(k1!) === 1, 5_000, 'one origin request');
});
