// Freshness (RFC 9111 §4.2, §5.2.1) over arbitrary entry times, clocks and request
// directives: verdicts only age, request directives only restrict (max-stale aside), and
// must-revalidate is never relaxed.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import t from 'tap';
import { parseCacheControl } from '../../../src/http/cache-control.js';
import { ageSec, canServeOnError, requestDirectives, Verdict, verdictFor, verdictOf, type Freshness } from '../../../src/http/freshness.js';

const NOW = 1_700_000_000_000;
const RANK = { [Verdict.fresh]: 0, [Verdict.staleWhileRevalidate]: 1, [Verdict.stale]: 2 } as const;

const freshness = fc.record({
  storedAt: fc.integer({ min: NOW - 1e7, max: NOW }),
  initialAgeSec: fc.nat({ max: 100_000 }),
  fresh: fc.nat({ max: 1e7 }),
  swr: fc.nat({ max: 1e7 }),
  sie: fc.nat({ max: 1e7 }),
  mustRevalidate: fc.boolean(),
  hasValidators: fc.boolean(),
}).map((r): Freshness => ({
  storedAt: r.storedAt, initialAgeSec: r.initialAgeSec, freshUntil: r.storedAt + r.fresh,
  staleWhileRevalidateUntil: r.storedAt + r.fresh + r.swr, staleIfErrorUntil: r.storedAt + r.fresh + r.sie,
  mustRevalidate: r.mustRevalidate, hasValidators: r.hasValidators,
}));
const DIRECTIVE = fc.constantFrom('no-cache', 'no-store', 'only-if-cached', 'max-age', 'min-fresh', 'max-stale', 'MAX-AGE', 'Max-Stale');
const ccValue = fc.array(fc.tuple(DIRECTIVE, fc.oneof(fc.constant(undefined), fc.nat({ max: 20_000 }).map(String), fc.constantFrom('', 'x', '-1', '"5"'))), { maxLength: 4 })
  .map((ds) => ds.map(([n, v]) => (v === undefined ? n : `${n}=${v}`)).join(', '));
const pragma = fc.constantFrom(undefined, 'no-cache', 'No-Cache', 'x, no-cache', 'no-cachex');

t.test('freshness props - with no directives a verdict only ages as time passes', async () => {
  fc.assert(fc.property(freshness, fc.nat({ max: 3e7 }), fc.nat({ max: 3e7 }), (f, a, b) => {
    const [t1, t2] = a <= b ? [NOW + a - 1.5e7, NOW + b - 1.5e7] : [NOW + b - 1.5e7, NOW + a - 1.5e7];
    assert.ok(RANK[verdictOf(f, t1)] <= RANK[verdictOf(f, t2)]);
    assert.ok(ageSec(f, t1) <= ageSec(f, t2) && ageSec(f, t1) >= f.initialAgeSec);
    if (canServeOnError(f, t2)) assert.ok(canServeOnError(f, t1));
  }), { numRuns: 3000 });
});

t.test('freshness props - request directives: no-cache always revalidates, max-age and min-fresh only restrict, max-stale never overrides must-revalidate', async () => {
  fc.assert(fc.property(freshness, fc.integer({ min: -1e7, max: 3e7 }), ccValue, pragma, (f, dt, cc, p) => {
    const now = NOW + dt;
    const dirs = requestDirectives(parseCacheControl(cc), p);
    const v = verdictFor(f, now, dirs);
    const base = verdictOf(f, now);
    if (dirs.noCache) assert.equal(v, Verdict.stale);
    if (dirs.maxStaleSec === undefined) assert.ok(RANK[v] >= RANK[base], `${cc}: ${base} -> ${v}`);
    if (f.mustRevalidate && base !== Verdict.fresh) assert.equal(v, Verdict.stale, 'must-revalidate is never served stale (§5.2.2.2)');
    if (dirs.maxAgeSec !== undefined && ageSec(f, now) >= dirs.maxAgeSec) assert.equal(v, Verdict.stale);
    // Names are case-insensitive (§5.2): the same request in lower case decides the same.
    assert.equal(verdictFor(f, now, requestDirectives(parseCacheControl(cc.toLowerCase()), p)), v);
  }), { numRuns: 5000 });
});

t.test('freshness props - Pragma: no-cache counts only without Cache-Control (§5.4)', async () => {
  fc.assert(fc.property(ccValue, (cc) => {
    const d = requestDirectives(parseCacheControl(cc), 'no-cache');
    assert.equal(d.noCache, cc === '' || /no-cache/i.test(cc));
  }), { numRuns: 1000 });
});
