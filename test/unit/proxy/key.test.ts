// The primary cache key: host case, default port, percent-encoding, query options.
import t from 'tap';
import { hash32, keyOfUrl, normalizePercent, normalizeTarget, originOf, partitionOf } from '../../../src/proxy/key.js';

const plain = { querySort: false, queryDrop: new Set<string>() };

t.test('key - percent-encoding: unreserved decoded, the rest upper-cased (RFC 3986 §6.2.2)', async (t) => {
  t.equal(normalizePercent('/a%7eb%2fc%41'), '/a~b%2FcA');
  t.equal(normalizePercent('/%2d%2E%5f%7E'), '/-._~');
  t.equal(normalizePercent('/%zz%4'), '/%zz%4', 'broken escapes left alone');
  t.equal(normalizePercent('/plain'), '/plain');
});

t.test('key - the query is kept as sent by default', async (t) => {
  t.equal(normalizeTarget('/p?b=2&a=1', plain), '/p?b=2&a=1');
  t.equal(normalizeTarget('/p%7e?q=%7e', plain), '/p~?q=~');
  t.equal(normalizeTarget('/p', plain), '/p');
});

t.test('key - query sort and drop', async (t) => {
  const sort = { querySort: true, queryDrop: new Set<string>() };
  t.equal(normalizeTarget('/p?b=2&a=1&c', sort), '/p?a=1&b=2&c');
  t.equal(normalizeTarget('/p?b=2&a=1', sort), normalizeTarget('/p?a=1&b=2', sort), 'order does not matter');
  const drop = { querySort: false, queryDrop: new Set(['utm_source', 'fbclid']) };
  t.equal(normalizeTarget('/p?utm_source=x&id=3&fbclid=y', drop), '/p?id=3');
  t.equal(normalizeTarget('/p?utm_source=x', drop), '/p', 'nothing left: no "?"');
  t.equal(normalizeTarget('/p?utm%5Fsource=x&id=1', drop), '/p?id=1', 'names compared decoded');
  t.equal(normalizeTarget('/p?a=1&&b=2', drop), '/p?a=1&b=2', 'empty parameters dropped');
});

t.test('key - origin: host lower-cased, default port dropped', async (t) => {
  t.equal(originOf('http', 'Example.COM:80'), 'http://example.com');
  t.equal(originOf('https', 'example.com:443'), 'https://example.com');
  t.equal(originOf('http', 'example.com:443'), 'http://example.com:443', 'not the default for http');
  t.equal(originOf('https', 'example.com:8443'), 'https://example.com:8443');
  t.equal(originOf('http', 'example.com'), 'http://example.com');
});

t.test('key - absolute URLs (purge API, Location) key like requests', async (t) => {
  t.equal(keyOfUrl(new URL('HTTP://Example.com:80/a%7eb?x=1'), plain), 'http://example.com/a~b?x=1');
  t.equal(keyOfUrl(new URL('https://h:443/'), plain), 'https://h/');
  t.equal(keyOfUrl(new URL('http://h:8080/p?b=1&a=2'), { querySort: true, queryDrop: new Set() }), 'http://h:8080/p?a=2&b=1');
  t.equal(keyOfUrl(new URL('http://h/p'), plain), originOf('http', 'h:80') + normalizeTarget('/p', plain), 'same as the request path');
});

t.test('key - hash and partition are stable and in range', async (t) => {
  t.equal(hash32(''), 0x811c9dc5);
  t.equal(hash32('http://h/a'), hash32('http://h/a'));
  t.not(hash32('http://h/a'), hash32('http://h/b'));
  for (const k of ['a', 'b', 'http://example.com/x?y=1']) {
    const p = partitionOf(k, 256);
    t.ok(p >= 0 && p < 256 && Number.isInteger(p));
  }
});
