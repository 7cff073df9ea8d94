// Cache-Control parsing under arbitrary input (RFC 9111 §5.2): never throws, names are
// case-insensitive, quoted-strings keep their commas, the first of a duplicate wins.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import t from 'tap';
import { deltaSeconds, parseCacheControl } from '../../../src/http/cache-control.js';

const TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const token = fc.string({ unit: fc.constantFrom(...TCHAR), minLength: 1, maxLength: 12 });
/** Known directive names too, so duplicates and collisions are common. */
const name = fc.oneof(token, fc.constantFrom('max-age', 'no-cache', 'no-store', 's-maxage', 'private', 'max-stale', 'min-fresh'));
const ows = fc.constantFrom('', ' ', '\t', '  ');
/** qdtext and quoted-pair (RFC 9110 §5.6.4), commas and equals signs included. */
const quotedChar = fc.oneof(fc.constantFrom(',', '=', ' ', 'a', 'max-age=9', '"', '\\'), fc.string({ unit: fc.constantFrom(...TCHAR), maxLength: 3 }));
const value = fc.oneof(
  fc.constant(undefined),
  fc.record({ quoted: fc.constant(false), text: token }),
  fc.record({ quoted: fc.constant(true), text: fc.array(quotedChar, { maxLength: 6 }).map((a) => a.join('')) }),
);
const directive = fc.record({ name, upper: fc.array(fc.boolean(), { minLength: 1, maxLength: 12 }), value, pre: ows, post: ows });
type Directive = typeof directive extends fc.Arbitrary<infer D> ? D : never;

function spell(d: Directive): string {
  const n = [...d.name].map((c, i) => (d.upper[i % d.upper.length] ? c.toUpperCase() : c.toLowerCase())).join('');
  if (d.value === undefined) return `${d.pre}${n}${d.post}`;
  const v = d.value.quoted ? `"${d.value.text.replace(/["\\]/g, (c) => `\\${c}`)}"` : d.value.text;
  return `${d.pre}${n}=${v}${d.post}`;
}

t.test('cache-control props - any string: no throw, names lower-case, trimmed, non-empty, without commas', async () => {
  fc.assert(fc.property(fc.oneof(fc.string(), fc.string({ unit: fc.constantFrom(',', '=', '"', '\\', ' ', 'A', 'x', '-', '9') })), (s) => {
    const d = parseCacheControl(s);
    for (const [k] of d) {
      assert.equal(k, k.toLowerCase());
      assert.equal(k, k.trim());
      assert.notEqual(k, '');
      assert.ok(!k.includes(','));
    }
  }), { numRuns: 3000 });
});

t.test('cache-control props - a well-formed list parses to its directives: first wins, any case, quoted commas kept', async () => {
  fc.assert(fc.property(fc.array(directive, { minLength: 1, maxLength: 8 }), fc.boolean(), (ds, asList) => {
    const spelled = ds.map(spell);
    const d = parseCacheControl(asList ? spelled : spelled.join(','));
    const want = new Map<string, string>();
    for (const x of ds) {
      const k = x.name.toLowerCase();
      if (!want.has(k)) want.set(k, x.value === undefined ? '' : x.value.text);
    }
    assert.deepEqual([...d.entries()].sort(), [...want.entries()].sort());
  }), { numRuns: 3000 });
});

t.test('cache-control props - delta-seconds is an integer in [0, 2^31] or undefined', async () => {
  fc.assert(fc.property(fc.oneof(fc.string(), fc.nat().map(String), fc.bigInt({ min: 0n, max: 10n ** 30n }).map(String)), (v) => {
    const s = deltaSeconds(parseCacheControl(`max-age=${v}`), 'max-age');
    if (s === undefined) return;
    assert.ok(Number.isInteger(s) && s >= 0 && s <= 2 ** 31, String(s));
  }), { numRuns: 2000 });
});

t.test('cache-control - a comma inside a quoted value adds no directive (RFC 9110 §5.6.4)', async (t) => {
  const d = parseCacheControl('no-cache="set-cookie, max-age=3600", private');
  t.equal(d.get('no-cache'), 'set-cookie, max-age=3600');
  t.notOk(d.has('max-age'), 'max-age is inside the quoted-string');
  t.ok(d.has('private'));
  t.equal(parseCacheControl('foo="a\\"b,c", x').get('foo'), 'a"b,c', 'quoted-pair unescaped');
});
