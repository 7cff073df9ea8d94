// Slow clients (slowloris) against a real sidecar: more connections than
// SIDECACHE_MAX_CONNECTIONS, each dribbling its request head. The sidecar never holds more
// than the cap, closes each held one with 408 once SIDECACHE_CLIENT_HEADERS_TIMEOUT has
// passed, and then serves as before.
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { startOrigin, type TestOrigin } from '../../support/origin.js';
import { startSidecar, waitFor, type SidecarProcess } from '../../support/sidecar.js';

const CAP = 16;
const SLOW = 3 * CAP;
/** Long enough that the held clients outlive the phase in which the excess ones are opened. */
const HEADERS_TIMEOUT_MS = 5000;

let origin: TestOrigin;
let sc: SidecarProcess;
let port: number;

t.before(async () => {
  origin = await startOrigin();
  sc = await startSidecar({ env: {
    SIDECACHE_UPSTREAM: origin.url,
    SIDECACHE_MAX_CONNECTIONS: String(CAP),
    SIDECACHE_CLIENT_HEADERS_TIMEOUT: `${HEADERS_TIMEOUT_MS}ms`,
    SIDECACHE_CLIENT_REQUEST_TIMEOUT: `${HEADERS_TIMEOUT_MS}ms`,
  } });
  port = Number(new URL(sc.url).port);
});
t.teardown(async () => {
  await sc.stop();
  await origin.close();
});

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${sc.adminUrl}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`no ${name} in /metrics`);
  return Number(m[1]);
}

interface Slow {
  readonly socket: Socket;
  readonly openedAt: number;
  received: string;
  closedAt: number | undefined;
}

/** A client that sends a request head one header line at a time and never finishes it. */
function slowClient(i: number): Slow {
  const socket = connect(port, '127.0.0.1');
  const s: Slow = { socket, openedAt: Date.now(), received: '', closedAt: undefined };
  let n = 0;
  const drip = setInterval(() => { if (socket.writable) socket.write(`X-Drip-${n++}: ${'a'.repeat(8)}\r\n`); }, 100);
  socket.on('connect', () => socket.write(`GET /slow-${i} HTTP/1.1\r\nHost: x\r\n`));
  socket.on('data', (c: Buffer) => { s.received += c.toString('latin1'); });
  socket.on('error', () => { /* a dropped connection may be reset */ });
  socket.on('close', () => { clearInterval(drip); s.closedAt = Date.now(); });
  return s;
}

t.test('resources - slow clients: never more than SIDECACHE_MAX_CONNECTIONS held, each closed with 408 after the head timeout, then normal service', async (t) => {
  let maxSeen = 0;
  let polling = true;
  const poller = (async () => {
    while (polling) {
      maxSeen = Math.max(maxSeen, await metric('sidecache_client_connections'));
      await new Promise((r) => setTimeout(r, 20));
    }
  })();

  // The cap's worth first, each held by the sidecar (the gauge says so) ...
  const held: Slow[] = [];
  for (let i = 0; i < CAP; i++) held.push(slowClient(i));
  await waitFor(async () => (await metric('sidecache_client_connections')) === CAP, 10_000, 'the first clients held');
  // ... then twice as many more while those are held: each is closed on arrival, unanswered.
  const excess: Slow[] = [];
  for (let i = CAP; i < SLOW; i++) excess.push(slowClient(i));
  await waitFor(() => excess.every((s) => s.closedAt !== undefined), 10_000, 'every client beyond the cap closed');
  t.ok(held.every((s) => s.closedAt === undefined), 'the held clients were still open meanwhile');
  // The held ones get 408 once their head is overdue.
  await waitFor(() => held.every((s) => s.closedAt !== undefined), 60_000, 'every held client closed');
  polling = false;
  await poller;

  const timedOut = held.filter((s) => s.received.startsWith('HTTP/1.1 408'));
  const dropped = excess.filter((s) => s.received === '');
  t.comment(`${SLOW} slow clients against a cap of ${CAP}: ${timedOut.length} held and closed with 408, ${dropped.length} closed on arrival; at most ${maxSeen} connections open`);
  t.ok(maxSeen <= CAP, `the sidecar held at most ${maxSeen} of at most ${CAP}`);
  t.equal(maxSeen, CAP, 'the gauge saw the held connections');
  t.equal(timedOut.length, CAP, 'each held client got 408');
  t.equal(dropped.length, SLOW - CAP, 'each client beyond the cap was closed unanswered');
  for (const s of timedOut) t.ok(s.closedAt! - s.openedAt >= HEADERS_TIMEOUT_MS - 50, 'closed no sooner than the head timeout');
  t.ok(await metric('sidecache_client_connections_dropped_total') >= dropped.length, 'drops are counted');
  await waitFor(async () => (await metric('sidecache_client_connections')) === 0, 10_000, 'no connection held');

  const r = await fetch(`${sc.url}/after-slowloris`);
  t.equal(r.status, 200, 'the sidecar serves normally afterwards');
  t.match(await r.text(), /body of \/after-slowloris/);
  t.equal(origin.count('/after-slowloris'), 1);
  t.equal(origin.requests.filter((q) => q.url?.startsWith('/slow-')).length, 0, 'no unfinished head reached the origin');
});
