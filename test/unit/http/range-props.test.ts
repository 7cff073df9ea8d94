// Range parsing (RFC 9110 §14) under arbitrary headers and sizes: never throws, a partial
// answer lies inside the entity, and an unsatisfiable one is only for a start past its end.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import t from 'tap';
import { parseRange } from '../../../src/http/range.js';

const num = fc.oneof(fc.constant(''), fc.nat({ max: 5000 }).map(String), fc.bigInt({ min: 0n, max: 10n ** 40n }).map(String), fc.constantFrom('00', '007', '-1', '1.5', '1e3', ' 5'));
const rangeHeader = fc.oneof(
  fc.string(),
  fc.tuple(fc.constantFrom('bytes', 'BYTES', 'Bytes', 'items', ''), fc.constantFrom('=', ' = ', '= '), num, fc.constantFrom('-', ' - ', ''), num, fc.constantFrom('', ',0-1', ', 5-', ' ')).map((p) => p.join('')),
);
const size = fc.oneof(fc.nat({ max: 5000 }), fc.constant(0), fc.constant(1));

t.test('range props - no throw; a partial range is whole bytes inside the entity', async () => {
  fc.assert(fc.property(rangeHeader, size, (h, n) => {
    const r = parseRange(h, n);
    if (r.kind !== 'partial') return;
    assert.ok(Number.isSafeInteger(r.start) && Number.isSafeInteger(r.end), JSON.stringify(r));
    assert.ok(r.start >= 0 && r.start <= r.end && r.end < n, `${h} of ${n}: ${JSON.stringify(r)}`);
  }), { numRuns: 5000 });
});

t.test('range props - a single first-last range agrees with the definition (§14.1.2)', async () => {
  fc.assert(fc.property(fc.nat({ max: 3000 }), fc.option(fc.nat({ max: 3000 })), size, (first, last, n) => {
    const r = parseRange(`bytes=${first}-${last ?? ''}`, n);
    if (last !== null && last < first) assert.equal(r.kind, 'full', 'invalid: ignored');
    else if (first >= n) assert.equal(r.kind, 'unsatisfiable');
    else assert.deepEqual(r, { kind: 'partial', start: first, end: Math.min(last ?? n - 1, n - 1) });
  }), { numRuns: 3000 });
});

t.test('range props - a suffix range is the last bytes of the entity', async () => {
  fc.assert(fc.property(fc.nat({ max: 3000 }), size, (suffix, n) => {
    const r = parseRange(`bytes=-${suffix}`, n);
    if (suffix === 0) assert.equal(r.kind, 'unsatisfiable');
    else if (n === 0) assert.equal(r.kind, 'full');
    else assert.deepEqual(r, { kind: 'partial', start: Math.max(0, n - suffix), end: n - 1 });
  }), { numRuns: 2000 });
});

t.test('range - last-pos below first-pos is an invalid header, ignored whatever the size (RFC 9110 §14.1.1)', async (t) => {
  t.same(parseRange('bytes=1-0', 0), { kind: 'full' });
  t.same(parseRange('bytes=9-5', 3), { kind: 'full' }, 'not 416: the same header on a larger entity is ignored too');
  t.same(parseRange('bytes=9-5', 20), { kind: 'full' });
});
