// What a standalone sidecar stores and for whom: a 304's Set-Cookie, the fields a request
// keys its variant on (what the origin received, RFC 9111 §4.1), a 304 whose validator does
// not match (§4.3.4), and the forwarded host and scheme an origin may reflect.
import t from 'tap';
import { httpCall, RawSocket } from '../helpers/raw-http.js';
import { waitFor } from '../../support/sidecar.js';
import { startStandalone } from '../../support/standalone.js';

const { origin, sc } = await startStandalone(t);

const call = async (path: string, headers: Record<string, string> = {}) => {
  const r = await httpCall(`${sc.url}${path}`, { headers: { connection: 'close', ...headers } });
  return { ...r, text: r.body.toString(), status: String(r.headers['cache-status'] ?? '') };
};
/** Requests the origin saw for a path, in order. */
const seen = (path: string) => origin.requests.filter((r) => r.url === path);

t.test('set-cookie on a 304 - the client that caused it gets its cookie, the stored entry and later clients do not', async (t) => {
  origin.route('/stored/cookie-304', (req, res, n) => {
    if (req.headers['if-none-match'] === '"c1"') {
      // The first revalidation sets a session cookie for the client it answers.
      const h: Record<string, string> = { etag: '"c1"', 'cache-control': 'public, max-age=60' };
      if (n === 2) h['set-cookie'] = 'sid=secret-of-client-b; Path=/';
      res.writeHead(304, h);
      res.end();
      return;
    }
    res.writeHead(200, { etag: '"c1"', 'cache-control': 'public, max-age=0', 'content-type': 'text/plain' });
    res.end(`cookie body #${n}`);
  });
  const a = await call('/stored/cookie-304');
  t.equal(a.text, 'cookie body #1');
  const b = await call('/stored/cookie-304');
  t.match(b.status, /fwd=stale; fwd-status=304/, 'B revalidated');
  t.equal(b.text, 'cookie body #1');
  t.same(b.headers['set-cookie'], ['sid=secret-of-client-b; Path=/'], 'B, whose request drew the 304, gets its cookie');
  const c = await call('/stored/cookie-304', { cookie: 'mine=c' });
  t.match(c.status, /hit/, 'the refreshed entry is fresh');
  t.equal(c.text, 'cookie body #1');
  t.equal(c.headers['set-cookie'], undefined, 'a later client with its own cookie gets no sid');
  const d = await call('/stored/cookie-304');
  t.equal(d.headers['set-cookie'], undefined, 'nor does a later client without one');
  t.equal(origin.count('/stored/cookie-304'), 2);
});

t.test('set-cookie on a 304 - a collapsed waiter gets the refreshed entry without the cookie', async (t) => {
  let release: (() => void) | undefined;
  origin.route('/stored/cookie-collapse', (req, res, n) => {
    if (req.headers['if-none-match'] === '"k1"') {
      release = () => {
        res.writeHead(304, { etag: '"k1"', 'cache-control': 'public, max-age=60', 'set-cookie': 'sid=leader-only' });
        res.end();
      };
      return;
    }
    res.writeHead(200, { etag: '"k1"', 'cache-control': 'public, max-age=0' });
    res.end(`collapse body #${n}`);
  });
  // The probe is pipelined behind the waiter: node:http hands the sidecar the waiter's request
  // first, so when the probe reaches the origin the waiter has joined the leader's flight.
  origin.route('/stored/probe', (_req, res) => {
    release!();
    res.writeHead(200, { 'cache-control': 'no-store', 'content-length': '5' });
    res.end('probe');
  });
  t.equal((await call('/stored/cookie-collapse')).text, 'collapse body #1');
  const leader = call('/stored/cookie-collapse');
  await waitFor(() => release !== undefined, 5_000, 'the leader revalidating');
  const sock = await RawSocket.open(Number(new URL(sc.url).port));
  t.teardown(() => sock.close());
  sock.write('GET /stored/cookie-collapse HTTP/1.1\r\nHost: app\r\n\r\nGET /stored/probe HTTP/1.1\r\nHost: app\r\n\r\n');
  const waiter = await sock.readResponse();
  t.match(waiter.headers['cache-status'], /collapsed/, 'the waiter joined the revalidation');
  t.equal(waiter.body.toString(), 'collapse body #1');
  t.equal(waiter.headers['set-cookie'], undefined, 'the waiter gets no cookie');
  t.equal((await sock.readResponse()).body.toString(), 'probe');
  const l = await leader;
  t.same(l.headers['set-cookie'], ['sid=leader-only'], 'the leader gets its cookie');
  t.equal((await call('/stored/cookie-collapse')).headers['set-cookie'], undefined, 'a later client none');
});

