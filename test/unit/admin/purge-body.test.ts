// POST /purge bodies under arbitrary input: a BadRequest (400) or an Invalidation within
// the documented bounds, never another error; a purged URL names the key a request for it has.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import t from 'tap';
import { BadRequest, MAX_PURGE_ITEMS, MAX_TAG_CHARS, parsePurgeBody } from '../../../src/admin/purge-body.js';
import { canonicalTarget, keyOf } from '../../../src/proxy/key.js';

const opts = { querySort: true, queryDrop: new Set(['utm_source']) };
const key = (o: string, t: string): string => keyOf(o, t, opts);
const UPSTREAMS = [undefined, new URL('http://origin.test'), new URL('https://origin.test:8443/base/')];

/** A URL or path built from pieces a purge may carry: percent-signs, dots, controls, unicode. */
const urlish = fc.oneof(
  fc.string(),
  fc.tuple(fc.constantFrom('', '/', 'http://', 'https://', 'HTTP://', 'ftp://', '//', 'http://origin.test', 'http://origin.test:80', 'http://[::1]:99', 'http://a:b@h'),
    fc.array(fc.constantFrom('/', 'a', '%', '%2', '%2F', '%zz', '..', '.', '?', '&', '=', '#', ' ', '\u0000', '\r\n', 'é', '\ud800', '~', 'utm_source=1'), { maxLength: 8 }))
    .map(([a, parts]) => a + parts.join('')),
);
const value = fc.oneof(urlish, fc.array(urlish, { maxLength: 4 }), fc.boolean(), fc.constant(null), fc.integer(), fc.constant([]), fc.dictionary(fc.string(), fc.string(), { maxKeys: 2 }));
const field = fc.constantFrom('url', 'prefix', 'tags', 'all', 'soft', 'hard', '__proto__', 'constructor', 'URL');
const body = fc.oneof(
  fc.string(),
  fc.json(),
  fc.dictionary(field, value, { maxKeys: 3 }).map((o) => JSON.stringify(o)),
  fc.record({ k: fc.constantFrom('url', 'prefix', 'tags'), v: value, soft: fc.option(fc.boolean(), { nil: undefined }) }).map((r) => JSON.stringify({ [r.k]: r.v, soft: r.soft })),
  fc.constantFrom('{"__proto__": {"url": "/x"}}', '{"all": true, "all": false}', '{"tags": ["' + 'x'.repeat(MAX_TAG_CHARS + 1) + '"]}'),
);

t.test('purge body props - any body: a 400 BadRequest or an Invalidation within its bounds', async () => {
  fc.assert(fc.property(body, fc.constantFrom(...UPSTREAMS), (text, up) => {
    let inval;
    try {
      inval = parsePurgeBody(text, up, key);
    } catch (err) {
      assert.ok(err instanceof BadRequest, `not a BadRequest: ${String(err)}`);
      assert.equal(err.status, 400);
      assert.ok(err.message.length <= 1024, 'the reason is short');
      return;
    }
    const json = JSON.parse(text) as Record<string, unknown>;
    assert.equal(inval.soft === true, json.soft === true);
    switch (inval.kind) {
      case 'url':
        assert.ok(inval.keys.length >= 1 && inval.keys.length <= MAX_PURGE_ITEMS);
        assert.equal(new Set(inval.keys).size, inval.keys.length);
        for (const k of inval.keys) assert.match(k, /^https?:\/\/[^/]+\//);
        if (up !== undefined) for (const k of inval.keys) assert.ok(k.startsWith(up.origin), 'reverse mode: keys are the upstream\'s');
        break;
      case 'prefix':
        assert.match(inval.prefix, /^https?:\/\/[^/]+\//);
        break;
      case 'tags':
        assert.ok(inval.tags.length >= 1 && inval.tags.length <= MAX_PURGE_ITEMS);
        for (const tag of inval.tags) assert.ok(tag !== '' && tag.length <= MAX_TAG_CHARS);
        break;
      case 'all':
        assert.equal(json.all, true);
        break;
    }
  }), { numRuns: 5000 });
});

t.test('purge body props - a purged path names the key of a request for it (reverse mode)', async () => {
  const up = new URL('http://origin.test');
  const seg = fc.array(fc.constantFrom('a', 'B', '%41', '%2f', '.', '..', '~', '%7E', 'é', '@', ';x'), { minLength: 1, maxLength: 4 }).map((a) => a.join(''));
  fc.assert(fc.property(fc.array(seg, { minLength: 1, maxLength: 4 }), fc.option(fc.constantFrom('b=2&a=1', 'utm_source=x&a=1', 'a=1')), (segs, q) => {
    const path = '/' + segs.join('/') + (q === null ? '' : `?${q}`);
    const inval = parsePurgeBody(JSON.stringify({ url: path }), up, key);
    assert.equal(inval.kind, 'url');
    if (inval.kind !== 'url') return;
    assert.deepEqual(inval.keys, [key('http://origin.test', canonicalTarget(path))]);
    const absolute = parsePurgeBody(JSON.stringify({ url: `http://origin.test${path}` }), up, key);
    assert.deepEqual(absolute, inval, 'the absolute URL names the same key');
  }), { numRuns: 2000 });
});

t.test('purge body - an unknown field with a huge name is refused with a short reason', async (t) => {
  const err = t.throws(() => parsePurgeBody(JSON.stringify({ all: true, ['x'.repeat(60_000)]: 1 }), undefined, key)) as BadRequest;
  t.equal(err.status, 400);
  t.ok(err.message.length < 1024, `reason of ${err.message.length} characters`);
});
