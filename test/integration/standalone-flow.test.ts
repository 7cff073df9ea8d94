// Flow control between a client and the origin through the sidecar: a client that stops
// reading stops the origin (backpressure), reading again resumes it, and a client that goes
// away mid-body takes the origin's response with it.
import { connect, type Socket } from 'node:net';
import type { ServerResponse } from 'node:http';
import t, { type Test } from 'tap';
import { startOrigin, type TestOrigin } from '../../support/origin.js';
import { startSidecar, waitFor, type SidecarProcess } from '../../support/sidecar.js';

const TOTAL = 64 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 'x');

let origin: TestOrigin;
let sc: SidecarProcess;
let port: number;

/** Bytes each big response has handed to its socket, and whether it was closed before the end. */
const written = new Map<string, number>();
const cut = new Set<string>();

/** Writes TOTAL bytes as fast as the socket takes them (honouring write() === false). */
function stream(id: string, res: ServerResponse, cacheControl: string): void {
  res.writeHead(200, { 'cache-control': cacheControl, 'content-length': TOTAL, 'content-type': 'application/octet-stream' });
  let sent = 0;
  written.set(id, 0);
  res.on('close', () => { if (!res.writableFinished) cut.add(id); });
  const more = (): void => {
    while (sent < TOTAL) {
      sent += CHUNK.length;
      written.set(id, sent);
      const ok = sent >= TOTAL ? (res.end(CHUNK), true) : res.write(CHUNK);
      if (!ok) {
        res.once('drain', more);
        return;
      }
    }
  };
  more();
}

t.before(async () => {
  origin = await startOrigin({
    '/big/nostore/*': (req, res) => stream(req.url!, res, 'no-store'),
    '/big/pass/*': (req, res) => { req.resume(); stream(req.url!, res, 'no-store'); },
    // A cacheable answer that takes 300 ms to start.
    '/slow/*': (req, res) => {
      setTimeout(() => {
        const body = `slow ${req.url}\n`;
        res.writeHead(200, { 'cache-control': 'public, max-age=60', 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      }, 300);
    },
  });
  sc = await startSidecar({ env: { SIDECACHE_UPSTREAM: origin.url } });
  port = Number(new URL(sc.url).port);
});
t.teardown(async () => {
  await sc.stop();
  await origin.close();
});

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

/** Sends `head`, reads nothing for a while, checks the origin stalled, then reads it all. */
async function stallThenRead(t: Test, id: string, head: string): Promise<void> {
  const s = await open();
  s.pause();
  s.write(head);
  await waitFor(() => (written.get(id) ?? 0) > 0, 10_000, 'the origin to start');
  // Let every buffer on the way fill up, then the origin must have stopped well short.
  let last = -1;
  await waitFor(async () => {
    const now = written.get(id)!;
    const settled = now === last;
    last = now;
    if (!settled) await new Promise((r) => setTimeout(r, 300));
    return settled;
  }, 20_000, 'the origin to stall');
  t.ok(last < TOTAL / 2, `the origin stopped while the client did not read (${last} of ${TOTAL} bytes written)`);
  let got = 0;
  let inHead = true;
  await new Promise<void>((resolve, reject) => {
    s.on('data', (c: Buffer) => {
      if (inHead) {
        const i = c.indexOf('\r\n\r\n');
        t.match(c.subarray(0, i).toString('latin1'), /^HTTP\/1\.1 200 /, 'a 200 head');
        got += c.length - i - 4;
        inHead = false;
      } else {
        got += c.length;
      }
      if (got >= TOTAL) resolve();
    });
    s.on('error', reject);
    s.on('close', () => (got >= TOTAL ? resolve() : reject(new Error(`closed after ${got} bytes`))));
    s.resume();
  });
  t.equal(got, TOTAL, 'reading again resumed the origin: the whole body arrived');
  t.notOk(cut.has(id), 'the origin finished its response');
  s.destroy();
}

t.test('backpressure - a miss that is not stored: a client that stops reading stops the origin', async (t) => {
  const id = '/big/nostore/1';
  await stallThenRead(t, id, `GET ${id} HTTP/1.1\r\nhost: x\r\n\r\n`);
});

t.test('backpressure - a pass (POST): a client that stops reading stops the origin', async (t) => {
  const id = '/big/pass/1';
  await stallThenRead(t, id, `POST ${id} HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi`);
});

for (const [name, id, head] of [
  ['a miss that is not stored', '/big/nostore/2', 'GET /big/nostore/2 HTTP/1.1\r\nhost: x\r\n\r\n'],
  ['a pass (POST)', '/big/pass/2', 'POST /big/pass/2 HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi'],
] as const) {
  t.test(`client gone - ${name}: the origin's response is cut too`, async (t) => {
    const s = await open();
    s.write(head);
    await new Promise<void>((r) => s.once('data', () => r()));
    s.destroy();
    await waitFor(() => cut.has(id), 10_000, 'the origin response to be closed');
    t.ok((written.get(id) ?? 0) < TOTAL, 'the origin did not send the whole body');
    // And the sidecar goes on serving.
    const r = await fetch(`${sc.url}/still/${name.length}`);
    t.equal(r.status, 200);
    await r.text();
  });
}

t.test('client gone before the head - the fetch goes on without it and its response is stored', async (t) => {
  const path = '/slow/leader-left';
  // A asks first (it leads the fetch) and leaves after 100 ms, before the origin answers.
  const a = fetch(`${sc.url}${path}`, { signal: AbortSignal.timeout(100) }).then(() => 'answered', (err: Error) => err.name);
  t.equal(await a, 'TimeoutError', 'the first client had gone');
  // B asks after the origin has answered (at 300 ms): the fetch must have completed without A.
  await new Promise((r) => setTimeout(r, 600));
  const b = await fetch(`${sc.url}${path}`, { signal: AbortSignal.timeout(5000) });
  t.equal(b.status, 200);
  t.equal(await b.text(), `slow ${path}\n`, 'the next client got the whole body');
  // The response was stored although its first client left: the next request is a hit.
  const c = await fetch(`${sc.url}${path}`, { signal: AbortSignal.timeout(5000) });
  await c.text();
  t.match(c.headers.get('cache-status') ?? '', /; hit/, 'stored: the next request is a hit');
  t.equal(origin.count(path), 1, 'one origin request for the three clients');
  // And the sidecar goes on serving.
  const d = await fetch(`${sc.url}/still/after-slow`, { signal: AbortSignal.timeout(5000) });
  t.equal(d.status, 200);
  await d.text();
});
