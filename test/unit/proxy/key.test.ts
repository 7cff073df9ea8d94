// The primary cache key: one canonical target (RFC 3986 §6.2.2) and one key function for
// requests, purges and write invalidations; properties over every spelling a client may send.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import t from 'tap';
import type { IncomingMessage } from 'node:http';
import { loadConfig } from '../../../src/core/config.js';
import { relatedTargets } from '../../../src/http/invalidate.js';
import { removeDotSegments } from '../../../src/http/uri.js';
import { canonicalTarget, hash32, keyOf, keyOptions, originOf, parseAbsolute, resolveReference } from '../../../src/proxy/key.js';
import { isRefusal, Receiver, type Target } from '../../../src/proxy/recv.js';

const plain = { querySort: false, queryDrop: new Set<string>() };
const HEX = '0123456789ABCDEF';
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
/** RFC 3986 reserved characters that may stand raw in a path or a query (§3.3, §3.4). */
const RESERVED_RAW = "!$&'()*+,;=:@/";

/** One octet of a path or query and how it is written: a reserved character keeps its
 *  spelling (raw or encoded are different URIs, §2.2); anything else has one meaning. */
interface Octet { readonly byte: number; readonly encoded: boolean }

const octet = fc.oneof(
  fc.record({ byte: fc.integer({ min: 0, max: 255 }), encoded: fc.boolean() }),
  // More of the characters the review found: quotes, braces, backtick, dots, percent.
  fc.record({ byte: fc.constantFrom(...[..."'{}`\"<>.%~ |^\\[]"].map((c) => c.charCodeAt(0))), encoded: fc.boolean() }),
);

function isReservedRaw(o: Octet, inQuery: boolean): boolean {
  const c = String.fromCharCode(o.byte);
  return !o.encoded && o.byte < 128 && (RESERVED_RAW.includes(c) || (inQuery && c === '?'));
}

/** The canonical spelling, built from the definition rather than from the code under test. */
function model(octets: readonly Octet[], inQuery: boolean): string {
  let out = '';
  for (const o of octets) {
    const c = String.fromCharCode(o.byte);
    if (o.byte < 128 && UNRESERVED.test(c)) out += c;
    else if (isReservedRaw(o, inQuery)) out += c;
    else out += `%${HEX[o.byte >> 4]}${HEX[o.byte & 15]}`;
  }
  return out;
}

/** One spelling a client may send: unreserved raw or encoded, hex in either case, characters
 *  outside the allowed set raw when a request line can carry them (printable ASCII). */
function spell(octets: readonly Octet[], inQuery: boolean, choices: readonly number[]): string {
  let out = '';
  octets.forEach((o, i) => {
    const pick = choices[i % choices.length]!;
    const c = String.fromCharCode(o.byte);
    const hex = HEX[o.byte >> 4]! + HEX[o.byte & 15]!;
    const encoded = `%${pick & 2 ? hex.toLowerCase() : hex}`;
    if (isReservedRaw(o, inQuery)) { out += c; return; }
    const reserved = o.byte < 128 && (RESERVED_RAW.includes(c) || c === '?');
    if (reserved) { out += encoded; return; } // written encoded: stays encoded
    const mayBeRaw = o.byte > 0x20 && o.byte < 0x7f && c !== '%' && c !== '#' && c !== '?';
    out += mayBeRaw && pick & 1 ? c : encoded;
  });
  return out;
}

/** Path segments that are never dot segments, and a query. */
const segment = fc.array(octet, { maxLength: 8 }).filter((s) => {
  const m = model(s, false);
  return m !== '.' && m !== '..';
}).map((s) => s.map((o) => (o.byte === 47 ? { byte: 47, encoded: true } : o))); // "/" inside a segment: encoded
const url = fc.record({
  segments: fc.array(segment, { minLength: 1, maxLength: 5 }),
  query: fc.option(fc.array(octet, { maxLength: 12 }), { nil: undefined }),
  choices: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 16 }),
  choices2: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 16 }),
});
type Url = typeof url extends fc.Arbitrary<infer U> ? U : never;

