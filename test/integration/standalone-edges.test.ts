// The edges of a standalone sidecar: hop-by-hop and forwarding headers, tag headers,
// malformed and oversized requests, failing origins, start-up refusals and SIGTERM.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createSecureServer } from 'node:http2';
import { createServer as createNetServer, connect, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { startOrigin, type TestOrigin } from '../../support/origin.js';
import { makeCerts } from '../helpers/certs.js';
import { httpCall, rawRequest } from '../helpers/raw-http.js';
import { freePort, purge, runToExit, startSidecar, waitFor, type SidecarProcess } from '../../support/sidecar.js';

let origin: TestOrigin;
let sc: SidecarProcess;
let port: number;

t.before(async () => {
  origin = await startOrigin();
  sc = await startSidecar({
    env: {
      SIDECACHE_UPSTREAM: origin.url,
      SIDECACHE_HEADERS_TIMEOUT: '300ms',
      SIDECACHE_MAX_HEADER_BYTES: '4KiB',
      SIDECACHE_MAX_URL_BYTES: '1KiB',
    },
  });
  port = Number(new URL(sc.url).port);
});
t.teardown(async () => {
  await sc.stop();
  await origin.close();
});

/** After a failure, the sidecar still serves: a fresh request on a new connection works. */
async function stillServes(t: Test, what: string): Promise<void> {
  const path = `/alive/${Math.random().toString(36).slice(2)}`;
  const r = await fetch(`${sc.url}${path}`);
  t.equal(r.status, 200, `still serving after ${what}`);
  t.equal(await r.text(), `body of ${path} #1\n`);
}

t.test('headers - hop-by-hop request fields are not forwarded; Via and X-Forwarded-For are added', async (t) => {
  const r = await httpCall(`${sc.url}/hdr/req`, {
    headers: {
      connection: 'keep-alive, x-hop-req',
      'x-hop-req': 'drop me',
      'keep-alive': 'timeout=5',
      te: 'trailers',
      'proxy-authorization': 'Basic c2VjcmV0',
      'x-end-to-end': 'keep me',
      via: '1.0 client-proxy',
      'x-forwarded-for': '10.1.1.1',
    },
  });
  t.equal(r.status, 200);
  const seen = origin.requests.find((q) => q.url === '/hdr/req')!;
  t.ok(seen, 'origin got the request');
  t.equal(seen.headers['x-hop-req'], undefined, 'a Connection-listed field');
  t.notMatch(seen.headers.connection ?? '', /x-hop-req/);
  t.equal(seen.headers['keep-alive'], undefined, 'Keep-Alive');
  t.equal(seen.headers.te, undefined, 'TE');
  t.equal(seen.headers['proxy-authorization'], undefined, 'Proxy-Authorization');
  t.equal(seen.headers['x-end-to-end'], 'keep me');
  t.equal(seen.headers.via, '1.0 client-proxy, 1.1 sidecache');
  t.equal(seen.headers['x-forwarded-for'], '10.1.1.1, 127.0.0.1');
});

t.test('headers - hop-by-hop response fields are not delivered, on a miss, a hit and a pass', async (t) => {
  origin.route('/hdr/res', (req, res) => {
    req.resume();
    res.writeHead(200, {
      'cache-control': 'max-age=60',
      connection: 'x-hop-res',
      'x-hop-res': 'drop me',
      'keep-alive': 'timeout=7, max=99',
      'proxy-authenticate': 'Basic',
      'x-end-res': 'keep me',
    });
    res.end('hop');
  });
  for (const [what, method] of [['miss', 'GET'], ['hit', 'GET'], ['pass', 'POST']] as const) {
    const r = await httpCall(`${sc.url}/hdr/res`, { method, body: method === 'POST' ? 'x' : undefined });
    t.equal(r.status, 200, what);
    t.equal(r.body.toString(), 'hop');
    t.equal(r.headers['x-hop-res'], undefined, `${what}: Connection-listed field`);
    t.notMatch(r.headers['keep-alive'] ?? '', /max=99/, `${what}: the origin's Keep-Alive`);
    t.equal(r.headers['proxy-authenticate'], undefined, `${what}: Proxy-Authenticate`);
    t.equal(r.headers['x-end-res'], 'keep me', what);
    t.equal(r.headers.via, '1.1 sidecache', `${what}: Via`);
    if (method === 'GET') t.match(r.headers.age, /^\d+$/, `${what}: Age`);
    if (what === 'hit') t.match(r.headers['cache-status'], /hit/);
  }
});

t.test('headers - one Age, computed here, also on responses that are not stored', async (t) => {
  origin.route('/hdr/age', (_req, res) => {
    res.writeHead(200, { 'cache-control': 'private, max-age=60', age: '5' });
    res.end('aged');
  });
  const r = await fetch(`${sc.url}/hdr/age`);
  await r.text();
  t.equal(r.headers.get('age'), '5', 'a single Age header');
});

t.test('headers - a POST with Expect: 100-continue passes through (curl sends it for large bodies)', async (t) => {
  origin.route('/hdr/expect', (req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => { n += c.length; });
    req.on('end', () => { res.writeHead(200); res.end(`got ${n} bytes`); });
  });
  const body = 'x'.repeat(4096);
  const r = await httpCall(`${sc.url}/hdr/expect`, { method: 'POST', headers: { expect: '100-continue', 'content-length': String(body.length) }, body });
  t.equal(r.status, 200);
  t.equal(r.body.toString(), 'got 4096 bytes');
  const seen = origin.requests.find((q) => q.url === '/hdr/expect');
  t.equal(seen?.headers.expect, undefined, 'the expectation was met at this hop');
});

