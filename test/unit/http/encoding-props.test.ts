// Accept-Encoding normal forms under arbitrary lists: the result is one the client accepts and
// that no better one is; it does not depend on order, case or whitespace, and is its own normal
// form (a peer that normalises again gets the same); any malformed element makes it identity.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import t from 'tap';
import { normaliseAcceptEncoding } from '../../../src/http/encoding.js';

const qvalue = fc.oneof(fc.constantFrom('0', '0.0', '0.000', '1', '1.0', '1.000', '0.5', '0.001', '0.25'), fc.integer({ min: 0, max: 1000 }).map((n) => (n === 1000 ? '1' : `0.${String(n).padStart(3, '0')}`)));
const name = fc.constantFrom('br', 'gzip', 'x-gzip', 'identity', '*', 'deflate', 'zstd', 'compress');
const element = fc.record({ name, q: fc.option(qvalue, { nil: undefined }) });
/** Elements with distinct codings (x-gzip and gzip count as one): order cannot matter then. */
const list = fc.uniqueArray(element, { selector: (e) => (e.name === 'x-gzip' ? 'gzip' : e.name), maxLength: 6 });
const spell = (e: { name: string; q: string | undefined }, sp: string): string => (e.q === undefined ? e.name : `${e.name}${sp};${sp}q=${e.q}`);

/** The reference: a coding's weight, by name or by `*`, identity acceptable unless excluded. */
function model(els: readonly { name: string; q: string | undefined }[]): string {
  const weight = (c: string): number | undefined => {
    const e = els.find((x) => x.name === c || (c === 'gzip' && x.name === 'x-gzip'));
    if (e !== undefined) return e.q === undefined ? 1 : Number(e.q);
    const star = els.find((x) => x.name === '*');
    if (star !== undefined) return star.q === undefined ? 1 : Number(star.q);
    return c === 'identity' ? 1 : 0;
  };
  const br = (weight('br') ?? 0) > 0;
  const gzip = (weight('gzip') ?? 0) > 0;
  return br && gzip ? 'br, gzip' : br ? 'br' : gzip ? 'gzip' : 'identity';
}

t.test('encoding props - agrees with the reference, is its own normal form, and ignores order, case and whitespace', async () => {
  fc.assert(fc.property(list, fc.constantFrom('', ' ', '\t'), fc.boolean(), (els, sp, upper) => {
    const value = els.map((e) => spell(e, sp)).join(`${sp},${sp}`);
    const n = normaliseAcceptEncoding(value);
    assert.ok(n === 'br, gzip' || n === 'br' || n === 'gzip' || n === 'identity');
    assert.equal(n, model(els), value);
    assert.equal(normaliseAcceptEncoding(n), n, 'idempotent');
    assert.equal(normaliseAcceptEncoding([...els].reverse().map((e) => spell(e, '')).join(',')), n, 'order');
    assert.equal(normaliseAcceptEncoding(upper ? value.toUpperCase() : value.toLowerCase()), n, 'case');
  }), { numRuns: 3000 });
});

t.test('encoding props - a coding with q=0 is never in the form', async () => {
  fc.assert(fc.property(list, fc.constantFrom('br', 'gzip'), (els, excluded) => {
    const value = [`${excluded};q=0`, ...els.filter((e) => e.name !== excluded && !(excluded === 'gzip' && e.name === 'x-gzip')).map((e) => spell(e, ''))].join(', ');
    assert.ok(!normaliseAcceptEncoding(value).split(', ').includes(excluded), value);
  }), { numRuns: 2000 });
});

t.test('encoding props - one malformed element makes the whole field identity', async () => {
  const bad = fc.constantFrom('gzip;q=2', 'br;q=0.1234', 'gzip;foo=1', 'br;q', 'g zip', 'br;q=-1', '"br"', 'gzip;q=1.01');
  fc.assert(fc.property(list, bad, fc.nat(), (els, b, at) => {
    const parts = els.map((e) => spell(e, ''));
    parts.splice(at % (parts.length + 1), 0, b);
    assert.equal(normaliseAcceptEncoding(parts.join(', ')), 'identity', parts.join(', '));
  }), { numRuns: 2000 });
});

t.test('encoding props - arbitrary strings never throw and give one of the four', async () => {
  fc.assert(fc.property(fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 3 })), (v) => {
    assert.ok(['br, gzip', 'br', 'gzip', 'identity'].includes(normaliseAcceptEncoding(v)));
  }), { numRuns: 3000 });
});