const modelTarget = (u: Url): string =>
  `/${u.segments.map((s) => model(s, false)).join('/')}${u.query === undefined ? '' : `?${model(u.query, true)}`}`;
const spelled = (u: Url, choices: readonly number[]): string =>
  `/${u.segments.map((s) => spell(s, false, choices)).join('/')}${u.query === undefined ? '' : `?${spell(u.query, true, choices)}`}`;

function receiver(env: Record<string, string>): Receiver {
  return new Receiver(loadConfig({ SIDECACHE_ADMIN_TOKEN: '', ...env }));
}
function requestTarget(r: Receiver, url: string, host = 'h'): Target {
  const req = { url, method: 'GET', headers: { host }, rawHeaders: ['Host', host], httpVersionMajor: 1, httpVersionMinor: 1, socket: {} } as unknown as IncomingMessage;
  const tg = r.target(req);
  if (isRefusal(tg)) throw new Error(`refused ${url}: ${tg.reason}`);
  return tg;
}

t.test('key - every spelling of a target has one canonical form, the one RFC 3986 §6.2.2 defines', async (t) => {
  fc.assert(fc.property(url, (u) => {
    const want = modelTarget(u);
    assert.equal(canonicalTarget(spelled(u, u.choices)), want);
    assert.equal(canonicalTarget(spelled(u, u.choices2)), want);
  }), { numRuns: 500 });
  t.pass('500 URLs, two spellings each');
  t.end();
});

t.test('key - the canonical form is idempotent and a fixed point of every parser', async (t) => {
  fc.assert(fc.property(url, (u) => {
    const c = canonicalTarget(spelled(u, u.choices));
    assert.equal(canonicalTarget(c), c);
    assert.equal(parseAbsolute(`http://h${c}`)!.target, c);
  }), { numRuns: 300 });
  t.pass('300 cases');
  t.end();
});

t.test('key - a request, a purge of the same URL and a Location naming it have one key', async (t) => {
  const rev = receiver({ SIDECACHE_UPSTREAM: 'http://App.example:80' });
  const fwd = receiver({ SIDECACHE_ALLOW_HOSTS: 'app.example' });
  const opts = keyOptions(loadConfig({ SIDECACHE_UPSTREAM: 'http://up', SIDECACHE_QUERY_SORT: 'true', SIDECACHE_QUERY_DROP: 'utm_source' }));
  fc.assert(fc.property(url, fc.constantFrom('app.example', 'APP.Example', 'app.example:80', 'App.EXAMPLE:80'), fc.constantFrom('http', 'HTTP'), (u, host, scheme) => {
    const a = spelled(u, u.choices);
    const b = spelled(u, u.choices2);
    const reqRev = requestTarget(rev, a);
    const reqFwd = requestTarget(fwd, `${scheme}://${host}${a}`);
    const requestKey = keyOf(reqRev.keyOrigin, reqRev.path, opts);
    assert.equal(keyOf(reqFwd.keyOrigin, reqFwd.path, opts), requestKey, 'reverse and forward mode');
    assert.equal(reqRev.path, modelTarget(u), 'the origin is asked for the canonical target');
    // Purge of an absolute URL (admin/server.ts resolves with parseAbsolute).
    const p = parseAbsolute(`${scheme}://${host}${b}`)!;
    assert.equal(keyOf(p.keyOrigin, p.target, opts), requestKey, 'purge key');
    // §4.4: a write to any target whose answer names the URL in Location / Content-Location.
    // ("//x" alone would be a network-path reference: an absolute path is only tried without it.)
    const refs = [`${scheme}://${host}${b}`, `//${host}${a}`, ...(b.startsWith('//') ? [] : [b])];
    for (const ref of refs) {
      const [r] = relatedTargets(reqRev.keyOrigin, '/some/where?x', ref, undefined);
      assert.equal(keyOf(r!.keyOrigin, r!.target, opts), requestKey, `Location ${ref}`);
    }
  }), { numRuns: 300 });
  t.pass('300 cases');
  t.end();
});

