// Forward (transparent) mode: real clients configured with a proxy (curl, Python urllib,
// undici's ProxyAgent and EnvHttpProxyAgent) get cached answers; only allowed hosts are
// fetched; CONNECT tunnels carry plain HTTP (cached) or TLS (raw bytes). And Upgrade.
import { execFile } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { promisify } from 'node:util';
import t from 'tap';
import { EnvHttpProxyAgent, ProxyAgent, request, type Dispatcher } from 'undici';
import { startOrigin, type TestOrigin } from '../../support/origin.js';
import { parseResponse, RawSocket } from '../helpers/raw-http.js';
import { purge, startSidecar, type SidecarProcess } from '../../support/sidecar.js';

const run = promisify(execFile);

let origin: TestOrigin;
let denied: TestOrigin;
let echo: NetServer;
let echoPort: number;
let sc: SidecarProcess;
let port: number;

/** The environment for child clients: no inherited proxy settings or bypass lists. */
function clientEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(https?_proxy|all_proxy|no_proxy)$/i.test(k)) env[k] = v;
  return { ...env, ...extra };
}

t.before(async () => {
  origin = await startOrigin();
  denied = await startOrigin();
  echo = createNetServer((s) => { s.on('error', () => {}); s.pipe(s); });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as AddressInfo).port;
  sc = await startSidecar({
    env: { SIDECACHE_ALLOW_HOSTS: `127.0.0.1:${origin.port},127.0.0.1:${echoPort}`, SIDECACHE_TLS_PORTS: String(echoPort) },
  });
  port = Number(new URL(sc.url).port);
});
t.teardown(async () => {
  await sc.stop();
  await origin.close();
  await denied.close();
  await new Promise<void>((r) => echo.close(() => r()));
});

const originBody = (path: string, n = 1) => `body of ${path} #${n}\n`;

t.test('forward - curl -x: the second request is a hit, the answer unchanged', async (t) => {
  const url = `${origin.url}/fwd/curl`;
  const answers = [];
  for (let i = 0; i < 2; i++) {
    const { stdout } = await run('curl', ['-s', '-i', '-x', sc.url, url], { env: clientEnv(), encoding: 'buffer' });
    answers.push(parseResponse(stdout));
  }
  t.equal(answers[0]!.status, 200);
  t.equal(answers[0]!.body.toString(), originBody('/fwd/curl'));
  t.equal(answers[1]!.body.toString(), originBody('/fwd/curl'));
  t.equal(answers[1]!.headers.etag, '"1"');
  t.equal(answers[1]!.headers['content-type'], 'text/plain');
  t.match(answers[1]!.headers['cache-status'], /^sidecache; hit/);
  t.equal(origin.count('/fwd/curl'), 1);
});

t.test('forward - Python urllib with http_proxy: the second request is a hit', async (t) => {
  const script = [
    'import sys, urllib.request',
    'r = urllib.request.urlopen(sys.argv[1])',
    'print(r.status)',
    'print(r.headers.get("cache-status"))',
    'sys.stdout.write(r.read().decode())',
  ].join('\n');
  const url = `${origin.url}/fwd/python`;
  const outs = [];
  for (let i = 0; i < 2; i++) {
    const { stdout } = await run('python3', ['-c', script, url], { env: clientEnv({ http_proxy: sc.url, no_proxy: '' }) });
    outs.push(stdout.split('\n'));
  }
  t.equal(outs[0]![0], '200');
  t.match(outs[0]![1], /fwd=uri-miss/);
  t.equal(outs[1]![0], '200');
  t.match(outs[1]![1], /^sidecache; hit/);
  t.equal(outs[1]!.slice(2).join('\n'), originBody('/fwd/python'));
  t.equal(origin.count('/fwd/python'), 1);
});

async function viaUndici(dispatcher: Dispatcher, path: string) {
  const out = [];
  for (let i = 0; i < 2; i++) {
    const r = await request(`${origin.url}${path}`, { dispatcher });
    out.push({ status: r.statusCode, cacheStatus: String(r.headers['cache-status']), etag: r.headers.etag, body: await r.body.text() });
  }
  return out;
}

t.test('forward - undici EnvHttpProxyAgent (CONNECT tunnel to a plain-HTTP port) is cached', async (t) => {
  const agent = new EnvHttpProxyAgent({ httpProxy: sc.url, noProxy: '' });
  t.teardown(() => agent.close());
  const [a, b] = await viaUndici(agent, '/fwd/env-agent');
  t.equal(a!.status, 200);
  t.equal(b!.status, 200);
  t.match(b!.cacheStatus, /^sidecache; hit/);
  t.equal(b!.body, originBody('/fwd/env-agent'));
  t.equal(b!.etag, '"1"');
  t.equal(origin.count('/fwd/env-agent'), 1);
});

t.test('forward - undici ProxyAgent, tunnelled and absolute-form, is cached', async (t) => {
  for (const proxyTunnel of [true, false]) {
    const path = `/fwd/proxy-agent-${proxyTunnel ? 'tunnel' : 'absolute'}`;
    const agent = new ProxyAgent({ uri: sc.url, proxyTunnel });
    const [a, b] = await viaUndici(agent, path);
    await agent.close();
    t.equal(a!.body, originBody(path), `proxyTunnel=${proxyTunnel}`);
    t.match(b!.cacheStatus, /^sidecache; hit/, `proxyTunnel=${proxyTunnel}`);
    t.equal(b!.body, originBody(path));
    t.equal(origin.count(path), 1);
  }
});