t.test('headers - Surrogate-Key and Cache-Tag are stripped by default, kept when configured', async (t) => {
  origin.route('/hdr/tags', (_req, res, n) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'surrogate-key': 'k1 k2', 'cache-tag': 't1,t2' });
    res.end(`tags #${n}`);
  });
  const sc2 = await startSidecar({ env: { SIDECACHE_UPSTREAM: origin.url, SIDECACHE_STRIP_TAG_HEADERS: 'false' } });
  t.teardown(() => sc2.stop());
  for (const [who, url, kept] of [['default', sc.url, false], ['STRIP_TAG_HEADERS=false', sc2.url, true]] as const) {
    for (const what of ['miss', 'hit']) {
      const r = await fetch(`${url}/hdr/tags`);
      await r.text();
      t.equal(r.headers.get('surrogate-key'), kept ? 'k1 k2' : null, `${who} ${what}: Surrogate-Key`);
      t.equal(r.headers.get('cache-tag'), kept ? 't1,t2' : null, `${who} ${what}: Cache-Tag`);
    }
    // Stripped or not, the tags still index the entry.
    const p = await purge(who === 'default' ? sc : sc2, { tags: ['k2'] });
    t.equal(p.status, 200);
    const after = await fetch(`${url}/hdr/tags`);
    t.notMatch(after.headers.get('cache-status'), /hit/, `${who}: tag purge works`);
    await after.text();
  }
});

t.test('bad input - a request head over SIDECACHE_MAX_HEADER_BYTES gets 431', async (t) => {
  const r = await rawRequest(port, `GET /big-head HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(6000)}\r\n\r\n`);
  t.equal(r.status, 431);
  t.equal(origin.count('/big-head'), 0);
  await stillServes(t, '431');
});

t.test('bad input - a URL over SIDECACHE_MAX_URL_BYTES gets 414', async (t) => {
  const path = `/long/${'u'.repeat(1500)}`;
  const r = await fetch(`${sc.url}${path}`);
  t.equal(r.status, 414);
  t.match(await r.text(), /longer than 1024/);
  t.equal(origin.count(path), 0);
  await stillServes(t, '414');
});

t.test('bad input - Content-Length together with Transfer-Encoding gets 400', async (t) => {
  const r = await rawRequest(port,
    'POST /smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n');
  t.equal(r.status, 400);
  t.equal(origin.count('/smuggle'), 0);
  t.equal(origin.count('/smuggled'), 0, 'nothing smuggled through');
  await stillServes(t, 'CL+TE');
});

t.test('bad input - a malformed request line gets 400', async (t) => {
  for (const line of ['HELLO\r\n\r\n', 'GET /a b c HTTP/1.1\r\n\r\n', 'GET / HTTP/9.9\r\nHost: x\r\n\r\n']) {
    const r = await rawRequest(port, line);
    t.equal(r.status, 400, JSON.stringify(line));
  }
  await stillServes(t, 'a malformed request line');
});

t.test('origin errors - a reset connection is 502', async (t) => {
  origin.route('/err/reset', (req) => { req.socket.destroy(); });
  const r = await fetch(`${sc.url}/err/reset`);
  t.equal(r.status, 502);
  t.match(await r.text(), /closed the connection/);
  await stillServes(t, 'a reset');
});