/** RFC 3986 §5.2.4 as written there: an input buffer and an output buffer, steps A to E. */
function rfcRemoveDots(path: string): string {
  let input = path;
  let output = '';
  while (input !== '') {
    if (input.startsWith('../')) input = input.slice(3);
    else if (input.startsWith('./')) input = input.slice(2);
    else if (input.startsWith('/./')) input = input.slice(2);
    else if (input === '/.') input = '/';
    else if (input.startsWith('/../') || input === '/..') {
      input = `/${input.slice(input === '/..' ? 3 : 4)}`;
      output = output.slice(0, Math.max(0, output.lastIndexOf('/')));
    } else if (input === '.' || input === '..') input = '';
    else {
      const next = input.indexOf('/', 1);
      const seg = next === -1 ? input : input.slice(0, next);
      output += seg;
      input = input.slice(seg.length);
    }
  }
  return output;
}

t.test('key - dot segments are removed as RFC 3986 §5.2.4 says, %2E included', async (t) => {
  const seg = fc.oneof(fc.constantFrom('.', '..', '%2e', '%2E%2e', '.%2E', 'a', 'b.', '.c', '...', ''), fc.stringMatching(/^[a-z]{1,3}$/));
  fc.assert(fc.property(fc.array(seg, { maxLength: 8 }), (segs) => {
    const raw = `/${segs.join('/')}`;
    assert.equal(canonicalTarget(raw), rfcRemoveDots(raw.replace(/%2e/gi, '.')) || '/', raw);
  }), { numRuns: 500 });
  t.pass('500 paths');
  t.equal(removeDotSegments('/a/b/c/./../../g'), '/a/g');
  t.equal(removeDotSegments('/mid/content=5/../6'), '/mid/6');
  t.equal(canonicalTarget('/a/b/..?x=/../y'), '/a/?x=/../y', 'never in the query');
  t.end();
});

t.test('key - Location / Content-Location resolve by RFC 3986 §5.4 (base http://a/b/c/d;p?q)', async (t) => {
  const cases: Array<[string, string]> = [
    ['g', '/b/c/g'], ['./g', '/b/c/g'], ['g/', '/b/c/g/'], ['/g', '/g'], ['?y', '/b/c/d;p?y'], ['g?y', '/b/c/g?y'],
    ['#s', '/b/c/d;p?q'], ['g#s', '/b/c/g'], ['g?y#s', '/b/c/g?y'], [';x', '/b/c/;x'], ['g;x', '/b/c/g;x'], ['', '/b/c/d;p?q'],
    ['.', '/b/c/'], ['./', '/b/c/'], ['..', '/b/'], ['../', '/b/'], ['../g', '/b/g'], ['../..', '/'], ['../../', '/'],
    ['../../g', '/g'], ['../../../g', '/g'], ['../../../../g', '/g'], ['/./g', '/g'], ['/../g', '/g'], ['g.', '/b/c/g.'],
    ['.g', '/b/c/.g'], ['g..', '/b/c/g..'], ['..g', '/b/c/..g'], ['./../g', '/b/g'], ['./g/.', '/b/c/g/'], ['g/./h', '/b/c/g/h'],
    ['g/../h', '/b/c/h'], ['g;x=1/./y', '/b/c/g;x=1/y'], ['g;x=1/../y', '/b/c/y'], ['g?y/./x', '/b/c/g?y/./x'],
    ['g?y/../x', '/b/c/g?y/../x'], ['g#s/./x', '/b/c/g'], ['g#s/../x', '/b/c/g'], ['http://a/x{y}', '/x%7By%7D'],
  ];
  for (const [ref, want] of cases) t.same(resolveReference('http://a', '/b/c/d;p?q', ref), { keyOrigin: 'http://a', target: want }, ref);
  t.same(resolveReference('http://a', '/b', '//g/x'), { keyOrigin: 'http://g', target: '/x' }, 'network-path reference');
  t.equal(resolveReference('http://a', '/b', 'mailto:x@y'), undefined, 'not http(s)');
  t.same(relatedTargets('http://a', '/b', 'http://other/x', 'HTTP://A:80/y'), [{ keyOrigin: 'http://a', target: '/y' }], 'same origin only');
  t.same(relatedTargets('http://a', '/b', '/bad%zz', undefined), [], 'a malformed reference invalidates nothing');
});

