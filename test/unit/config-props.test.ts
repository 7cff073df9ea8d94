// SIDECACHE_* values under arbitrary strings: loadConfig throws ConfigErrors naming the
// variable and nothing else, and a value it accepts is one the process can run with.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import fc from 'fast-check';
import t from 'tap';
import { loadConfig, VARIABLES, type Config } from '../../src/core/config.js';
import { ConfigErrors } from '../../src/core/errors.js';
import { Cache } from '../../src/store/cache.js';

const BASE = { SIDECACHE_UPSTREAM: 'http://127.0.0.1:8080' };
const CLUSTER = { ...BASE, SIDECACHE_NATS_URL: 'nats://127.0.0.1:4222', SIDECACHE_CLUSTER_SECRET: 's'.repeat(16) };
/** Largest delay a Node timer honours: longer ones fire after 1 ms (TimeoutOverflowWarning). */
const TIMER_MAX_MS = 2 ** 31 - 1;

/** Strings shaped like each kind of value, and some that are not. */
const raw = fc.oneof(
  fc.string(),
  fc.string({ unit: fc.constantFrom(...'0123456789.:,[]*-_ abcdefhkmsBGIKMiT/@'.split('')), maxLength: 24 }),
  fc.tuple(fc.oneof(fc.nat().map(String), fc.bigInt({ min: 0n, max: 10n ** 40n }).map(String), fc.constantFrom('0', '0.5', '1.', '00', '-1')),
    fc.constantFrom('', 'ms', 's', 'm', 'h', 'KiB', 'MiB', 'GiB', 'kb', 'B', ' s', 'd')).map(([n, u]) => n + u),
  fc.constantFrom('true', 'FALSE', 'on', ' yes ', 'http://a:b@h', 'http://:secret@h', 'https://h/x?y', 'nats://h:1', '127.0.0.1:0', '[::1]:65536', '*.a.b:80', 'info', ''),
);

function load(env: Record<string, string>): Config | ConfigErrors {
  try {
    return loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigErrors) return err;
    throw err;
  }
}

/** What every accepted configuration must satisfy to start and run as documented. */
function assertRunnable(c: Config): void {
  const sizes = [c.maxBytes, c.maxEntryBytes, c.hotMaxBytes, c.maxHeaderBytes, c.maxUrlBytes, c.fillMaxBytes, c.fillsMaxBytes];
  for (const s of sizes) assert.ok(Number.isSafeInteger(s) && s >= 0, `size ${s}`);
  assert.ok(c.maxBytes >= 1, 'a cache budget of at least a byte');
  const timers = [c.connectTimeoutMs, c.headersTimeoutMs, c.bodyTimeoutMs, c.tunnelIdleTimeoutMs, c.purgeTimeoutMs, c.shutdownTimeoutMs,
    c.heartbeatIntervalMs, c.heartbeatTtlMs, c.maxStaleDetachedMs, c.peerTimeoutMs, c.defaultTtlMs, c.clientHeadersTimeoutMs, c.clientRequestTimeoutMs];
  for (const ms of timers) assert.ok(Number.isSafeInteger(ms) && ms >= 0 && ms <= TIMER_MAX_MS, `duration ${ms} ms`);
  assert.ok(c.heartbeatIntervalMs > 0, 'a heartbeat interval of 0 would spin');
  for (const ms of [c.fillsMaxAgeMs, c.invalMaxAgeMs]) assert.ok(Number.isSafeInteger(ms) && ms * 1e6 < 2 ** 63, `stream age ${ms} ms: nanoseconds in an int64`);
  for (const l of [c.listen, c.adminListen, c.peerListen]) assert.ok(Number.isInteger(l.port) && l.port >= 0 && l.port <= 65535);
  if (c.upstream !== undefined) assert.ok(c.upstream.username === '' && c.upstream.password === '', 'no credentials in the upstream URL');
  new Cache({ maxBytes: c.maxBytes, hotMaxBytes: c.hotMaxBytes });
  assert.ok(Number.isInteger(c.maxConnections) && c.maxConnections >= 1);
  // node:http checks its own options: headersTimeout above requestTimeout throws.
  createServer({ maxHeaderSize: c.maxHeaderBytes, headersTimeout: c.clientHeadersTimeoutMs, requestTimeout: c.clientRequestTimeoutMs }).maxConnections = c.maxConnections;
}

for (const base of [BASE, CLUSTER]) {
  t.test(`config props - any value of one variable (${base === BASE ? 'standalone' : 'cluster'}): ConfigErrors naming it, or a runnable config`, async () => {
    assertRunnable(loadConfig(base));
    fc.assert(fc.property(fc.constantFrom(...VARIABLES.map((v) => v.name)), raw, (name, value) => {
      const r = load({ ...base, [name]: value });
      if (r instanceof ConfigErrors) {
        assert.ok(r.errors.length > 0);
        for (const e of r.errors) assert.ok(e.variable === name || e.message.includes(name), `${name}=${JSON.stringify(value)}: ${e.message}`);
        return;
      }
      assertRunnable(r);
    }), { numRuns: 6000 });
  });
}

