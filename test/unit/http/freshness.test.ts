// Freshness verdicts (RFC 9111 §4.2, §5.2.1, RFC 5861) as pure functions of a fixed `now`.
import t from 'tap';
import { parseCacheControl } from '../../../src/http/cache-control.js';
import { ageSec, canServeOnError, requestDirectives, Verdict, verdictFor, verdictOf, type Freshness } from '../../../src/http/freshness.js';

const NOW = 1_700_000_000_000;

/** Stored at NOW with age 0, fresh for 60 s, no stale windows, unless overridden. */
function fr(over: Partial<Freshness> = {}): Freshness {
  return {
    storedAt: NOW,
    initialAgeSec: 0,
    freshUntil: NOW + 60_000,
    staleWhileRevalidateUntil: NOW + 60_000,
    staleIfErrorUntil: NOW + 60_000,
    mustRevalidate: false,
    hasValidators: true,
    ...over,
  };
}

const req = (cc?: string, pragma?: string) => requestDirectives(parseCacheControl(cc), pragma);

t.test('freshness - age is the initial age plus resident time', async (t) => {
  t.equal(ageSec(fr({ initialAgeSec: 5 }), NOW + 2_500), 7.5);
  t.equal(ageSec(fr(), NOW - 1_000), 0, 'a clock step back never makes a negative age');
});

t.test('freshness - fresh before freshUntil, stale from it', async (t) => {
  const f = fr();
  t.equal(verdictOf(f, NOW), Verdict.fresh);
  t.equal(verdictOf(f, NOW + 59_999), Verdict.fresh);
  t.equal(verdictOf(f, NOW + 60_000), Verdict.stale);
});

t.test('freshness - stale-while-revalidate window, and must-revalidate overrides it', async (t) => {
  const f = fr({ staleWhileRevalidateUntil: NOW + 90_000 });
  t.equal(verdictOf(f, NOW + 70_000), Verdict.staleWhileRevalidate);
  t.equal(verdictOf(f, NOW + 90_000), Verdict.stale, 'window over');
  t.equal(verdictOf({ ...f, mustRevalidate: true }, NOW + 70_000), Verdict.stale);
});

t.test('freshness - stale-if-error window, and must-revalidate overrides it', async (t) => {
  const f = fr({ staleIfErrorUntil: NOW + 120_000 });
  t.ok(canServeOnError(f, NOW + 100_000));
  t.notOk(canServeOnError(f, NOW + 120_000), 'window over');
  t.notOk(canServeOnError({ ...f, mustRevalidate: true }, NOW + 100_000));
  t.notOk(canServeOnError(fr(), NOW + 61_000), 'no window at all');
});

t.test('freshness - request no-cache always revalidates, Pragma only without Cache-Control (§5.4)', async (t) => {
  const f = fr();
  t.equal(verdictFor(f, NOW, req('no-cache')), Verdict.stale);
  t.equal(verdictFor(f, NOW, req(undefined, 'no-cache')), Verdict.stale, 'Pragma: no-cache');
  t.equal(verdictFor(f, NOW, req(undefined, 'foo, No-Cache')), Verdict.stale, 'Pragma list, any case');
  t.equal(verdictFor(f, NOW, req('max-stale=5', 'no-cache')), Verdict.fresh, 'Cache-Control present: Pragma ignored');
  t.equal(verdictFor(f, NOW, req(undefined, 'no-cache-please')), Verdict.fresh, 'not the token');
});

t.test('freshness - request max-age', async (t) => {
  const f = fr({ initialAgeSec: 10 });
  t.equal(verdictFor(f, NOW + 5_000, req('max-age=20')), Verdict.fresh, 'age 15 <= 20');
  t.equal(verdictFor(f, NOW + 15_000, req('max-age=20')), Verdict.stale, 'age 25 > 20');
  t.equal(verdictFor(fr(), NOW, req('max-age=0')), Verdict.stale, 'max-age=0 revalidates even at age 0');
});

t.test('freshness - request min-fresh', async (t) => {
  const f = fr();
  t.equal(verdictFor(f, NOW + 30_000, req('min-fresh=20')), Verdict.fresh, '30 s left');
  t.equal(verdictFor(f, NOW + 50_000, req('min-fresh=20')), Verdict.stale, '10 s left');
});

t.test('freshness - request max-stale accepts stale within its bound, never past must-revalidate', async (t) => {
  const f = fr();
  t.equal(verdictFor(f, NOW + 70_000, req('max-stale=30')), Verdict.fresh, '10 s stale');
  t.equal(verdictFor(f, NOW + 100_000, req('max-stale=30')), Verdict.stale, '40 s stale');
  t.equal(verdictFor(f, NOW + 10_000_000, req('max-stale')), Verdict.fresh, 'bare max-stale: any staleness');
  t.equal(verdictFor({ ...f, mustRevalidate: true }, NOW + 70_000, req('max-stale=30')), Verdict.stale);
});

t.test('freshness - request directives parsed, names in any case and values as tokens or quoted-strings (§5.2)', async (t) => {
  for (const cc of ['no-store, only-if-cached, max-age=5, min-fresh=6, max-stale', 'NO-STORE, Only-If-Cached, Max-Age="5", MIN-FRESH=6, Max-Stale']) {
    const d = req(cc);
    t.ok(d.noStore, cc);
    t.ok(d.onlyIfCached);
    t.notOk(d.noCache);
    t.equal(d.maxAgeSec, 5);
    t.equal(d.minFreshSec, 6);
    t.equal(d.maxStaleSec, Infinity);
  }
  t.ok(req('No-Cache').noCache);
  t.equal(verdictFor(fr(), NOW, req('MAX-AGE=0')), Verdict.stale, 'MAX-AGE=0 revalidates');
  t.equal(req('max-age=5s').maxAgeSec, undefined, 'an invalid value is no value');
  t.equal(req('max-stale=7').maxStaleSec, 7);
  t.equal(req('max-stale=x').maxStaleSec, undefined);
});
