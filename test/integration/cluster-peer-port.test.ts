// The peer port under forged traffic: what an unauthenticated sender controls must not grow
// the metrics or the log. One sidecar on a 1-node NATS is enough.
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { signRequest } from '../../src/cluster/peer-auth.js';
import { CLUSTER_SECRET, startCluster } from '../../support/cluster.js';
import { startNats } from '../../support/nats-server.js';
import { startOrigin } from '../../support/origin.js';
import { ADMIN_TOKEN, waitFor } from '../../support/sidecar.js';

const nats = await startNats({ nodes: 1 });
t.teardown(() => nats.stop());
const origin = await startOrigin();
t.teardown(() => origin.close());

/** The refusal log's window: at most one warn line per reason in it. */
const LOG_WINDOW_MS = 10_000;

t.test('peer port - 3,000 forged cluster names add no metric series, and the warn lines stay bounded', async (t) => {
  const { cluster, sidecars } = await startCluster(1, { natsUrls: nats.urls, upstream: origin.url });
  const sc = sidecars[0]!;
  t.teardown(() => sc.stop());
  const started = Date.now();
  const statuses = new Map<number, number>();
  const send = async (headers: Record<string, string>) => {
    const r = await fetch(`${sc.peerUrl}/p`, { headers });
    await r.arrayBuffer();
    statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
  };
  const N = 3_000;
  for (let i = 0; i < N; i += 50) {
    await Promise.all(Array.from({ length: 50 }, (_, j) =>
      send(signRequest('forger-secret-0123456789', { cluster: `forged-${i + j}-${'x'.repeat(40)}`, from: `n${i + j}`, epoch: 1 }, 'GET', '/p'))));
  }
  // The other refusals too, each from a sender that varies what it controls.
  for (let i = 0; i < 50; i++) {
    await send({});
    await send(signRequest('forger-secret-0123456789', { cluster, from: `bad-sig-${i}`, epoch: 1 }, 'GET', '/p'));
    await send(signRequest(CLUSTER_SECRET, { cluster, from: `stale-${i}`, epoch: 1 }, 'GET', '/p', Date.now() - 120_000));
  }
  const elapsedMs = Date.now() - started;
  t.same([...statuses.entries()].sort(), [[401, 150], [403, N]], 'every forged request was refused');

  const metrics = await (await fetch(`${sc.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
  const series = metrics.split('\n').filter((l) => l.startsWith('sidecache_peer_rejected_total{'));
  t.equal(/forged-|bad-sig-|stale-\d/.test(metrics), false, 'nothing the sender chose is in /metrics');
  t.ok(series.length >= 1 && series.length <= 5, `a fixed set of series (${series.length}): ${series.slice(0, 5).join(' | ')}`);
  const total = series.reduce((n, l) => n + Number(l.split(' ').pop()), 0);
  t.equal(total, N + 150, 'every refusal is counted');

  const warnLines = () => sc.output().split('\n').filter((l) => l.includes('peer request refused'));
  await waitFor(() => warnLines().length > 0, 10_000, 'a refusal to be logged');
  // At most one line per reason (4 used here) per window, plus one for the window in progress.
  const bound = 4 * (Math.ceil(elapsedMs / LOG_WINDOW_MS) + 1);
  t.ok(warnLines().length <= bound, `${warnLines().length} warn lines for ${N + 150} refusals (bound ${bound})`);
  t.equal(warnLines().some((l) => l.includes('forged-')), false, 'the claimed cluster names are not logged');
});

t.test('peer port - slow senders: at most SIDECACHE_MAX_CONNECTIONS held, the rest closed on arrival, the held ones closed after the head timeout', async (t) => {
  const CAP = 8;
  const HEADERS_TIMEOUT_MS = 5000;
  const { sidecars } = await startCluster(1, { natsUrls: nats.urls, upstream: origin.url, env: {
    SIDECACHE_MAX_CONNECTIONS: String(CAP),
    SIDECACHE_CLIENT_HEADERS_TIMEOUT: `${HEADERS_TIMEOUT_MS}ms`,
    SIDECACHE_CLIENT_REQUEST_TIMEOUT: `${HEADERS_TIMEOUT_MS}ms`,
  } });
  const sc = sidecars[0]!;
  t.teardown(() => sc.stop());
  const peerPort = Number(new URL(sc.peerUrl).port);
  const dropped = async () => {
    const text = await (await fetch(`${sc.adminUrl}/metrics`)).text();
    return Number(/^sidecache_peer_connections_dropped_total (\S+)$/m.exec(text)?.[1] ?? NaN);
  };
  interface Slow { socket: Socket; openedAt: number; closedAt?: number; received: number }
  const open = (): Slow => {
    const socket = connect(peerPort, '127.0.0.1');
    const s: Slow = { socket, openedAt: Date.now(), received: 0 };
    const drip = setInterval(() => { if (socket.writable) socket.write('X-Drip: a\r\n'); }, 100);
    socket.on('connect', () => socket.write('GET /p HTTP/1.1\r\nHost: x\r\n'));
    socket.on('data', (c: Buffer) => { s.received += c.length; });
    socket.on('error', () => { /* a dropped connection may be reset */ });
    socket.on('close', () => { clearInterval(drip); s.closedAt = Date.now(); });
    return s;
  };
  const held = Array.from({ length: CAP }, open);
  await Promise.all(held.map((s) => new Promise((r) => s.socket.once('connect', r))));
  // Accepted in order: once these are in, every later connection is over the cap.
  const excess: Slow[] = [];
  for (let i = 0; i < 2 * CAP; i++) excess.push(open());
  await waitFor(() => excess.every((s) => s.closedAt !== undefined), 10_000, 'the connections over the cap closed');
  t.ok(held.every((s) => s.closedAt === undefined), 'the first ones were held meanwhile');
  t.equal(await dropped(), 2 * CAP, 'each connection over the cap was dropped and counted');
  await waitFor(() => held.every((s) => s.closedAt !== undefined), 60_000, 'the held ones closed');
  for (const s of held) t.ok(s.closedAt! - s.openedAt >= HEADERS_TIMEOUT_MS - 50, 'not before the head timeout');
  t.ok([...held, ...excess].every((s) => s.received === 0), 'no answer to an unfinished head');
  const r = await fetch(`${sc.url}/after-slow-peers`);
  t.equal(r.status, 200, 'the sidecar still serves');
  await r.arrayBuffer();
});
