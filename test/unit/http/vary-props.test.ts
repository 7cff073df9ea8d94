// Secondary keys (RFC 9111 §4.1) under arbitrary Vary lists and request headers: names
// normalised, a request matches the values taken from it, whitespace around commas is not
// a difference, and "*" never matches.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import t from 'tap';
import { objectView, SecondaryKey, secondaryKeyNames, secondaryKeySecret, varyNames } from '../../../src/http/vary.js';
import { variantKey } from '../../../src/store/types.js';

type Headers = Record<string, string | string[] | undefined>;
const sk = new SecondaryKey(secondaryKeySecret('unit-cluster-secret-0123'));
const fieldName = fc.oneof(fc.constantFrom('accept-encoding', 'Accept-Language', 'COOKIE', 'x-a', '*', ' origin ', 'authorization'), fc.string({ maxLength: 10 }));
const varyField = fc.oneof(fc.constant(undefined), fc.string(), fc.array(fieldName, { maxLength: 6 }).map((a) => a.join(',')), fc.array(fc.array(fieldName, { maxLength: 3 }).map((a) => a.join(', ')), { maxLength: 3 }));
const headerValue = fc.oneof(fc.string({ maxLength: 12 }), fc.array(fc.constantFrom('gzip', 'br', ' ', ',', 'en'), { maxLength: 6 }).map((a) => a.join('')));
const headers = fc.dictionary(fc.constantFrom('accept-encoding', 'accept-language', 'cookie', 'x-a', 'origin', '*', 'authorization'), fc.oneof(headerValue, fc.array(headerValue, { minLength: 1, maxLength: 3 })));

t.test('vary props - names: lower-case, trimmed, sorted, distinct, non-empty; null when none', async () => {
  fc.assert(fc.property(varyField, (v) => {
    const n = varyNames(v);
    if (n !== null) {
      assert.ok(n.length > 0);
      assert.deepEqual([...n], [...new Set(n)].sort());
      for (const x of n) assert.ok(x !== '' && x === x.trim().toLowerCase());
    }
    const all = secondaryKeyNames(v);
    assert.deepEqual([...all], [...new Set(all)].sort(), 'secondary key names sorted and distinct');
    for (const x of n ?? []) assert.ok(all.includes(x));
  }), { numRuns: 3000 });
});

t.test('vary props - a request matches the values taken from it (unless Vary lists "*"), and the order of Vary does not matter', async () => {
  fc.assert(fc.property(fc.array(fieldName, { minLength: 1, maxLength: 5 }), headers, (fields, h) => {
    const names = secondaryKeyNames(fields.join(','));
    assert.deepEqual(secondaryKeyNames([...fields].reverse().join(' , ')), names);
    const values = sk.values(names, objectView, h as Headers);
    const star = names.includes('*');
    assert.equal(sk.matches(names, values, objectView, h as Headers), !star);
    assert.equal(variantKey(sk.values(names, objectView, h as Headers)) === variantKey(values), !star, 'a lookup by variant key agrees');
  }), { numRuns: 3000 });
});

t.test('vary props - whitespace around commas and combined field lines are no difference (§4.1)', async () => {
  fc.assert(fc.property(fc.array(fc.constantFrom('gzip', 'br', 'deflate', 'en-US', 'q=0.5'), { minLength: 1, maxLength: 5 }), fc.array(fc.constantFrom('', ' ', '  ', '\t'), { minLength: 2, maxLength: 4 }), fc.constantFrom('accept-encoding', 'cookie'), (parts, ws, name) => {
    const tight = parts.join(',');
    const loose = parts.map((p, i) => `${ws[i % ws.length]}${p}${ws[(i + 1) % ws.length]}`).join(',');
    const values = sk.values([name], objectView, { [name]: tight });
    assert.ok(sk.matches([name], values, objectView, { [name]: loose }));
    assert.ok(sk.matches([name], values, objectView, { [name]: parts }), 'as several field lines');
  }), { numRuns: 1000 });
});

t.test('vary props - a different value never matches; a credential is never kept in the clear', async () => {
  const visible = fc.string({ minLength: 1, maxLength: 8 }).filter((s) => /[^\s,]/.test(s));
  fc.assert(fc.property(visible, visible, fc.constantFrom('x-a', 'cookie', 'authorization'), (a, b, name) => {
    const norm = (s: string) => s.replace(/\s*,\s*/g, ', ').trim();
    const values = sk.values([name], objectView, { [name]: a });
    assert.equal(sk.matches([name], values, objectView, { [name]: b }), norm(a) === norm(b));
    if (name !== 'x-a') assert.ok(!values[0]!.includes(norm(a)) || norm(a).length < 4 || values[0]!.startsWith('hmac:'));
  }), { numRuns: 2000 });
});

t.test('vary - a stored Vary of "*" never matches, even a request with no headers (§4.1)', async (t) => {
  for (const field of ['*', 'accept-encoding, *', '*,*']) {
    const names = secondaryKeyNames(field);
    const values = sk.values(names, objectView, {});
    t.notOk(sk.matches(names, values, objectView, {}), `${field}: matches`);
    t.not(variantKey(sk.values(names, objectView, {})), variantKey(values), `${field}: variant key`);
  }
});

t.test('vary - a Vary naming an Object.prototype member (__proto__, constructor) is an absent field, not a crash', async (t) => {
  const names = secondaryKeyNames('__proto__, constructor, accept');
  const values = sk.values(names, objectView, { accept: 'text/html' });
  t.ok(sk.matches(names, values, objectView, { accept: 'text/html' }));
  t.notOk(sk.matches(names, values, objectView, { accept: 'text/plain' }));
  t.equal(values[names.indexOf('__proto__')], '');
});
