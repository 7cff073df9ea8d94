// The command line's pure parts: where the admin API is, the purge body, rates, tables, and
// usage errors (exit 2) that never reach the network.
import t from 'tap';
import type { ClusterReport } from '../../../src/admin/cluster-report.js';
import { adminToken, adminUrl, CliError } from '../../../src/cli/admin-client.js';
import { purgeBody, statusTable, stillListing } from '../../../src/cli/commands.js';
import { runCli } from '../../../src/cli/main.js';
import { ratesBetween } from '../../../src/cli/top.js';
import type { MemberStatus } from '../../../src/cluster/member-status.js';

t.test('cli - the admin API: --admin, else SIDECACHE_ADMIN_LISTEN, else its default; wildcards on loopback', async (t) => {
  t.equal(adminUrl(undefined, {}).href, 'http://127.0.0.1:9091/');
  t.equal(adminUrl(undefined, { SIDECACHE_ADMIN_LISTEN: '127.0.0.1:9999' }).href, 'http://127.0.0.1:9999/');
  t.equal(adminUrl(undefined, { SIDECACHE_ADMIN_LISTEN: '0.0.0.0:9091' }).href, 'http://127.0.0.1:9091/');
  t.equal(adminUrl(undefined, { SIDECACHE_ADMIN_LISTEN: '[::]:9091' }).href, 'http://[::1]:9091/');
  t.equal(adminUrl(undefined, { SIDECACHE_ADMIN_LISTEN: '[::1]:7' }).href, 'http://[::1]:7/');
  t.equal(adminUrl('10.0.0.5:9091', { SIDECACHE_ADMIN_LISTEN: '127.0.0.1:1' }).href, 'http://10.0.0.5:9091/', 'the flag wins');
  t.equal(adminUrl('https://admin.example/', {}).href, 'https://admin.example/');
  for (const [flag, env, re] of [
    ['ftp://x', {}, /--admin: expected an http\(s\) URL/],
    ['http://u:p@h:1', {}, /not in the URL/],
    ['http://', {}, /--admin: expected a URL/],
    [undefined, { SIDECACHE_ADMIN_LISTEN: 'nowhere' }, /^SIDECACHE_ADMIN_LISTEN: expected host:port/],
  ] as const) {
    try {
      adminUrl(flag, env);
      t.fail(`${flag ?? JSON.stringify(env)} accepted`);
    } catch (err) {
      t.ok(err instanceof CliError && err.exitCode === 2);
      t.match((err as Error).message, re);
    }
  }
  t.equal(adminToken(undefined, { SIDECACHE_ADMIN_TOKEN: ' tok ' }), 'tok');
  t.equal(adminToken('flag', { SIDECACHE_ADMIN_TOKEN: 'env' }), 'flag');
  t.equal(adminToken(undefined, { SIDECACHE_ADMIN_TOKEN: '' }), undefined);
});

t.test('cli - purge: exactly one kind; --url and --tag repeat', async (t) => {
  t.same(purgeBody({ url: ['/a'] }), { url: '/a' });
  t.same(purgeBody({ url: ['/a', '/b'], soft: true }), { url: ['/a', '/b'], soft: true });
  t.same(purgeBody({ prefix: '/n/' }), { prefix: '/n/' });
  t.same(purgeBody({ tag: ['x', 'y'] }), { tags: ['x', 'y'] });
  t.same(purgeBody({ all: true, soft: false }), { all: true });
  for (const f of [{}, { all: false }, { url: ['/a'], all: true }, { prefix: '/p', tag: ['x'] }]) {
    t.throws(() => purgeBody(f), /exactly one of/, JSON.stringify(f));
  }
});

function status(over: Partial<MemberStatus>): MemberStatus {
  return {
    id: 'm1', version: '0', at: 10_000, startedAt: 1, state: 'active', ready: true, draining: false, attached: true, epoch: 3, ring: ['m1', 'm2'],
    incarnation: 'i', appliedSeq: 5, partitions: { total: 4, primary: 2, replica: 2 },
    cache: { entries: 1, bytes: 2048, hotEntries: 0, hotBytes: 0 },
    requests: { hit: 0, stale: 0, miss: 0, collapsed: 0, revalidated: 0, pass: 0, forwarded: 0, error: 0 },
    hitRatio: null, originRequests: 0, forwardedRequests: 0, degradedFetches: 0, purges: 0, invalidationsApplied: 0,
    ...over,
  };
}

