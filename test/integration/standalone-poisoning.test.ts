// Cache poisoning and deception against a standalone sidecar: what an attacker's request puts in
// the cache must never reach another client's request. The origin reflects every field a
// framework might read in place of the request line or the host, as real origins do in links
// and redirects; a victim's plain request must never get the attacker's value. (X-Forwarded-Host
// and -Proto keying their own variants is in standalone-stored.test.ts.)
import t from 'tap';
import { httpCall } from '../helpers/raw-http.js';
import { startSidecar } from '../../support/sidecar.js';
import { startStandalone } from '../../support/standalone.js';

const { origin, sc } = await startStandalone(t);

/** Fields an origin may read in place of the host, scheme, port, path or method (the names Param
 *  Miner and the cache-poisoning write-ups try first), with the attacker's value for each. */
const UNKEYED: ReadonlyArray<readonly [string, string]> = [
  ['x-forwarded-host', 'evil.example'],
  ['x-forwarded-proto', 'javascript'],
  ['x-forwarded-scheme', 'nothttps'],
  ['x-forwarded-port', '31337'],
  ['x-forwarded-prefix', '/evil-prefix'],
  ['x-forwarded-server', 'evil-server.example'],
  ['x-forwarded-ssl', 'off'],
  ['x-host', 'evil-x-host.example'],
  ['x-original-host', 'evil-original-host.example'],
  ['forwarded', 'host=evil-forwarded.example;proto=http'],
  ['x-original-url', '/evil-original-url'],
  ['x-rewrite-url', '/evil-rewrite-url'],
  ['x-http-method-override', 'DELETE'],
  ['x-http-method', 'PURGE'],
  ['x-method-override', 'PATCH'],
];