t.test('vary - a field listed in Connection (not sent upstream) keys the variant as absent', async (t) => {
  origin.route('/stored/vary-connection', (req, res, n) => {
    res.writeHead(200, { vary: 'Accept-Language', 'cache-control': 'public, max-age=60' });
    res.end(`lang=${req.headers['accept-language'] ?? 'none'} #${n}`);
  });
  const hidden = await call('/stored/vary-connection', { 'accept-language': 'de', connection: 'close, accept-language' });
  t.equal(hidden.text, 'lang=none #1', 'the origin did not receive the field listed in Connection');
  const de = await call('/stored/vary-connection', { 'accept-language': 'de' });
  t.equal(de.text, 'lang=de #2', 'a later de client gets the German answer, not the language-less one');
  const none = await call('/stored/vary-connection');
  t.equal(none.text, 'lang=none #1', 'the language-less answer is the variant of requests without the field');
  t.match(none.status, /hit/);
  t.equal(origin.count('/stored/vary-connection'), 2);
});

t.test('vary - Origin listed in Connection does not key a CORS answer under that Origin', async (t) => {
  origin.route('/stored/vary-origin', (req, res, n) => {
    const h: Record<string, string> = { vary: 'Origin', 'cache-control': 'public, max-age=60' };
    if (req.headers.origin !== undefined) h['access-control-allow-origin'] = req.headers.origin;
    res.writeHead(200, h);
    res.end(`cors #${n}`);
  });
  const hidden = await call('/stored/vary-origin', { origin: 'https://app.example', connection: 'close, origin' });
  t.equal(hidden.headers['access-control-allow-origin'], undefined);
  const app = await call('/stored/vary-origin', { origin: 'https://app.example' });
  t.equal(app.headers['access-control-allow-origin'], 'https://app.example', 'the app origin gets its CORS answer');
  t.equal(app.text, 'cors #2');
});

t.test('revalidation - a 304 whose validator does not match the stored one does not refresh the old body (§4.3.4)', async (t) => {
  origin.route('/stored/etag-mismatch', (req, res, n) => {
    if (req.headers['if-none-match'] !== undefined) {
      // Not Modified, but for another representation than the one stored.
      res.writeHead(304, { etag: '"v2"', 'cache-control': 'public, max-age=60' });
      res.end();
      return;
    }
    const etag = n === 1 ? '"v1"' : '"v2"';
    res.writeHead(200, { etag, 'cache-control': n === 1 ? 'public, max-age=0' : 'public, max-age=60' });
    res.end(`version ${etag} #${n}`);
  });
  const a = await call('/stored/etag-mismatch');
  t.equal(a.text, 'version "v1" #1');
  const b = await call('/stored/etag-mismatch');
  t.equal(b.text, 'version "v2" #3', 'fetched anew, unconditionally, after the mismatched 304');
  t.equal(b.headers.etag, '"v2"');
  const reqs = seen('/stored/etag-mismatch');
  t.equal(reqs.length, 3);
  t.equal(reqs[1]?.headers['if-none-match'], '"v1"', 'the revalidation was conditional');
  t.equal(reqs[2]?.headers['if-none-match'], undefined, 'the fetch after the mismatch was not');
  const c = await call('/stored/etag-mismatch');
  t.equal(c.text, 'version "v2" #3', 'the new representation is what is stored');
  t.match(c.status, /hit/);
});

t.test('forwarded host - X-Forwarded-Host and -Proto reach the origin and key the entry', async (t) => {
  origin.route('/stored/xfh', (req, res, n) => {
    res.writeHead(200, { 'cache-control': 'public, max-age=60' });
    res.end(`https://${String(req.headers['x-forwarded-host'] ?? 'app.example')}/ (${String(req.headers['x-forwarded-proto'] ?? 'http')}) #${n}`);
  });
  const evil = await call('/stored/xfh', { 'x-forwarded-host': 'evil.example' });
  t.equal(evil.text, 'https://evil.example/ (http) #1', 'forwarded as sent');
  const plain = await call('/stored/xfh');
  t.equal(plain.text, 'https://app.example/ (http) #2', 'a client without it does not get the reflected host');
  const proto = await call('/stored/xfh', { 'x-forwarded-proto': 'https' });
  t.equal(proto.text, 'https://app.example/ (https) #3', 'nor one with another scheme');
  const again = await call('/stored/xfh');
  t.equal(again.text, 'https://app.example/ (http) #2');
  t.match(again.status, /hit/);
  const evilAgain = await call('/stored/xfh', { 'x-forwarded-host': 'evil.example' });
  t.equal(evilAgain.text, 'https://evil.example/ (http) #1', 'each variant is still cached');
  t.equal(origin.count('/stored/xfh'), 3);
});