t.test('cli top - rates per second over each member\'s own clock; none across a restart', async (t) => {
  const a = status({});
  const b = status({
    at: 12_000,
    requests: { hit: 30, stale: 2, miss: 4, collapsed: 1, revalidated: 1, pass: 5, forwarded: 2, error: 0 },
    originRequests: 6, forwardedRequests: 2, purges: 1,
  });
  t.same(ratesBetween(a, b), { hits: 16, misses: 4, origin: 3, forwarded: 1, purges: 0.5, hitRatio: 32 / 40 });
  t.equal(ratesBetween(a, a), undefined, 'the same reading');
  t.equal(ratesBetween(a, status({ at: 12_000, startedAt: 2 })), undefined, 'a restart in between');
});

const report: ClusterReport = {
  version: 1, at: 0, from: 'm1', cluster: 'c', mode: 'cluster',
  view: { epoch: 3, members: [{ id: 'm1', peerUrl: 'http://p1', state: 'active' }, { id: 'm2', peerUrl: 'http://p2', state: 'active' }] },
  ring: { epoch: 3, partitions: 4, replicas: 2, members: ['m1', 'm2'], owners: [['m1', 'm2'], ['m2', 'm1'], ['m1', 'm2'], ['m2', 'm1']] },
  members: [
    { id: 'm1', state: 'active', peerUrl: 'http://p1', reachable: true, lag: 0, status: status({ hitRatio: 0.5 }) },
    { id: 'm2', state: 'active', peerUrl: 'http://p2', reachable: false, error: 'peer m2: connect ECONNREFUSED', lag: null, status: null },
  ],
};

t.test('cli status - one row per member; an unreachable one says why', async (t) => {
  const text = statusTable(report);
  t.match(text, /^cluster c: 2 member\(s\), view epoch 3, ring epoch 3, 2 placed, 4 partitions x 2 \(from m1\)$/m);
  t.match(text, /^m1\s+active\s+3\s+2\s+2\s+50\.0%\s+5\s+0\s+1\/2\.0KiB$/m);
  t.match(text, /^m2\s+active\s+(-\s+)+unreachable: peer m2: connect ECONNREFUSED$/m);
  t.same(stillListing(report, 'm2'), ['m1'], 'drain waits while a reachable member places it');
  t.same(stillListing(report, 'm3'), []);
});

t.test('cli - usage errors exit 2 with a message and never reach the network', async (t) => {
  const run = async (...argv: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(argv, { SIDECACHE_ADMIN_LISTEN: '127.0.0.1:1' }, { out: (s) => out.push(s), err: (s) => err.push(s) });
    return { code, out: out.join('\n'), err: err.join('\n') };
  };
  t.match(await run('nope'), { code: 2, err: /unknown command "nope"; commands: status, purge, drain, top, inspect/ });
  t.match(await run('toString'), { code: 2, err: /unknown command "toString"/ });
  t.match(await run('status', 'extra'), { code: 2, err: /expected no arguments, got 1/ });
  t.match(await run('inspect'), { code: 2, err: /expected 1 argument\(s\), got 0/ });
  t.match(await run('top', '--interval', '10ms'), { code: 2, err: /--interval: at least 500ms/ });
  t.match(await run('top', '--count', '0'), { code: 2, err: /--count: expected a whole number above 0/ });
  t.match(await run('drain', '--wait', 'soon'), { code: 2, err: /--wait: expected a duration/ });
  t.match(await run('purge', '--url'), { code: 2, err: /purge: Option '--url <value>' argument missing/ });
  t.match(await run('status', '--help'), { code: 0, out: /^sidecache status \[--json\]/ });
  t.match(await run('help'), { code: 0, out: /Commands:\n {2}status {3}every member/ });
  t.match(await run(), { code: 2, out: /Usage: sidecache/ });
});
