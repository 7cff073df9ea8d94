// File descriptors and active handles on /metrics (prom-client's process collectors under the
// sidecache_process_ prefix): what an operator, and the soak (check/soak.ts), watch for leaks.
// Real client connections must show in both, and be gone from both once closed.
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { startStandalone } from '../helpers/standalone.js';
import { waitFor, type SidecarProcess } from '../helpers/sidecar.js';

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
