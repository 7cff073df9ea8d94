// Secondary keys (RFC 9111 §4.1).
import t from 'tap';
import { varyMatches, varyNames, varyValues } from '../../../src/http/vary.js';

t.test('vary - names are lower-cased, de-duplicated and sorted', async (t) => {
  t.same(varyNames('Accept-Encoding, accept-language ,ACCEPT-ENCODING'), ['accept-encoding', 'accept-language']);
  t.same(varyNames(['Origin', 'Accept']), ['accept', 'origin']);
  t.equal(varyNames(undefined), null);
  t.equal(varyNames(' , '), null, 'empty Vary: no secondary key');
});

t.test('vary - values are normalised: combined lines, whitespace around commas', async (t) => {
  const names = ['accept-encoding', 'accept-language'];
  t.same(varyValues(names, { 'accept-encoding': ' gzip ,br ' }), ['gzip, br', '']);
  t.same(varyValues(['x'], { x: ['a', 'b'] }), ['a, b']);
});

t.test('vary - matching', async (t) => {
  const names = ['accept-encoding'];
  const stored = varyValues(names, { 'accept-encoding': 'gzip, br' });
  t.ok(varyMatches(names, stored, { 'accept-encoding': 'gzip,br' }), 'same after normalisation');
  t.notOk(varyMatches(names, stored, { 'accept-encoding': 'gzip' }));
  t.notOk(varyMatches(names, stored, {}), 'absent differs from present');
  const none = varyValues(names, {});
  t.ok(varyMatches(names, none, {}), 'absent matches absent');
  t.notOk(varyMatches(names, none, { 'accept-encoding': 'gzip' }));
});