t.test('origin errors - no response head within SIDECACHE_HEADERS_TIMEOUT is 504', async (t) => {
  origin.route('/err/slow', () => { /* never answers */ });
  const r = await fetch(`${sc.url}/err/slow`);
  t.equal(r.status, 504);
  t.match(await r.text(), /timed out/);
  await stillServes(t, 'a timeout');
});

t.test('origin errors - a body cut short is not delivered as complete, nor stored', async (t) => {
  origin.route('/err/truncated', (req, res, n) => {
    if (n > 1) { res.writeHead(200, { 'cache-control': 'max-age=60' }); res.end('whole'); return; }
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': 1000 });
    res.write('only ten b');
    setTimeout(() => req.socket.destroy(), 50);
  });
  const r = await fetch(`${sc.url}/err/truncated`);
  t.equal(r.status, 200, 'the head had gone out already');
  await t.rejects(r.text(), 'the client sees the body fail, not a short success');
  const again = await fetch(`${sc.url}/err/truncated`);
  t.equal(await again.text(), 'whole', 'the cut body was not stored');
  t.equal(origin.count('/err/truncated'), 2);
});

t.test('origin errors - a malformed response is 502', async (t) => {
  origin.route('/err/garbage', (req) => { req.socket.end('this is not HTTP at all\r\n\r\n'); });
  const r = await fetch(`${sc.url}/err/garbage`);
  t.equal(r.status, 502);
  t.match(await r.text(), /malformed/);
  await stillServes(t, 'a malformed response');
});

t.test('origin errors - a raw net origin sending garbage is 502; refused is 502', async (t) => {
  const garbage = createNetServer((s) => { s.on('data', () => s.end('\x00\x01garbage\r\n\r\n')); s.on('error', () => {}); });
  await new Promise<void>((r) => garbage.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => garbage.close(() => r())));
  const closedPort = await freePort();
  const upstreams = [['garbage', `http://127.0.0.1:${(garbage.address() as AddressInfo).port}`], ['refused', `http://127.0.0.1:${closedPort}`]] as const;
  const sidecars = await Promise.all(upstreams.map(([, u]) => startSidecar({ env: { SIDECACHE_UPSTREAM: u } })));
  for (const [i, [what]] of upstreams.entries()) {
    const s = sidecars[i]!;
    const r = await fetch(`${s.url}/x`);
    t.equal(r.status, 502, what);
    await r.text();
    const again = await fetch(`${s.url}/y`);
    t.equal(again.status, 502, `${what}: answered again`);
    t.match(await (await fetch(`${s.url}/z`)).text(), what === 'garbage' ? /malformed/ : /refused/);
    await again.text();
    await s.stop();
  }
});

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');
function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

t.test('start-up - --help lists every variable the code reads', async (t) => {
  const { code, output } = await runToExit({}, ['--help']);
  t.equal(code, 0);
  const names = new Set<string>();
  // Whole names only: `SIDECACHE_PEER_TLS_*` in a comment names a family, not a variable.
  for (const f of sourceFiles(SRC)) for (const m of readFileSync(f, 'utf8').matchAll(/\bSIDECACHE_[A-Z_]*[A-Z]\b/g)) names.add(m[0]);
  t.ok(names.size > 30, `found ${names.size} variable names in src/`);
  for (const n of names) t.match(output, new RegExp(`^\\s+${n}\\s.*default`, 'm'), n);
});

