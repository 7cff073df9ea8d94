// What the sidecar accepts and passes on: framing errors named as they are, the forward
// allow list's default ports, and request fields that would change the origin's answer
// without being in the cache key.
import t from 'tap';
import { startOrigin, type TestOrigin } from '../../support/origin.js';
import { httpCall, rawRequest, RawSocket } from '../helpers/raw-http.js';
import { freePort, startSidecar, type SidecarProcess } from '../../support/sidecar.js';

let origin: TestOrigin;
let rev: SidecarProcess;

t.before(async () => {
  origin = await startOrigin();
  rev = await startSidecar({ env: { SIDECACHE_UPSTREAM: origin.url } });
});
t.teardown(async () => {
  await rev.stop();
  await origin.close();
});

const portOf = (sc: SidecarProcess) => Number(new URL(sc.url).port);

t.test('bad input - a duplicate Content-Length is reported as such, not as Transfer-Encoding', async (t) => {
  for (const [what, fields] of [['different', 'Content-Length: 3\r\nContent-Length: 4'], ['equal', 'Content-Length: 4\r\nContent-Length: 4']] as const) {
    const r = await rawRequest(portOf(rev), `POST /dup-cl HTTP/1.1\r\nHost: x\r\n${fields}\r\n\r\nabcd`);
    t.equal(r.status, 400, what);
    t.match(r.body.toString(), /Duplicate Content-Length/, `${what}: names the duplicate`);
    t.notMatch(r.body.toString(), /Transfer-Encoding/, `${what}: does not blame Transfer-Encoding`);
  }
  const both = await rawRequest(portOf(rev), 'POST /cl-te HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
  t.equal(both.status, 400);
  t.match(both.body.toString(), /Transfer-Encoding/, 'Content-Length with Transfer-Encoding is named as that');
  t.match(both.body.toString(), /Content-Length/);
  t.equal(origin.count('/dup-cl') + origin.count('/cl-te'), 0);
});

t.test('forward - an allow-list entry without a port allows port 80 and SIDECACHE_TLS_PORTS only', async (t) => {
  // The origin listens on 127.0.0.1:<port>; the entry "127.0.0.1" names no port.
  const tlsPort = await freePort();
  const fwd = await startSidecar({ env: { SIDECACHE_ALLOW_HOSTS: '127.0.0.1', SIDECACHE_TLS_PORTS: String(tlsPort) } });
  t.teardown(() => fwd.stop());
  const before = origin.count();
  const abs = await rawRequest(portOf(fwd), `GET ${origin.url}/fwd/any-port HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\nConnection: close\r\n\r\n`);
  t.equal(abs.status, 403, `absolute-form to port ${origin.port}`);
  t.match(abs.body.toString(), /SIDECACHE_ALLOW_HOSTS/);
  const abs8080 = await rawRequest(portOf(fwd), 'GET http://127.0.0.1:8080/fwd/8080 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\n\r\n');
  t.equal(abs8080.status, 403, 'absolute-form to port 8080');
  for (const p of [origin.port, 8080]) {
    const s = await RawSocket.open(portOf(fwd));
    t.teardown(() => s.close());
    s.write(`CONNECT 127.0.0.1:${p} HTTP/1.1\r\nHost: 127.0.0.1:${p}\r\n\r\n`);
    t.equal((await s.readResponse()).status, 403, `CONNECT to port ${p}`);
  }
  t.equal(origin.count(), before, 'the origin was never contacted');
  // The TLS port is allowed: the CONNECT is accepted (and fails to connect, nothing listens).
  const s = await RawSocket.open(portOf(fwd));
  t.teardown(() => s.close());
  s.write(`CONNECT 127.0.0.1:${tlsPort} HTTP/1.1\r\nHost: 127.0.0.1:${tlsPort}\r\n\r\n`);
  t.not((await s.readResponse()).status, 403, `CONNECT to the TLS port ${tlsPort} is not refused by the allow list`);
});

t.test('headers - X-Original-URL, X-Rewrite-URL and X-HTTP-Method-Override never reach the origin', async (t) => {
  const overrides = {
    'x-original-url': '/admin/delete-everything',
    'x-rewrite-url': '/admin/delete-everything',
    'x-http-method-override': 'DELETE',
    'x-http-method': 'DELETE',
    'x-method-override': 'DELETE',
  };
  for (const [method, path] of [['GET', '/ovr/cached'], ['POST', '/ovr/pass'], ['GET', '/ovr/nostore']] as const) {
    const headers: Record<string, string> = { ...overrides, ...(path === '/ovr/nostore' ? { 'cache-control': 'no-store' } : {}) };
    const r = await httpCall(`${rev.url}${path}`, { method, headers, ...(method === 'POST' ? { body: 'x' } : {}) });
    t.equal(r.status, 200, `${method} ${path}`);
    const seen = origin.requests.filter((q) => q.url === path);
    t.equal(seen.length, 1, `${path} reached the origin once`);
    for (const name of Object.keys(overrides)) t.equal(seen[0]!.headers[name], undefined, `${method} ${path}: no ${name}`);
  }
});