t.test('forward - purge by absolute URL; a bare path is refused in forward mode', async (t) => {
  const url = `${origin.url}/fwd/purge`;
  const viaProxy = async () => {
    const { stdout } = await run('curl', ['-s', '-i', '-x', sc.url, url], { env: clientEnv(), encoding: 'buffer' });
    return parseResponse(stdout);
  };
  await viaProxy();
  t.match((await viaProxy()).headers['cache-status'], /hit/);
  const bare = await purge(sc, { url: '/fwd/purge' });
  t.equal(bare.status, 400);
  t.match(bare.json.error, /absolute URL/);
  const p = await purge(sc, { url });
  t.equal(p.status, 200);
  const after = await viaProxy();
  t.notMatch(after.headers['cache-status'], /hit/, 'purged');
  t.equal(after.body.toString(), originBody('/fwd/purge', 2));
});

t.test('forward - a host (or port) not allowed gets 403; the origin is never contacted', async (t) => {
  const { stdout } = await run('curl', ['-s', '-i', '-x', sc.url, `${denied.url}/fwd/denied`], { env: clientEnv(), encoding: 'buffer' });
  const r = parseResponse(stdout);
  t.equal(r.status, 403);
  t.match(r.body.toString(), /SIDECACHE_ALLOW_HOSTS/);
  const other = await fetch(`${sc.url}/`, { method: 'GET' });
  t.equal(other.status, 400, 'an origin-form request to a forward proxy');
  await other.text();
  t.equal(denied.count(), 0);
});

t.test('forward - CONNECT to an allowed plain-HTTP port: the HTTP inside is cached and held to its host', async (t) => {
  const s = await RawSocket.open(port);
  t.teardown(() => s.close());
  const hp = `127.0.0.1:${origin.port}`;
  s.write(`CONNECT ${hp} HTTP/1.1\r\nHost: ${hp}\r\n\r\n`);
  t.equal((await s.readResponse()).status, 200);
  const answers = [];
  for (let i = 0; i < 2; i++) {
    s.write(`GET /fwd/tunnel HTTP/1.1\r\nHost: ${hp}\r\n\r\n`);
    answers.push(await s.readResponse());
  }
  t.equal(answers[0]!.body.toString(), originBody('/fwd/tunnel'));
  t.equal(answers[1]!.body.toString(), originBody('/fwd/tunnel'));
  t.match(answers[1]!.headers['cache-status'], /^sidecache; hit/);
  t.equal(origin.count('/fwd/tunnel'), 1);
  s.write('GET /fwd/tunnel-other HTTP/1.1\r\nHost: example.com\r\n\r\n');
  const wrongHost = await s.readResponse();
  t.equal(wrongHost.status, 403, 'another Host inside the tunnel');
  s.write(`GET http://127.0.0.1:${denied.port}/fwd/tunnel-abs HTTP/1.1\r\nHost: 127.0.0.1:${denied.port}\r\n\r\n`);
  t.equal((await s.readResponse()).status, 403, 'another absolute target inside the tunnel');
  t.equal(origin.count('/fwd/tunnel-other'), 0);
  t.equal(denied.count(), 0);
});

t.test('forward - CONNECT to a host not allowed gets 403', async (t) => {
  const s = await RawSocket.open(port);
  t.teardown(() => s.close());
  const hp = `127.0.0.1:${denied.port}`;
  s.write(`CONNECT ${hp} HTTP/1.1\r\nHost: ${hp}\r\n\r\n`);
  t.equal((await s.readResponse()).status, 403);
  t.equal(denied.count(), 0);
});

t.test('forward - CONNECT to a TLS port is a raw byte tunnel', async (t) => {
  const s = await RawSocket.open(port);
  t.teardown(() => s.close());
  const hp = `127.0.0.1:${echoPort}`;
  s.write(`CONNECT ${hp} HTTP/1.1\r\nHost: ${hp}\r\n\r\n`);
  t.equal((await s.readResponse()).status, 200);
  const bytes = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x0d, 0x0a]);
  s.write(bytes);
  t.same(await s.read(bytes.length), bytes, 'the same bytes came back through the tunnel');
  s.write('GET / HTTP/1.1\r\n\r\n');
  t.equal((await s.read(18)).toString(), 'GET / HTTP/1.1\r\n\r\n', 'HTTP text is not interpreted either');
});

t.test('upgrade - a WebSocket-style Upgrade is passed through to the origin', async (t) => {
  const seen: Array<Record<string, string | string[] | undefined>> = [];
  const wsOrigin = createHttpServer((_req, res) => { res.writeHead(426); res.end(); });
  wsOrigin.on('upgrade', (req, socket, head) => {
    seen.push(req.headers);
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    if (head.length > 0) socket.write(head);
    socket.pipe(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => wsOrigin.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { wsOrigin.closeAllConnections(); wsOrigin.close(() => r()); }));
  const rev = await startSidecar({ env: { SIDECACHE_UPSTREAM: `http://127.0.0.1:${(wsOrigin.address() as AddressInfo).port}` } });
  t.teardown(() => rev.stop());
  const s = await RawSocket.open(Number(new URL(rev.url).port));
  t.teardown(() => s.close());
  s.write('GET /ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n'
    + 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
  const r = await s.readResponse();
  t.equal(r.status, 101);
  t.equal(r.headers.upgrade, 'websocket');
  t.equal(seen.length, 1);
  t.equal(seen[0]!.upgrade, 'websocket', 'origin saw Upgrade');
  t.match(String(seen[0]!.connection), /upgrade/i, 'and Connection: Upgrade');
  t.equal(seen[0]!['sec-websocket-key'], 'dGhlIHNhbXBsZSBub25jZQ==');
  s.write('frame-1');
  t.equal((await s.read(7)).toString(), 'frame-1', 'bytes flow both ways after 101');
});
