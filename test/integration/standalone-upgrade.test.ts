// Upgrade (RFC 9110 §7.8) in forward and reverse mode: the connection becomes a byte pipe
// only after the origin answered 101 to a well-framed request. Anything else is answered
// like a request, and nothing the client sent after the upgrade request reaches the origin.
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import t from 'tap';
import { RawSocket, type RawResponse } from '../helpers/raw-http.js';
import { startSidecar, waitFor, type SidecarProcess } from '../../support/sidecar.js';

/**
 * An origin that takes /ws/* upgrades with 101 and then echoes bytes, and ignores the
 * Upgrade header elsewhere (RFC 9110 §7.8 lets a server do so): it answers 200 and goes on
 * reading the connection as HTTP, as many servers do. Every request it parses is recorded.
 */
interface UpOrigin {
  readonly port: number;
  readonly requests: Array<{ method: string; url: string; headers: IncomingHttpHeaders }>;
  count(path: string): number;
  close(): Promise<void>;
}

async function startUpOrigin(): Promise<UpOrigin> {
  const requests: UpOrigin['requests'] = [];
  const answer = (url: string) => {
    const body = `body of ${url} #${requests.filter((r) => r.url === url).length}\n`;
    return { body, head: `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n` };
  };
  const server: Server = createHttpServer((req, res) => {
    requests.push({ method: req.method!, url: req.url!, headers: req.headers });
    const { body } = answer(req.url!);
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    req.resume();
  });
  server.on('upgrade', (req, socket: Socket, head: Buffer) => {
    requests.push({ method: req.method!, url: req.url!, headers: req.headers });
    socket.on('error', () => {});
    if (req.url!.startsWith('/silent/')) return;
    if (req.url!.startsWith('/ws/')) {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Origin-101: yes\r\n\r\n');
      if (head.length > 0) socket.write(head);
      socket.on('data', (c: Buffer) => socket.write(c));
      return;
    }
    // Declined: answer as HTTP and read whatever follows as the next requests.
    const { body, head: h } = answer(req.url!);
    socket.write(h + body);
    if (head.length > 0) socket.unshift(head);
    server.emit('connection', socket);
  });
  // Upgraded sockets leave the server's bookkeeping: closed here at the end.
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => { sockets.add(s); s.once('close', () => sockets.delete(s)); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    count: (path) => requests.filter((r) => r.url === path).length,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

let origin: UpOrigin;
let fwd: SidecarProcess;
let rev: SidecarProcess;
const portOf = (sc: SidecarProcess) => Number(new URL(sc.url).port);

t.before(async () => {
  origin = await startUpOrigin();
  [fwd, rev] = await Promise.all([
    startSidecar({ env: { SIDECACHE_ALLOW_HOSTS: `127.0.0.1:${origin.port}` } }),
    startSidecar({ env: { SIDECACHE_UPSTREAM: `http://127.0.0.1:${origin.port}` } }),
  ]);
});
t.teardown(async () => {
  await Promise.all([fwd, rev].map((s) => s?.stop()));
  await origin.close();
});

const UPGRADE = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';

/** The next response, or undefined once the proxy has closed the connection instead. */
async function nextResponse(s: RawSocket): Promise<RawResponse | undefined> {
  try {
    return await s.readResponse(10_000);
  } catch (err) {
    if (s.closed) return undefined;
    throw err;
  }
}

/** Reads every response the proxy sends until it closes the connection. */
async function responsesUntilClose(s: RawSocket): Promise<RawResponse[]> {
  const out: RawResponse[] = [];
  for (;;) {
    const r = await nextResponse(s);
    if (r === undefined) return out;
    out.push(r);
  }
}

const seen = (path: string) => origin.count(path);

t.test('upgrade - forward: an Upgrade inside a CONNECT tunnel does not let a request for another Host through', async (t) => {
  const s = await RawSocket.open(portOf(fwd));
  t.teardown(() => s.close());
  const hp = `127.0.0.1:${origin.port}`;
  s.write(`CONNECT ${hp} HTTP/1.1\r\nHost: ${hp}\r\n\r\n`);
  t.equal((await s.readResponse()).status, 200);
  s.write(`GET /up/tunnel HTTP/1.1\r\nHost: ${hp}\r\n${UPGRADE}\r\n`
    + 'GET /up/tunnel-other-host HTTP/1.1\r\nHost: example.com\r\n\r\n');
  const answers = await responsesUntilClose(s);
  t.equal(answers.length, 1, 'one answer, then the connection is closed');
  t.equal(answers[0]!.status, 200, 'the origin ignored the Upgrade: its answer is relayed');
  t.equal(answers[0]!.body.toString(), 'body of /up/tunnel #1\n');
  t.equal(seen('/up/tunnel-other-host'), 0, 'the request for another Host never reached the origin');
});

t.test('upgrade - forward: an absolute-form Upgrade followed by a DELETE does not pass the DELETE raw', async (t) => {
  const s = await RawSocket.open(portOf(fwd));
  t.teardown(() => s.close());
  const hp = `127.0.0.1:${origin.port}`;
  s.write(`GET http://${hp}/up/abs HTTP/1.1\r\nHost: ${hp}\r\n${UPGRADE}\r\n`
    + `DELETE /up/abs-deleted HTTP/1.1\r\nHost: ${hp}\r\n\r\n`);
  const answers = await responsesUntilClose(s);
  t.equal(answers.length, 1);
  t.equal(answers[0]!.status, 200);
  t.equal(seen('/up/abs-deleted'), 0, 'the origin-form DELETE never reached the origin');
  t.equal(origin.requests.filter((r) => r.method === 'DELETE').length, 0);
});

for (const mode of ['forward', 'reverse'] as const) {
  const target = (path: string) => (mode === 'forward' ? `http://127.0.0.1:${origin.port}${path}` : path);
  const proxy = () => portOf(mode === 'forward' ? fwd : rev);

  t.test(`upgrade - ${mode}: an Upgrade request with a body is refused with 400; its body is never sent as a request`, async (t) => {
    const smuggled = `GET /up/${mode}-smuggled HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n`;
    const bodies = [
      ['chunked', `Transfer-Encoding: chunked\r\n\r\n${smuggled}`],
      ['Content-Length', `Content-Length: ${smuggled.length}\r\n\r\n${smuggled}`],
    ] as const;
    for (const [what, rest] of bodies) {
      const s = await RawSocket.open(proxy());
      t.teardown(() => s.close());
      s.write(`GET ${target(`/up/${mode}-body`)} HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n${UPGRADE}${rest}`);
      const answers = await responsesUntilClose(s);
      t.equal(answers.length, 1, `${what}: one answer`);
      t.equal(answers[0]!.status, 400, `${what}: 400`);
      t.match(answers[0]!.body.toString(), /Upgrade/, `${what}: the reason names the Upgrade`);
    }
    t.equal(seen(`/up/${mode}-smuggled`), 0, 'the body was not read as a request by the origin');
    t.equal(seen(`/up/${mode}-body`), 0, 'the refused upgrade did not reach the origin either');
  });

  t.test(`upgrade - ${mode}: pipelined bytes after an Upgrade the origin declines never reach it`, async (t) => {
    const s = await RawSocket.open(proxy());
    t.teardown(() => s.close());
    s.write(`GET ${target(`/up/${mode}-declined`)} HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n${UPGRADE}\r\n`
      + `POST /up/${mode}-after HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\nContent-Length: 0\r\n\r\n`);
    const answers = await responsesUntilClose(s);
    t.equal(answers.length, 1);
    t.equal(answers[0]!.status, 200);
    t.equal(answers[0]!.body.toString(), `body of /up/${mode}-declined #1\n`);
    t.equal(seen(`/up/${mode}-after`), 0);
    const req = origin.requests.find((r) => r.url === `/up/${mode}-declined`);
    t.equal(req?.headers.upgrade, 'websocket', 'the origin was offered the upgrade');
    t.equal(req?.headers['transfer-encoding'], undefined);
  });

  t.test(`upgrade - ${mode}: a WebSocket-style upgrade the origin accepts with 101 carries bytes both ways`, async (t) => {
    const before = origin.requests.length;
    const s = await RawSocket.open(proxy());
    t.teardown(() => s.close());
    const path = mode === 'forward' ? `http://127.0.0.1:${origin.port}/ws/${mode}` : `/ws/${mode}`;
    s.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n${UPGRADE}\r\n`);
    const r = await s.readResponse();
    t.equal(r.status, 101);
    t.equal(r.headers.upgrade, 'websocket');
    t.equal(r.headers['x-origin-101'], 'yes', "the origin's 101 head is relayed");
    t.equal(origin.requests.length, before + 1);
    const up = origin.requests[before]!;
    t.equal(up.method, 'GET');
    t.equal(up.url, `/ws/${mode}`);
    t.equal(up.headers.upgrade, 'websocket', 'origin saw Upgrade');
    t.match(String(up.headers.connection), /upgrade/i, 'and Connection: Upgrade');
    t.equal(up.headers['sec-websocket-key'], 'dGhlIHNhbXBsZSBub25jZQ==');
    t.equal(up.headers.host, `127.0.0.1:${origin.port}`);
    const frame = `frame-${mode}-\u0001\u0002`;
    s.write(frame);
    t.equal((await s.read(frame.length)).toString('latin1'), frame, 'bytes flow both ways after 101');
    s.write('GET /not-http HTTP/1.1\r\n\r\n');
    t.equal((await s.read(26)).toString(), 'GET /not-http HTTP/1.1\r\n\r\n', 'after 101 the bytes are not read as HTTP');
  });
}

t.test('upgrade - idle pipes are closed after SIDECACHE_TUNNEL_IDLE_TIMEOUT; an origin silent on an upgrade gets 504', async (t) => {
  const echo = createNetServer((c) => { c.on('error', () => {}); c.pipe(c); });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => echo.close(() => r())));
  const echoPort = (echo.address() as AddressInfo).port;
  const sc = await startSidecar({
    env: {
      SIDECACHE_ALLOW_HOSTS: `127.0.0.1:${origin.port},127.0.0.1:${echoPort}`,
      SIDECACHE_TLS_PORTS: String(echoPort),
      SIDECACHE_TUNNEL_IDLE_TIMEOUT: '500ms',
      SIDECACHE_CONNECT_TIMEOUT: '500ms',
      SIDECACHE_HEADERS_TIMEOUT: '500ms',
    },
  });
  t.teardown(() => sc.stop());

  const up = await RawSocket.open(portOf(sc));
  t.teardown(() => up.close());
  up.write(`GET http://127.0.0.1:${origin.port}/ws/idle HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n${UPGRADE}\r\n`);
  // No bytes are exchanged after the answers: on a loaded machine an echo could come later
  // than the short idle timeout. The 101 and the 200 are sent before the pipes start.
  t.equal((await up.readResponse()).status, 101);

  const tunnel = await RawSocket.open(portOf(sc));
  t.teardown(() => tunnel.close());
  tunnel.write(`CONNECT 127.0.0.1:${echoPort} HTTP/1.1\r\nHost: 127.0.0.1:${echoPort}\r\n\r\n`);
  t.equal((await tunnel.readResponse()).status, 200);

  await waitFor(() => up.closed && tunnel.closed, 15_000, 'the idle upgraded connection and the idle tunnel to be closed');
  t.ok(up.closed, 'upgraded connection closed');
  t.ok(tunnel.closed, 'CONNECT tunnel closed');

  const silent = await RawSocket.open(portOf(sc));
  t.teardown(() => silent.close());
  silent.write(`GET http://127.0.0.1:${origin.port}/silent/upgrade HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n${UPGRADE}\r\n`);
  const r = await silent.readResponse(15_000);
  t.equal(r.status, 504, 'no answer to the upgrade: 504');
  t.equal(origin.count('/silent/upgrade'), 1);
});
