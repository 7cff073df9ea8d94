// Header plumbing: hop-by-hop removal both ways (RFC 9110 §7.6.1), Via, X-Forwarded-For,
// repeated field lines.
import t from 'tap';
import { combineFieldLines, connectionTokens, rawGet, rawToObject, rawWithout, toRawHeaders, upstreamRequestHeaders } from '../../../src/http/headers.js';

t.test('headers - Connection tokens', async (t) => {
  t.same([...(connectionTokens('Keep-Alive, X-Foo ,,') ?? [])], ['keep-alive', 'x-foo']);
  t.same([...(connectionTokens(['close', 'X-Bar']) ?? [])], ['close', 'x-bar']);
  t.equal(connectionTokens(undefined), undefined);
});

t.test('headers - responses lose hop-by-hop and Connection-listed fields, and the dropped names', async (t) => {
  const raw = toRawHeaders({
    connection: 'x-hop', 'x-hop': '1', 'keep-alive': 'timeout=5', 'transfer-encoding': 'chunked', 'proxy-authenticate': 'Basic',
    age: '3', 'x-keep': 'yes', 'set-cookie': ['a=1', 'b=2'], absent: undefined,
  }, new Set(['age']));
  t.same(raw, ['x-keep', 'yes', 'set-cookie', 'a=1', 'set-cookie', 'b=2']);
});

t.test('headers - upstream requests: hop-by-hop, Host and Expect dropped; Via and X-Forwarded-For appended', async (t) => {
  const out = upstreamRequestHeaders({
    host: 'sidecar', connection: 'keep-alive, x-hop', 'x-hop': '1', te: 'trailers', 'proxy-authorization': 'Basic x',
    expect: '100-continue', 'x-end': 'e', via: '1.0 a', 'x-forwarded-for': '10.0.0.1',
  }, '127.0.0.1', new Set(['x-end']));
  t.same(out, { via: '1.0 a, 1.1 sidecache', 'x-forwarded-for': '10.0.0.1, 127.0.0.1' });
  const bare = upstreamRequestHeaders({ accept: '*/*' }, undefined);
  t.same(bare, { accept: '*/*', via: '1.1 sidecache' }, 'no client address: no X-Forwarded-For');
});

t.test('headers - repeated field lines are combined, except Set-Cookie', async (t) => {
  const h = { 'cache-control': ['public', 'max-age=60'], vary: 'Accept', 'set-cookie': ['a=1', 'b=2'] };
  t.same(combineFieldLines(h), { 'cache-control': 'public, max-age=60', vary: 'Accept', 'set-cookie': ['a=1', 'b=2'] });
  t.same(h['cache-control'], ['public', 'max-age=60'], 'the input is not changed');
  const single = { vary: 'Accept' };
  t.equal(combineFieldLines(single), single, 'nothing repeated: the same object');
});

t.test('headers - raw arrays', async (t) => {
  const raw = ['ETag', '"1"', 'x-a', '1', 'X-A', '2'];
  t.equal(rawGet(raw, 'etag'), '"1"');
  t.equal(rawGet(raw, 'missing'), undefined);
  t.same(rawToObject(raw), { etag: '"1"', 'x-a': '1, 2' });
});

t.test('headers - upstream requests lose the request-line overrides (X-Original-URL, X-Rewrite-URL, X-HTTP-Method-Override)', async (t) => {
  const out = upstreamRequestHeaders({
    'x-original-url': '/admin', 'x-rewrite-url': '/admin', 'x-http-method-override': 'DELETE',
    'x-http-method': 'PUT', 'x-method-override': 'PATCH', accept: '*/*',
  }, undefined);
  t.same(out, { accept: '*/*', via: '1.1 sidecache' });
});

t.test('headers - rawWithout drops every pair of one field and keeps the rest in order', async (t) => {
  const raw = ['content-length', '4', 'etag', '"1"', 'content-length', '5', 'vary', 'accept'];
  t.same(rawWithout(raw, 'content-length'), ['etag', '"1"', 'vary', 'accept']);
  t.same(rawWithout(raw, 'age'), raw);
  t.not(rawWithout(raw, 'age'), raw, 'a new array');
});
