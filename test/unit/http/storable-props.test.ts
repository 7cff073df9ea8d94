// What http-cache-semantics is shown of a response: directive names in any case and
// duplicates read as parseCacheControl reads them (RFC 9111 §5.2, §4.2.1), so a shared
// cache never stores what a `Private` or `NO-STORE` forbids.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import t from 'tap';
import { canonicalCacheControl, deltaSeconds, parseCacheControl } from '../../../src/http/cache-control.js';
import { admit, newPolicy, policyRequestOf } from '../../../src/http/storable.js';

const NOW = 1_700_000_000_000;
const req = policyRequestOf('/x', null, []);
const anyCase = (s: string, flips: readonly boolean[]) => [...s].map((c, i) => (flips[i % flips.length] ? c.toUpperCase() : c)).join('');
const directive = fc.tuple(
  fc.constantFrom('private', 'no-store', 'max-age', 's-maxage', 'public', 'no-cache', 'must-revalidate', 'x-ext'),
  fc.option(fc.oneof(fc.nat({ max: 100_000 }).map(String), fc.constantFrom('"a, b"', '"60"', 'x'))),
  fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
).map(([n, v, flips]) => `${anyCase(n, flips)}${v === null ? '' : `=${v}`}`);
const ccField = fc.array(directive, { minLength: 1, maxLength: 5 }).map((ds) => ds.join(', '));

t.test('storable props - private and no-store in any case are never stored by this shared cache (§5.2.2.3, §5.2.2.7)', async () => {
  fc.assert(fc.property(ccField, (cc) => {
    const d = parseCacheControl(cc);
    const res = { status: 200, headers: { 'cache-control': cc, etag: '"e"' } };
    const a = admit(newPolicy(req, res), res, NOW, 0);
    if (d.has('private') || d.has('no-store')) assert.equal(a.storable, false, cc);
  }), { numRuns: 3000 });
});

t.test('storable props - the freshness lifetime is the first max-age, whatever the case of its name (§4.2.1)', async () => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.nat({ max: 100_000 }), fc.array(fc.boolean(), { minLength: 1, maxLength: 7 })), { minLength: 1, maxLength: 3 }), (ages) => {
    const cc = ['public', ...ages.map(([n, flips]) => `${anyCase('max-age', flips)}=${n}`)].join(', ');
    const policy = newPolicy(req, { status: 200, headers: { 'cache-control': cc } });
    assert.equal(policy.maxAge(), deltaSeconds(parseCacheControl(cc), 'max-age'), cc);
  }), { numRuns: 2000 });
});

t.test('storable props - the canonical spelling parses to the same directives', async () => {
  fc.assert(fc.property(fc.oneof(ccField, fc.string()), (cc) => {
    assert.deepEqual([...parseCacheControl(canonicalCacheControl(cc))], [...parseCacheControl(cc)]);
  }), { numRuns: 3000 });
});

t.test('storable - counterexamples: Private, NO-STORE and a repeated max-age', async (t) => {
  for (const cc of ['Private, max-age=60', 'NO-STORE, max-age=60', 'public, No-Store', 'PRIVATE="set-cookie", max-age=60']) {
    const res = { status: 200, headers: { 'cache-control': cc } };
    t.equal(admit(newPolicy(req, res), res, NOW, 0).storable, false, cc);
  }
  t.equal(newPolicy(req, { status: 200, headers: { 'cache-control': 'max-age=5, max-age=3600' } }).maxAge(), 5, 'the first max-age');
  t.equal(newPolicy(req, { status: 200, headers: { 'cache-control': 'MAX-AGE=60' } }).maxAge(), 60, 'an upper-case max-age');
});