/** Reflects every field above it was sent, like an origin building absolute links from them. */
function reflecting(path: string): void {
  origin.route(path, (req, res, n) => {
    const seen = UNKEYED.filter(([name]) => req.headers[name] !== undefined).map(([name]) => `${name}=${String(req.headers[name])}`);
    const body = `<a href="${seen.join(' ') || 'plain'}"> #${n}`;
    res.writeHead(200, { 'cache-control': 'public, max-age=60', 'content-type': 'text/html', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
}

const call = async (path: string, headers: Record<string, string> = {}, url = sc.url) => {
  const r = await httpCall(`${url}${path}`, { headers: { connection: 'close', ...headers } });
  return { code: r.status, headers: r.headers, text: r.body.toString(), status: String(r.headers['cache-status'] ?? '') };
};

for (const [i, [name, value]] of UNKEYED.entries()) {
  t.test(`poisoning - ${name} sent by an attacker never reaches a victim's plain request`, async (t) => {
    const path = `/poison/${i}`;
    reflecting(path);
    const attack = await call(path, { [name]: value });
    t.equal(attack.code, 200);
    const victim = await call(path);
    t.notMatch(victim.text, value, 'the victim does not get the reflected value');
    t.match(victim.text, /plain/, 'the victim gets the answer to a plain request');
    const again = await call(path);
    t.equal(again.text, victim.text, 'and the plain answer is what stays cached for plain requests');
    t.match(again.status, /hit/, '(served from the cache: the path is cacheable)');
  });
}

t.test('poisoning - the attacker sends the field after the victim: the victim\'s entry is not replaced', async (t) => {
  reflecting('/poison/after');
  const first = await call('/poison/after');
  t.equal(first.text, '<a href="plain"> #1');
  for (const [name, value] of UNKEYED) await call('/poison/after', { [name]: value });
  const victim = await call('/poison/after');
  t.equal(victim.text, '<a href="plain"> #1', 'still the plain answer, from the cache');
  t.match(victim.status, /hit/);
});

/** An origin that answers any path under /account with the user's page, whatever the suffix
 *  (the framework routes /account/anything.css to /account): the web cache deception setup. */
function account(prefix: string, headers: Record<string, string>): void {
  origin.route(`${prefix}*`, (req, res, n) => {
    const user = /user=(\w+)/.exec(String(req.headers.cookie ?? ''))?.[1] ?? 'anonymous';
    const body = `account page of ${user}, card 4111-${user} #${n}`;
    res.writeHead(200, { 'content-type': 'text/css', 'content-length': Buffer.byteLength(body), ...headers });
    res.end(body);
  });
}

const DECEPTIONS: ReadonlyArray<readonly [string, string, Record<string, string>]> = [
  ['private', '/dx1/account/x.css', { 'cache-control': 'private' }],
  ['private with a max-age', '/dx2/account/x.css', { 'cache-control': 'private, max-age=3600' }],
  ['no-cache without validators', '/dx3/account/x.css', { 'cache-control': 'no-cache' }],
  ['no-store', '/dx4/account/x.css', { 'cache-control': 'no-store' }],
  ['no Cache-Control, no Expires, no validators', '/dx5/account/x.css', {}],
  ['private, ";x.css" path parameter', '/dx6/account;x.css', { 'cache-control': 'private' }],
  ['no Cache-Control, ";x.css" path parameter', '/dx7/account;x.css', {}],
  ['private, encoded slash "..%2fx.css"', '/dx8/account/..%2fx.css', { 'cache-control': 'private' }],
  ['no-cache, ".css?" query', '/dx9/account/x.css?v=1', { 'cache-control': 'no-cache' }],
  ['Pragma: no-cache only', '/dx10/account/x.js', { pragma: 'no-cache' }],
];

for (const [what, path, headers] of DECEPTIONS) {
  t.test(`deception - ${path} answered ${what}: the victim's page is never served to the attacker`, async (t) => {
    const prefix = path.slice(0, path.indexOf('/account') + '/account'.length);
    account(prefix, headers);
    const victim = await call(path, { cookie: 'user=alice' });
    t.match(victim.text, /account page of alice/);
    const attacker = await call(path);
    t.notMatch(attacker.text, /alice/, 'the attacker does not get the victim\'s page');
    t.match(attacker.text, /account page of anonymous/);
    t.notMatch(attacker.status, /hit/);
  });
}

t.test('deception - an encoded dot segment "/account/%2e%2e/x.css" is the key of /x.css and asks the origin for /x.css', async (t) => {
  account('/dxd/account', { 'cache-control': 'private' });
  origin.route('/dxd/x.css', (_req, res, n) => {
    res.writeHead(200, { 'cache-control': 'public, max-age=60', 'content-type': 'text/css' });
    res.end(`body { color: red } /* #${n} */`);
  });
  const victim = await call('/dxd/account/%2e%2e/x.css', { cookie: 'user=alice' });
  t.equal(victim.text, 'body { color: red } /* #1 */', 'the stylesheet, not the account page');
  t.same(origin.requests.filter((r) => r.url!.startsWith('/dxd/')).map((r) => r.url), ['/dxd/x.css'], 'the origin was asked for what the key names');
  const attacker = await call('/dxd/x.css');
  t.equal(attacker.text, victim.text);
  t.notMatch(attacker.text, /alice/);
});

t.test('deception - SIDECACHE_DEFAULT_TTL gives no lifetime to private or no-cache answers, whatever the path ends in', async (t) => {
  const ttl = await startSidecar({ env: { SIDECACHE_UPSTREAM: origin.url, SIDECACHE_DEFAULT_TTL: '1h' } });
  t.teardown(() => ttl.stop());
  for (const [path, cc] of [['/dxt1/account/x.css', 'private'], ['/dxt2/account/x.css', 'no-cache'], ['/dxt3/account;x.css', 'no-store']] as const) {
    account(path.slice(0, path.indexOf('/account') + 8), { 'cache-control': cc });
    await call(path, { cookie: 'user=alice' }, ttl.url);
    const attacker = await call(path, {}, ttl.url);
    t.notMatch(attacker.text, /alice/, `${path} (${cc})`);
  }
});

t.test('fat GET - a body on a GET does not key the entry: it is passed to the origin with its body and nothing is stored', async (t) => {
  const bodies: string[] = [];
  origin.route('/fat/search', (req, res, n) => {
    let got = '';
    req.on('data', (c: Buffer) => { got += c.toString(); });
    req.on('end', () => {
      bodies.push(got);
      res.writeHead(200, { 'cache-control': 'public, max-age=60' });
      res.end(`results for ${got || 'everything'} #${n}`);
    });
  });
  const fat = async (body: string, chunked = false) => {
    // node:http frames a GET's body only when told how.
    const framing: Record<string, string> = chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(Buffer.byteLength(body)) };
    const r = await httpCall(`${sc.url}/fat/search`, { method: 'GET', headers: { connection: 'close', ...framing }, body });
    return { code: r.status, text: r.body.toString(), status: String(r.headers['cache-status'] ?? '') };
  };
  const a = await fat('secret-query-of-alice');
  t.equal(a.code, 200);
  t.equal(a.text, 'results for secret-query-of-alice #1', 'the origin got the body and answered it');
  const plain = await call('/fat/search');
  t.equal(plain.text, 'results for everything #2', 'a plain GET never gets the fat GET\'s answer');
  t.match(plain.status, /stored/);
  const b = await fat('other', true);
  t.equal(b.text, 'results for other #3', 'a second fat GET (chunked) is not answered from the cache either');
  t.notMatch(b.status, /hit/);
  const again = await call('/fat/search');
  t.equal(again.text, 'results for everything #2', 'and it never replaced the plain entry');
  t.match(again.status, /hit/);
  t.same(bodies, ['secret-query-of-alice', '', 'other']);
});
