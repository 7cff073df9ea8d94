// SIDECACHE_* parsing: every error names the variable and the value; units; lists.
import t from 'tap';
import { helpText, loadConfig, parseDuration, parseSize, VARIABLES } from '../../src/core/config.js';
import { errorsOf } from '../helpers/config-errors.js';

const BASE = { SIDECACHE_UPSTREAM: 'http://127.0.0.1:8080' };

t.test('config - defaults load and are frozen', async (t) => {
  const c = loadConfig(BASE);
  t.ok(Object.isFrozen(c));
  t.equal(c.upstream?.href, 'http://127.0.0.1:8080/');
  t.same(c.listen, { host: '127.0.0.1', port: 3128 });
  t.equal(c.maxBytes, 256 * 1024 * 1024);
  t.equal(c.maxEntryBytes, 8 * 1024 * 1024);
  t.equal(c.maxHeaderBytes, 16 * 1024);
  t.equal(c.headersTimeoutMs, 30_000);
  t.equal(c.defaultTtlMs, 0);
  t.equal(c.cacheStatusDetail, true);
  t.equal(c.stripTagHeaders, true);
  t.equal(c.adminToken, undefined);
  t.same(c.tlsPorts, [443]);
  t.same(c.natsUrls, []);
});

t.test('config - sizes in bytes, KiB, MiB, GiB (and decimal units)', async (t) => {
  t.equal(parseSize('512', ''), 512);
  t.equal(parseSize('64KiB', ''), 65_536);
  t.equal(parseSize('8MiB', ''), 8 * 1024 ** 2);
  t.equal(parseSize('2 gib', ''), 2 * 1024 ** 3);
  t.equal(parseSize('1.5KiB', ''), 1536);
  t.equal(parseSize('3kB', ''), 3000);
  for (const bad of ['', 'lots', '-1', '10XB', '1e3', 'MiB']) t.throws(() => parseSize(bad, ''), { message: new RegExp(`got "${bad}"`) }, bad);
});

t.test('config - durations in ms, s, m, h; a bare number only for 0', async (t) => {
  t.equal(parseDuration('250ms', ''), 250);
  t.equal(parseDuration('5s', ''), 5000);
  t.equal(parseDuration('1.5s', ''), 1500);
  t.equal(parseDuration('2m', ''), 120_000);
  t.equal(parseDuration('1h', ''), 3_600_000);
  t.equal(parseDuration('0', ''), 0);
  for (const bad of ['5', '5d', 's', '-1s', 'soon', '5 sec']) t.throws(() => parseDuration(bad, ''), { message: new RegExp(`got "${bad}"`) }, bad);
});

t.test('config - every parse error names the variable and the value', async (t) => {
  const cases: Array<[string, string]> = [
    ['SIDECACHE_LISTEN', 'nowhere'],
    ['SIDECACHE_LISTEN', '127.0.0.1:70000'],
    ['SIDECACHE_UPSTREAM', '10.0.0.3'],
    ['SIDECACHE_UPSTREAM', 'ftp://example.com'],
    ['SIDECACHE_UPSTREAM', 'http://example.com/?q=1'],
    ['SIDECACHE_ALLOW_HOSTS', 'good.example,bad host'],
    ['SIDECACHE_TLS_PORTS', '443,https'],
    ['SIDECACHE_MAX_BYTES', '12XB'],
    ['SIDECACHE_MAX_ENTRY_BYTES', 'big'],
    ['SIDECACHE_MAX_ENTRY_BYTES', '1GiB'],
    ['SIDECACHE_HOT_MAX_BYTES', 'x'],
    ['SIDECACHE_MAX_VARIANTS', '0'],
    ['SIDECACHE_MAX_VARIANTS', 'many'],
    ['SIDECACHE_INVAL_HISTORY_BYTES', '1KiB'],
    ['SIDECACHE_MAX_HEADER_BYTES', '16KB!'],
    ['SIDECACHE_MAX_URL_BYTES', 'eight'],
    ['SIDECACHE_CONNECT_TIMEOUT', '5'],
    ['SIDECACHE_HEADERS_TIMEOUT', 'forever'],
    ['SIDECACHE_BODY_TIMEOUT', '1d'],
    ['SIDECACHE_DEFAULT_TTL', '10'],
    ['SIDECACHE_QUERY_SORT', 'maybe'],
    ['SIDECACHE_CACHE_STATUS_DETAIL', 'yesplease'],
    ['SIDECACHE_STRIP_TAG_HEADERS', '2'],
    ['SIDECACHE_ADMIN_LISTEN', '9091'],
    ['SIDECACHE_PURGE_TIMEOUT', 'two'],
    ['SIDECACHE_LOG_LEVEL', 'loud'],
    ['SIDECACHE_SHUTDOWN_TIMEOUT', '10'],
    ['SIDECACHE_NATS_URL', 'http://nats'],
    ['SIDECACHE_CLUSTER', 'a b'],
    ['SIDECACHE_NODE_ID', 'n/1'],
    ['SIDECACHE_PEER_LISTEN', 'x'],
    ['SIDECACHE_PEER_URL', 'peer'],
    ['SIDECACHE_REPLICAS', '0'],
    ['SIDECACHE_PARTITIONS', '1.5'],
    ['SIDECACHE_STREAM_REPLICAS', '9'],
    ['SIDECACHE_HEARTBEAT_INTERVAL', '2'],
    ['SIDECACHE_HEARTBEAT_TTL', '1s'],
    ['SIDECACHE_RING', 'sometimes'],
    ['SIDECACHE_HANDOFF', 'nah'],
    ['SIDECACHE_MAX_STALE_DETACHED', '30'],
    ['SIDECACHE_FILL_MAX_BYTES', 'half'],
    ['SIDECACHE_FILL_MAX_IN_FLIGHT', '0'],
    ['SIDECACHE_FILLS_MAX_BYTES', '1TB'],
    ['SIDECACHE_FILLS_MAX_AGE', '1w'],
    ['SIDECACHE_INVAL_MAX_AGE', '60'],
    ['SIDECACHE_INVAL_MAX_BYTES', 'lots'],
    ['SIDECACHE_INVAL_MAX_BYTES', '10KiB'],
    ['SIDECACHE_WRITE_INVAL_RATE', '0'],
    ['SIDECACHE_PEER_TIMEOUT', 'slow'],
    ['SIDECACHE_MADE_UP', 'x1'],
  ];
  for (const [name, value] of cases) {
    const errors = errorsOf({ ...BASE, [name]: value });
    const mine = errors.filter((e) => e.startsWith(`${name}: `));
    t.equal(mine.length, 1, `${name}=${value}: one error for the variable (got ${JSON.stringify(errors)})`);
    // A list entry may be named alone ("bad host"), never without its text.
    const shown = name === 'SIDECACHE_ALLOW_HOSTS' ? 'bad host' : name === 'SIDECACHE_TLS_PORTS' ? 'https' : value;
    t.ok(mine[0]?.includes(`"${shown}"`), `${name}: the message shows the value: ${mine[0]}`);
  }
});