t.test('config props - any values of two variables: ConfigErrors naming one of them, or a runnable config', async () => {
  const names = fc.constantFrom(...VARIABLES.map((v) => v.name));
  fc.assert(fc.property(names, raw, names, raw, (a, va, b, vb) => {
    const r = load({ ...CLUSTER, [a]: va, [b]: vb });
    if (r instanceof ConfigErrors) {
      for (const e of r.errors) assert.ok([a, b].some((n) => e.variable === n || e.message.includes(n)), `${a}, ${b}: ${e.message}`);
      return;
    }
    assertRunnable(r);
  }), { numRuns: 6000 });
});

t.test('config props - unknown SIDECACHE_* names are refused by name; other names are ignored', async () => {
  fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 12 }), fc.string(), (suffix, value) => {
    const name = `SIDECACHE_${suffix}`;
    if (VARIABLES.some((v) => v.name === name)) return;
    const r = load({ ...BASE, [name]: value, [`OTHER_${suffix}`]: value });
    assert.ok(r instanceof ConfigErrors && r.errors.some((e) => e.variable === name));
  }), { numRuns: 1000 });
});

t.test('config props - accepted sizes and durations round-trip through their spelling', async () => {
  const sizeUnits = { '': 1, B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 } as const;
  fc.assert(fc.property(fc.integer({ min: 1, max: 4096 }), fc.constantFrom(...Object.keys(sizeUnits) as Array<keyof typeof sizeUnits>), (n, u) => {
    assert.equal(loadConfig({ ...BASE, SIDECACHE_MAX_BYTES: `${n}${u}`, SIDECACHE_MAX_ENTRY_BYTES: '1' }).maxBytes, n * sizeUnits[u]);
  }));
  const timeUnits = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
  fc.assert(fc.property(fc.integer({ min: 0, max: 500 }), fc.constantFrom(...Object.keys(timeUnits) as Array<keyof typeof timeUnits>), (n, u) => {
    assert.equal(loadConfig({ ...BASE, SIDECACHE_PEER_TIMEOUT: `${n}${u}` }).peerTimeoutMs, n * timeUnits[u]);
  }));
});

t.test('config - counterexamples: each refused with a ConfigError naming the variable', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['SIDECACHE_BODY_TIMEOUT', '35792m', /up to 596h/],
    ['SIDECACHE_PEER_TIMEOUT', '99999999h', /up to 596h/],
    ['SIDECACHE_MAX_URL_BYTES', '8388608GiB', /size up to/],
    ['SIDECACHE_MAX_BYTES', '9'.repeat(400), /size up to/],
    ['SIDECACHE_UPSTREAM', 'http://:secret@origin.test', /without query, fragment or credentials/],
    ['SIDECACHE_HEARTBEAT_INTERVAL', '0', /above 0/],
    ['SIDECACHE_INVAL_MAX_AGE', '100000h', /up to 87600h/],
  ];
  for (const [name, value, reason] of cases) {
    const r = load({ ...CLUSTER, [name]: value });
    t.ok(r instanceof ConfigErrors, `${name}=${value.slice(0, 20)} refused`);
    if (!(r instanceof ConfigErrors)) continue;
    t.equal(r.errors[0]?.variable, name);
    t.match(r.errors[0]?.message, reason);
    t.notMatch(r.message, /secret/, 'no credential echoed');
  }
  t.equal(loadConfig({ ...BASE, SIDECACHE_PEER_TIMEOUT: '596h' }).peerTimeoutMs, 596 * 3_600_000, 'the longest timer is accepted');
  // Accepted before, then the store's constructor threw a TypeError at start-up.
  const zero = load({ ...BASE, SIDECACHE_MAX_BYTES: '0', SIDECACHE_MAX_ENTRY_BYTES: '0' });
  t.ok(zero instanceof ConfigErrors && zero.errors.some((e) => e.variable === 'SIDECACHE_MAX_BYTES' && /above 0/.test(e.message)), 'a budget of 0 bytes');
});

t.test('config - client timeouts: the request timeout is at least the headers timeout', async (t) => {
  const r = load({ ...BASE, SIDECACHE_CLIENT_HEADERS_TIMEOUT: '10s', SIDECACHE_CLIENT_REQUEST_TIMEOUT: '5s' });
  t.ok(r instanceof ConfigErrors && r.errors.some((e) => e.variable === 'SIDECACHE_CLIENT_REQUEST_TIMEOUT' && /at least SIDECACHE_CLIENT_HEADERS_TIMEOUT/.test(e.message)));
  const c = loadConfig({ ...BASE, SIDECACHE_MAX_CONNECTIONS: '500', SIDECACHE_CLIENT_HEADERS_TIMEOUT: '2s', SIDECACHE_CLIENT_REQUEST_TIMEOUT: '2s' });
  t.same([c.maxConnections, c.clientHeadersTimeoutMs, c.clientRequestTimeoutMs], [500, 2000, 2000]);
  const d = loadConfig(BASE);
  t.same([d.maxConnections, d.clientHeadersTimeoutMs, d.clientRequestTimeoutMs], [10_000, 30_000, 60_000], 'defaults');
  for (const bad of ['0', '-1', '1000001', 'many']) t.ok(load({ ...BASE, SIDECACHE_MAX_CONNECTIONS: bad }) instanceof ConfigErrors, `SIDECACHE_MAX_CONNECTIONS=${bad}`);
});
