// File descriptors and active handles on /metrics (prom-client's process collectors under the
// sidecache_process_ prefix): what an operator, and the soak (check/soak.ts), watch for leaks.
// Real client connections must show in both, and be gone from both once closed; so must the
// connections a burst of forwarded requests opens to a peer, once idle.
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { startCluster } from '../../support/cluster.js';
import { startNats } from '../../support/nats-server.js';
import { startOrigin } from '../../support/origin.js';
import { startStandalone } from '../../support/standalone.js';
import { waitFor, type SidecarProcess } from '../../support/sidecar.js';

const FDS = 'sidecache_process_process_open_fds';
const HANDLES = 'sidecache_process_nodejs_active_handles_total';
const CONNECTIONS = 'sidecache_client_connections';
const N = 24;
/** Sockets a scrape and the origin pool may add or drop between two readings. */
const SLACK = 4;

async function metrics(sc: SidecarProcess): Promise<Record<string, number>> {
  // A fresh connection per scrape, closed after it: no keep-alive socket of ours lingers in the counts.
  const text = await (await fetch(`${sc.adminUrl}/metrics`, { headers: { connection: 'close' } })).text();
  const out: Record<string, number> = {};
  for (const name of [FDS, HANDLES, CONNECTIONS]) {
    const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
    if (m === null) throw new Error(`no ${name} in /metrics`);
    out[name] = Number(m[1]);
  }
  return out;
}

/** A keep-alive client connection that has had one request answered and stays open. */
function openClient(port: number, i: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    s.on('error', reject);
    s.on('connect', () => s.write(`GET /fd-${i % 4} HTTP/1.1\r\nHost: x\r\n\r\n`));
    s.on('data', (c: Buffer) => {
      got += c.toString('latin1');
      if (/\r\n\r\n[\s\S]*#\d+\n$/.test(got)) resolve(s);
    });
  });
}

t.test('process metrics - open client connections raise file descriptors and active handles by their number; closed, they are gone', async (t) => {
  const { sc } = await startStandalone(t);
  const port = Number(new URL(sc.url).port);
  // Warm the origin pool first, so that its sockets are in the baseline.
  for (let i = 0; i < 4; i++) await (await fetch(`${sc.url}/fd-${i}`, { headers: { connection: 'close' } })).text();
  await waitFor(async () => (await metrics(sc))[CONNECTIONS] === 0, 10_000, 'no client connection open');
  const before = await metrics(sc);
  t.ok(before[FDS]! > 0 && before[HANDLES]! > 0, `both exported and above 0 (fds ${before[FDS]}, handles ${before[HANDLES]})`);

  const sockets: Socket[] = [];
  t.teardown(() => { for (const s of sockets) s.destroy(); });
  for (let i = 0; i < N; i++) sockets.push(await openClient(port, i));
  await waitFor(async () => (await metrics(sc))[CONNECTIONS] === N, 10_000, `${N} client connections open`);
  const open = await metrics(sc);
  t.ok(open[FDS]! >= before[FDS]! + N && open[FDS]! <= before[FDS]! + N + SLACK,
    `fds ${before[FDS]} -> ${open[FDS]} with ${N} connections open`);
  t.ok(open[HANDLES]! >= before[HANDLES]! + N && open[HANDLES]! <= before[HANDLES]! + N + SLACK,
    `active handles ${before[HANDLES]} -> ${open[HANDLES]} with ${N} connections open`);

  for (const s of sockets) s.end();
  await waitFor(async () => {
    const m = await metrics(sc);
    return m[CONNECTIONS] === 0 && m[FDS]! <= before[FDS]! + SLACK && m[HANDLES]! <= before[HANDLES]! + SLACK;
  }, 10_000, 'fds and handles back to their count before the connections');
  const after = await metrics(sc);
  t.ok(Math.abs(after[FDS]! - before[FDS]!) <= SLACK, `fds back: ${before[FDS]} -> ${open[FDS]} -> ${after[FDS]}`);
  t.ok(Math.abs(after[HANDLES]! - before[HANDLES]!) <= SLACK, `handles back: ${before[HANDLES]} -> ${open[HANDLES]} -> ${after[HANDLES]}`);
});

t.test('process metrics - connections a burst of forwarded requests opens to a peer are closed once idle for 10 s, not kept for the peer server\'s 65 s keep-alive', async (t) => {
  const nats = await startNats({ nodes: 1 });
  t.teardown(() => nats.stop());
  // Slow answers: the burst's forwarded requests overlap, so each needs a connection of its own.
  const origin = await startOrigin({
    '/burst/*': (req, res, n) => setTimeout(() => {
      res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' });
      res.end(`${req.url} #${n}\n`);
    }, 300),
  });
  t.teardown(() => origin.close());
  const { sidecars } = await startCluster(2, { natsUrls: nats.urls, upstream: origin.url });
  const a = sidecars[0]!;
  t.teardown(async () => { for (const s of sidecars) await s.stop(); });
  const before = await metrics(a);

  const answers = await Promise.all(Array.from({ length: 40 }, async (_, i) => {
    const r = await fetch(`${a.url}/burst/${i}`, { headers: { connection: 'close' } });
    await r.text();
    return r.headers.get('cache-status') ?? '';
  }));
  const forwarded = answers.filter((cs) => cs.split(',').length > 1).length;
  t.ok(forwarded >= 10, `${forwarded} of 40 went through the peer (its keys)`);
  const busy = await metrics(a);
  t.ok(busy[FDS]! >= before[FDS]! + 8, `the burst left connections to the peer open: fds ${before[FDS]} -> ${busy[FDS]}`);

  // Idle from here on: within 10 s and a margin they are closed (the old code kept them 63 s).
  const idleAt = Date.now();
  let now = busy;
  for (let n = 0; n < 100 && Date.now() - idleAt < 25_000 && now[FDS]! > before[FDS]! + SLACK; n++) {
    await new Promise((r) => setTimeout(r, 250));
    now = await metrics(a);
  }
  t.ok(now[FDS]! <= before[FDS]! + SLACK, `fds back to ${now[FDS]} (from ${busy[FDS]}; ${before[FDS]} before the burst) ${((Date.now() - idleAt) / 1000).toFixed(1)} s after the burst`);
  t.ok(now[HANDLES]! <= before[HANDLES]! + SLACK, `handles ${before[HANDLES]} -> ${busy[HANDLES]} -> ${now[HANDLES]}`);
});