t.test('start-up - every bad variable stops with exit code 2 and a line naming it and its value', async (t) => {
  const up = { SIDECACHE_UPSTREAM: origin.url };
  const cases: Array<[Record<string, string>, string, string]> = [
    [{ ...up, SIDECACHE_MAX_BYTES: '12XB' }, 'SIDECACHE_MAX_BYTES', '12XB'],
    [{ ...up, SIDECACHE_HEADERS_TIMEOUT: '30' }, 'SIDECACHE_HEADERS_TIMEOUT', '30'],
    [{ SIDECACHE_UPSTREAM: '10.0.0.3' }, 'SIDECACHE_UPSTREAM', '10.0.0.3'],
    [{ ...up, SIDECACHE_X: '1' }, 'SIDECACHE_X', '1'],
    [{ ...up, SIDECACHE_CACHE_STATUS_DETAIL: 'perhaps' }, 'SIDECACHE_CACHE_STATUS_DETAIL', 'perhaps'],
  ];
  // Every variable's message is checked in test/unit/config.test.ts; here, the process.
  const runs = await Promise.all([...cases.map(([env]) => runToExit(env)), runToExit({})]);
  cases.forEach(([, name, value], i) => {
    const { code, output } = runs[i]!;
    t.equal(code, 2, `${name}=${value}: exit code`);
    const lines = output.split('\n').filter((l) => l.includes(name));
    t.equal(lines.length, 1, `${name}: one line (${JSON.stringify(output)})`);
    t.ok(lines[0]?.includes(`"${value}"`), `${name}: the line shows the value: ${lines[0]}`);
  });
  const missing = runs[cases.length]!;
  t.equal(missing.code, 2, 'no upstream and no allowed hosts');
  const lines = missing.output.split('\n').filter((l) => l.includes('SIDECACHE_UPSTREAM'));
  t.equal(lines.length, 1);
  t.match(lines[0], /SIDECACHE_ALLOW_HOSTS/, 'names both ways to start');
});

t.test('start-up - a port in use fails start-up with a message', async (t) => {
  const busy = await freePort();
  const holder = createNetServer();
  await new Promise<void>((r) => holder.listen(busy, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => holder.close(() => r())));
  const { code, output } = await runToExit({ SIDECACHE_UPSTREAM: origin.url, SIDECACHE_LISTEN: `127.0.0.1:${busy}`, SIDECACHE_ADMIN_LISTEN: `127.0.0.1:${await freePort()}` });
  t.not(code, 0);
  t.match(output, /EADDRINUSE/);
});

t.test('SIGTERM - an in-flight request finishes, new connections are refused, exit 0', async (t) => {
  let release: (() => void) | undefined;
  const o = await startOrigin({
    '/slow': (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' });
      res.write('first half, ');
      release = () => res.end('second half');
    },
  });
  t.teardown(() => o.close());
  const s = await startSidecar({ env: { SIDECACHE_UPSTREAM: o.url } });
  const sport = Number(new URL(s.url).port);
  const inflight = fetch(`${s.url}/slow`).then(async (r) => ({ status: r.status, body: await r.text() }));
  await waitFor(() => release !== undefined, 5_000, 'the origin to get the request');
  s.proc.kill('SIGTERM');
  const refused = () => new Promise<boolean>((resolve) => {
    const c = connect(sport, '127.0.0.1');
    c.once('connect', () => { c.destroy(); resolve(false); });
    c.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
  await waitFor(refused, 5_000, 'the listener to close');
  t.equal(s.proc.exitCode, null, 'still running while the request is in flight');
  release!();
  const r = await inflight;
  t.equal(r.status, 200);
  t.equal(r.body, 'first half, second half', 'the client got the whole body');
  t.equal(await s.exited, 0, 'exit code 0');
});

t.test('origin over TLS - SIDECACHE_CA_FILE trusts its CA; an origin that also offers HTTP/2 is fetched over HTTP/1.1, and the answer is cached', async (t) => {
  // undici 8 negotiates HTTP/2 by ALPN unless told not to; the origin client stays on HTTP/1.1.
  const certs = makeCerts();
  t.teardown(() => certs.remove());
  const ca = certs.ca('origin-ca');
  const leaf = certs.leaf(ca, 'origin', { san: ['IP:127.0.0.1'] });
  const versions: string[] = [];
  const o = createSecureServer({ cert: readFileSync(leaf.certFile), key: readFileSync(leaf.keyFile), allowHTTP1: true }, (req, res) => {
    versions.push(req.httpVersion);
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' });
    res.end(`over HTTP/${req.httpVersion}`);
  });
  await new Promise<void>((resolve) => o.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => o.close(() => resolve())));
  const s = await startSidecar({ env: { SIDECACHE_UPSTREAM: `https://127.0.0.1:${(o.address() as AddressInfo).port}`, SIDECACHE_CA_FILE: ca.certFile } });
  t.teardown(() => s.stop());
  const first = await fetch(`${s.url}/tls/h1`);
  t.equal(first.status, 200);
  t.equal(await first.text(), 'over HTTP/1.1');
  const second = await fetch(`${s.url}/tls/h1`);
  t.equal(await second.text(), 'over HTTP/1.1', 'the stored answer');
  t.same(versions, ['1.1'], 'the origin was asked once, over HTTP/1.1');
});