t.test('config - a budget below the default entry size names the default, not "undefined"', async (t) => {
  const errors = errorsOf({ ...BASE, SIDECACHE_MAX_BYTES: '4MiB' });
  t.equal(errors.length, 1, JSON.stringify(errors));
  t.match(errors[0], /^SIDECACHE_MAX_ENTRY_BYTES: must not exceed SIDECACHE_MAX_BYTES \(4194304\), got the default 8388608/);
  t.notMatch(errors[0], /undefined/);
});

t.test('config - all problems are reported at once', async (t) => {
  const errors = errorsOf({ SIDECACHE_MAX_BYTES: 'x', SIDECACHE_BODY_TIMEOUT: 'y', SIDECACHE_BOGUS: 'z' });
  t.equal(errors.length, 4, JSON.stringify(errors));
  t.ok(errors.some((e) => e.startsWith('SIDECACHE_UPSTREAM: ') && e.includes('SIDECACHE_ALLOW_HOSTS')), 'no mode chosen');
  t.ok(errors.some((e) => e.startsWith('SIDECACHE_BOGUS: unknown variable')));
});

t.test('config - the admin token is checked but never echoed', async (t) => {
  const errors = errorsOf({ ...BASE, SIDECACHE_ADMIN_TOKEN: 'short' });
  t.equal(errors.length, 1);
  t.match(errors[0], /^SIDECACHE_ADMIN_TOKEN: /);
  t.notMatch(errors[0], /short"/);
});

t.test('config - cluster mode requires a long enough secret', async (t) => {
  const errors = errorsOf({ ...BASE, SIDECACHE_NATS_URL: 'nats://127.0.0.1:4222', SIDECACHE_CLUSTER_SECRET: 'tooshort' });
  t.equal(errors.length, 1);
  t.match(errors[0], /^SIDECACHE_CLUSTER_SECRET: /);
});

t.test('config - lists and host patterns', async (t) => {
  const c = loadConfig({
    SIDECACHE_ALLOW_HOSTS: 'API.example.com, *.cdn.example:8080,,[::1]:80',
    SIDECACHE_QUERY_DROP: 'utm_source, fbclid,, ',
    SIDECACHE_TLS_PORTS: '443, 8443',
    SIDECACHE_NATS_URL: 'nats://a:4222, b:4223',
    SIDECACHE_CLUSTER_SECRET: '0123456789abcdef',
  });
  t.equal(c.upstream, undefined, 'forward mode');
  t.same(c.allowHosts, [
    { host: 'api.example.com', suffix: false, port: undefined },
    { host: '.cdn.example', suffix: true, port: 8080 },
    { host: '[::1]', suffix: false, port: 80 },
  ]);
  t.same(c.queryDrop, ['utm_source', 'fbclid']);
  t.same(c.tlsPorts, [443, 8443]);
  t.same(c.natsUrls, ['nats://a:4222', 'b:4223']);
});

t.test('config - booleans and empty optional values', async (t) => {
  const c = loadConfig({ ...BASE, SIDECACHE_QUERY_SORT: 'YES', SIDECACHE_CACHE_STATUS_DETAIL: 'off', SIDECACHE_ADMIN_TOKEN: '  ', SIDECACHE_CA_FILE: '' });
  t.equal(c.querySort, true);
  t.equal(c.cacheStatusDetail, false);
  t.equal(c.adminToken, undefined);
  t.equal(c.caFile, undefined);
});

t.test('config - --help lists every variable with its default', async (t) => {
  const text = helpText();
  for (const v of VARIABLES) t.match(text, new RegExp(`^  ${v.name} .*\\(default: `, 'm'), v.name);
});
