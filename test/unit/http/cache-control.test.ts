// Cache-Control parsing (RFC 9111 §5.2): names, values, duplicates, delta-seconds.
import t from 'tap';
import { deltaSeconds, parseCacheControl } from '../../../src/http/cache-control.js';

t.test('cache-control - names are lower-cased, values unquoted, whitespace ignored', async (t) => {
  const d = parseCacheControl(' Public ,MAX-AGE=60, no-cache="set-cookie",  s-maxage = 5 ');
  t.equal(d.get('public'), '');
  t.equal(d.get('max-age'), '60');
  t.equal(d.get('no-cache'), 'set-cookie');
  t.equal(d.get('s-maxage'), '5');
  t.equal(d.size, 4);
});

t.test('cache-control - absent, empty and list forms', async (t) => {
  t.equal(parseCacheControl(undefined).size, 0);
  t.equal(parseCacheControl('').size, 0);
  t.equal(parseCacheControl(',,').size, 0);
  const d = parseCacheControl(['max-age=10', 'no-transform']);
  t.equal(d.get('max-age'), '10');
  t.ok(d.has('no-transform'));
});

t.test('cache-control - a duplicated directive keeps the first value (§4.2.1)', async (t) => {
  t.equal(parseCacheControl('max-age=10, max-age=99').get('max-age'), '10');
});

t.test('cache-control - delta-seconds: integers only, capped at 2^31', async (t) => {
  const d = parseCacheControl('max-age=60, s-maxage=-1, stale-if-error=1.5, min-fresh=abc, max-stale=99999999999, no-cache');
  t.equal(deltaSeconds(d, 'max-age'), 60);
  t.equal(deltaSeconds(d, 's-maxage'), undefined, 'negative');
  t.equal(deltaSeconds(d, 'stale-if-error'), undefined, 'fraction');
  t.equal(deltaSeconds(d, 'min-fresh'), undefined, 'not a number');
  t.equal(deltaSeconds(d, 'max-stale'), 2 ** 31, 'capped');
  t.equal(deltaSeconds(d, 'no-cache'), undefined, 'no value');
  t.equal(deltaSeconds(d, 'absent'), undefined);
  t.equal(deltaSeconds(parseCacheControl('max-age="30"'), 'max-age'), 30, 'quoted');
});
