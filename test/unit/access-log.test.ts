// The access log's pure parts: what a target becomes in the log (no query values, no
// credentials), the outcome taken from Cache-Status, and its variable's validation.
import t from 'tap';
import { cacheOutcome, loggedTarget, MAX_LOGGED_TARGET } from '../../src/access-log.js';
import { loadConfig } from '../../src/core/config.js';
import { ConfigErrors } from '../../src/core/errors.js';

const BASE = { SIDECACHE_UPSTREAM: 'http://127.0.0.1:8080' };

t.test('access log - targets keep parameter names, never their values or credentials', async (t) => {
  t.equal(loggedTarget('/a/b'), '/a/b');
  t.equal(loggedTarget('/a?token=s3cret&q=shoes&flag'), '/a?token=&q=&flag');
  t.equal(loggedTarget('/a?'), '/a?');
  t.equal(loggedTarget('/a?x=1#frag=2'), '/a?x=');
  t.equal(loggedTarget('http://user:pw@example.com/p?k=v'), 'http://example.com/p?k=');
  t.equal(loggedTarget('http://example.com/p@q?k=a@b'), 'http://example.com/p@q?k=', 'an @ in the path is not an authority');
  t.equal(loggedTarget('http://u@h:8080'), 'http://h:8080');
  const long = loggedTarget(`/${'x'.repeat(5000)}`);
  t.equal(long.length, MAX_LOGGED_TARGET + 3, 'bounded');
});

t.test('access log - the outcome is our Cache-Status member without where and how long', async (t) => {
  t.equal(cacheOutcome('sidecache; hit; ttl=59; node="a"; epoch=3; seq=7'), 'hit');
  t.equal(cacheOutcome('sidecache; fwd=uri-miss; fwd-status=200; stored; node="a"; epoch=3; seq=7'), 'fwd=uri-miss; fwd-status=200; stored');
  t.equal(cacheOutcome('sidecache; hit; ttl=10; node="b"; epoch=1; seq=0, sidecache; fwd=uri-miss; fwd-status=200; stored; node="a"; epoch=1; seq=0'),
    'fwd=uri-miss; fwd-status=200; stored', 'ours is the last member');
  t.equal(cacheOutcome('sidecache; hit; detail="hot"'), 'hit; detail="hot"');
  t.equal(cacheOutcome(undefined), '-');
});

t.test('access log - SIDECACHE_ACCESS_LOG_SAMPLE: off by default, a fraction from 0 to 1', async (t) => {
  t.equal(loadConfig(BASE).accessLogSample, 0);
  for (const [raw, n] of [['1', 1], ['0.25', 0.25], ['.5', 0.5], [' 0.001 ', 0.001], ['1.0', 1]] as const) {
    t.equal(loadConfig({ ...BASE, SIDECACHE_ACCESS_LOG_SAMPLE: raw }).accessLogSample, n, raw);
  }
  for (const raw of ['2', '-0.1', '1.5', 'half', '1e-3', '50%', 'NaN', '']) {
    try {
      loadConfig({ ...BASE, SIDECACHE_ACCESS_LOG_SAMPLE: raw });
      t.fail(`${raw} accepted`);
    } catch (err) {
      t.ok(err instanceof ConfigErrors);
      t.match((err as ConfigErrors).errors[0]?.message, /^SIDECACHE_ACCESS_LOG_SAMPLE: expected a fraction from 0 to 1/, JSON.stringify(raw));
    }
  }
});