t.test('key - malformed targets and URLs are refused with a reason', async (t) => {
  for (const raw of ['/a%', '/a%2', '/a%zz', '/a?b=%g0']) t.throws(() => canonicalTarget(raw), { code: 'SC_ERR_BAD_REQUEST', status: 400, message: /percent-encoding/ }, raw);
  t.throws(() => canonicalTarget('a/b'), { code: 'SC_ERR_BAD_REQUEST' });
  t.throws(() => parseAbsolute('http://h\\evil/x'), { message: /host/ }, 'a backslash in the authority');
  t.throws(() => parseAbsolute('http:/h/x'), { code: 'SC_ERR_BAD_REQUEST' });
  t.throws(() => parseAbsolute('http:///x'), { message: /host/ });
  t.equal(parseAbsolute('ftp://h/x'), undefined);
  const rev = receiver({ SIDECACHE_UPSTREAM: 'http://up' });
  const req = { url: '/x%zz', method: 'GET', headers: { host: 'h' }, rawHeaders: ['Host', 'h'], httpVersionMajor: 1, httpVersionMinor: 1, socket: {} } as unknown as IncomingMessage;
  t.match(rev.target(req), { status: 400, reason: /percent-encoding/ });
});

t.test('key - examples: non-ASCII, fragments, empty paths, a base path', async (t) => {
  t.equal(canonicalTarget('/caf\u00e9?q=\u00e9'), '/caf%C3%A9?q=%C3%A9', 'non-ASCII as UTF-8');
  t.equal(canonicalTarget('/a#frag'), '/a');
  t.equal(canonicalTarget('?x'), '/?x');
  t.equal(canonicalTarget('/p%7e?q=%7e&r=%2f'), '/p~?q=~&r=%2F');
  t.equal(parseAbsolute('https://H:443')!.target, '/');
  t.same(parseAbsolute('http://u@H:8080?x'), { protocol: 'http:', hostname: 'h', port: 8080, keyOrigin: 'http://h:8080', target: '/?x' });
  const based = receiver({ SIDECACHE_UPSTREAM: 'http://up/api/' });
  t.equal(requestTarget(based, '/../../secret').path, '/api/secret', 'dot segments stay below the base path');
});

t.test('key - query sort and drop change the key, not the target', async (t) => {
  const sort = { querySort: true, queryDrop: new Set<string>() };
  t.equal(keyOf('http://h', '/p?b=2&a=1&c', sort), 'http://h/p?a=1&b=2&c');
  t.equal(keyOf('http://h', '/p?b=2&a=1', sort), keyOf('http://h', '/p?a=1&b=2', sort), 'order does not matter');
  const drop = { querySort: false, queryDrop: new Set(['utm_source', 'fbclid']) };
  t.equal(keyOf('http://h', '/p?utm_source=x&id=3&fbclid=y', drop), 'http://h/p?id=3');
  t.equal(keyOf('http://h', '/p?utm_source=x', drop), 'http://h/p', 'nothing left: no "?"');
  t.equal(keyOf('http://h', '/p?utm%5Fsource=x&id=1', drop), 'http://h/p?id=1', 'names compared decoded');
  t.equal(keyOf('http://h', '/p?a=1&&b=2', drop), 'http://h/p?a=1&b=2', 'empty parameters dropped');
  t.equal(keyOf('http://h', '/p?b=2&a=1', plain), 'http://h/p?b=2&a=1', 'kept as sent by default');
});

t.test('key - origin: host lower-cased, default port dropped', async (t) => {
  t.equal(originOf('http', 'Example.COM:80'), 'http://example.com');
  t.equal(originOf('https', 'example.com:443'), 'https://example.com');
  t.equal(originOf('http', 'example.com:443'), 'http://example.com:443', 'not the default for http');
  t.equal(originOf('https', 'example.com:8443'), 'https://example.com:8443');
  t.equal(originOf('http', 'example.com'), 'http://example.com');
});

t.test('key - the hash is FNV-1a 32-bit and stable', async (t) => {
  t.equal(hash32(''), 0x811c9dc5);
  t.equal(hash32('http://h/a'), hash32('http://h/a'));
  t.not(hash32('http://h/a'), hash32('http://h/b'));
});
