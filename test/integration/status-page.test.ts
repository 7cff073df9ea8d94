// The status page (GET / on the admin listener) on a running 3-sidecar cluster (real
// nats-server, real sidecars): its headers and data endpoints over HTTP, then the page itself
// in headless Chromium (Debian's, driven by playwright-core): the ring of 3 members, a member
// killed, the page showing it leave and its partitions owned by the others. Screenshots are
// kept in test-artifacts/ (git-ignored). Without /usr/bin/chromium the browser test is
// skipped, saying so; .ci/run installs it.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import t from 'tap';
import { startCluster } from '../../support/cluster.js';
import { startNats } from '../../support/nats-server.js';
import { startOrigin } from '../../support/origin.js';
import { purge } from '../../support/sidecar.js';

const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
/** Where the screenshots go; git-ignored. */
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
/** This machine's network is closed: without these Chromium keeps trying Google's hosts. */
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const PARTITIONS = 256;

const nats = await startNats({ nodes: 1 });
t.teardown(() => nats.stop());
const origin = await startOrigin();
t.teardown(() => origin.close());
const { sidecars } = await startCluster(3, { natsUrls: nats.urls, upstream: origin.url, env: { SIDECACHE_PARTITIONS: String(PARTITIONS) } });
t.teardown(() => Promise.all(sidecars.map((s) => s.kill())));
const [a, b, c] = sidecars as [typeof sidecars[0], typeof sidecars[0], typeof sidecars[0]];

/** A few reads at every member, so hit ratios and rates have something to show. */
async function traffic(rounds: number): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await Promise.all(sidecars.filter((s) => s.proc.exitCode === null && s.proc.signalCode === null)
      .map(async (s) => (await fetch(`${s.url}/page/${i % 5}`)).text()));
  }
}

t.test('status page - GET / is served read-only with a strict CSP, no token, and /purges lists a purge with its acks', async (t) => {
  for (const path of ['/', '/status.js', '/status.css', '/favicon.svg']) {
    const res = await fetch(`${a.adminUrl}${path}`);
    t.equal(res.status, 200, `${path} without a token`);
    const csp = res.headers.get('content-security-policy') ?? '';
    t.match(csp, /default-src 'none'/, `${path}: nothing allowed by default`);
    t.match(csp, /script-src 'self'(;|$)/, `${path}: scripts from the listener only, none inline`);
    t.match(csp, /frame-ancestors 'none'/);
    t.equal(res.headers.get('x-content-type-options'), 'nosniff');
    const body = await res.text();
    if (path === '/status.js') t.doesNotThrow(() => new Script(body, { filename: 'status.js' }), 'the script parses');
    t.notMatch(body, /https?:\/\/(?!www\.w3\.org\/2000\/svg)/, `${path} names no external URL (the SVG namespace aside)`);
  }
  t.match(await (await fetch(`${a.adminUrl}/`)).text(), /<script src="status\.js" defer><\/script>/);
  const head = await fetch(`${a.adminUrl}/`, { method: 'HEAD' });
  t.equal(head.status, 200);
  t.equal(await head.text(), '');
  const post = await fetch(`${a.adminUrl}/`, { method: 'POST', body: 'x' });
  t.equal(post.status, 404, 'the page takes no writes');
  await post.arrayBuffer();

  const p = await purge(a, { tags: ['one', 'two'], soft: true });
  t.equal(p.status, 200);
  const list = await (await fetch(`${a.adminUrl}/purges`)).json() as { from: string; limit: number; purges: Record<string, unknown>[] };
  t.equal(list.from, a.id);
  t.equal(list.limit, 50);
  t.match(list.purges[0], { seq: p.json.seq, kind: 'tags', count: 2, soft: true, missing: [] });
  t.same([...(list.purges[0]!.acknowledged as string[])].sort(), sidecars.map((s) => s.id).sort(), 'every member acknowledged it');
  t.type(list.purges[0]!.ms, 'number');
  t.notMatch(JSON.stringify(list), /"one"|"two"/, 'an open read names no tag or URL');
  const other = await (await fetch(`${b.adminUrl}/purges`)).json() as { purges: unknown[] };
  t.same(other.purges, [], 'each member lists the purges requested through it');
});

interface Arc { owner: string; rank: number; from: number; to: number }

const arcs = (page: Page): Promise<Arc[]> => page.$$eval('#ring path.arc', (els) => els.map((e) => ({
  owner: e.getAttribute('data-owner') ?? '', rank: Number(e.getAttribute('data-rank')), from: Number(e.getAttribute('data-from')), to: Number(e.getAttribute('data-to')),
})));

/** partition -> owner, for one rank. */
function ownersOf(list: Arc[], rank: number): Map<number, string> {
  const m = new Map<number, string>();
  for (const x of list) if (x.rank === rank) for (let p = x.from; p <= x.to; p++) m.set(p, x.owner);
  return m;
}

const skip = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM}: install Debian's chromium (apt-get install chromium; .ci/run does) to run the page in a browser`;

t.test('status page - in Chromium: the ring of 3 members, then a killed member leaves and its partitions move to the others', { skip }, async (t) => {
  const profile = mkdtempSync(join(tmpdir(), 'sidecache-chromium-'));
  t.teardown(() => rmSync(profile, { recursive: true, force: true }));
  mkdirSync(ARTIFACTS, { recursive: true });
  const browser: BrowserContext = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1400, height: 1000 },
  });
  t.teardown(() => browser.close());
  const page = browser.pages()[0] ?? await browser.newPage();
  page.setDefaultTimeout(20_000);
  const problems: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`${r.status()} for ${r.url()}`); });
  page.on('request', (r) => { if (!r.url().startsWith(`${a.adminUrl}/`)) problems.push(`request elsewhere: ${r.url()}`); });

  await traffic(3);
  await page.goto(`${a.adminUrl}/`);
  await page.waitForFunction(() => document.querySelectorAll('#legend li[data-member]').length === 3 && document.querySelectorAll('#members-body tr[data-member]').length === 3);
  const ids = sidecars.map((s) => s.id).sort();
  t.same(await page.$$eval('#legend li', (els) => els.map((e) => e.getAttribute('data-member')).sort()), ids, 'the legend lists the 3 members');
  const legend = await page.$$eval('#legend li', (els) => els.map((e) => ({ primary: Number(e.getAttribute('data-primary')), replica: Number(e.getAttribute('data-replica')), text: e.textContent ?? '' })));
  t.equal(legend.reduce((n, l) => n + l.primary, 0), PARTITIONS, 'primaries add up to every partition');
  t.equal(legend.reduce((n, l) => n + l.replica, 0), PARTITIONS, 'one replica per partition (SIDECACHE_REPLICAS=2)');
  t.ok(legend.every((l) => l.primary > 0 && l.replica > 0 && /\d+ primary · \d+ replica/.test(l.text)), 'each member owns some, and says how many');
  const before = await arcs(page);
  for (const rank of [0, 1]) {
    const owners = ownersOf(before, rank);
    t.equal(owners.size, PARTITIONS, `rank ${rank}: every partition drawn`);
    t.same([...new Set(owners.values())].sort(), ids, `rank ${rank}: drawn in the 3 members' colours`);
  }
  t.same(await page.$$eval('#members-body tr', (els) => els.map((e) => e.getAttribute('data-state'))), ['active', 'active', 'active']);
  t.match(await page.textContent('#summary'), new RegExp(`seen from ${a.id}.*3 in the ring`));
  t.match(await page.textContent('#purges-body'), /tags ×2 \(soft\)/, 'the purge of the first test is listed');

  // Rates: traffic while the page samples (once a second), until a's requests chart has a
  // few seconds of line and its current rate is above 0.
  const row = `#members-body tr[data-member="${a.id}"]`;
  const chartPoints = async (): Promise<number> => (await page.getAttribute(`${row} .spark.reqs path.line`, 'd') ?? '').split(/[ML]/).length - 1;
  const showsRate = async (): Promise<boolean> => Number(await page.textContent(`${row} td.requests .num`)) > 0;
  const until = Date.now() + 30_000;
  for (let round = 0; round < 300 && Date.now() < until && !(await chartPoints() >= 6 && await showsRate()); round++) {
    await traffic(3);
    await new Promise((r) => setTimeout(r, 100));
  }
  t.ok(await showsRate(), 'requests per second shown for a member with traffic');
  t.ok(await chartPoints() >= 6, 'its requests chart has a line of several seconds');
  t.match(await page.textContent(`#members-body tr[data-member="${a.id}"]`), /\d+\.\d%/, 'a hit ratio');
  await page.screenshot({ path: join(ARTIFACTS, 'status-page-3-members.png'), fullPage: true });

  await c.kill();
  await page.waitForFunction((id) => {
    const row = document.querySelector(`#members-body tr[data-member="${id}"]`);
    const owners = [...document.querySelectorAll('#ring path.arc')].map((e) => e.getAttribute('data-owner'));
    return row?.getAttribute('data-state') === 'left' && document.querySelectorAll('#legend li').length === 2 && !owners.includes(id);
  }, c.id, { timeout: 30_000, polling: 100 });
  t.match(await page.textContent(`#members-body tr[data-member="${c.id}"]`), /left.*gone since/, 'the killed member is listed as left');
  t.same(await page.$$eval('#legend li', (els) => els.map((e) => e.getAttribute('data-member')).sort()), [a.id, b.id].sort());
  const after = await arcs(page);
  const movedFrom = [...ownersOf(before, 0)].filter(([, o]) => o === c.id).map(([p]) => p);
  t.ok(movedFrom.length > 0, 'the killed member was primary of some partitions');
  const primaries = ownersOf(after, 0);
  t.ok(movedFrom.every((p) => primaries.get(p) === a.id || primaries.get(p) === b.id), `its ${movedFrom.length} partitions have a or b as primary now`);
  for (const rank of [0, 1]) t.equal(ownersOf(after, rank).size, PARTITIONS, `rank ${rank}: every partition still drawn`);
  t.same([...new Set(ownersOf(after, 1).values())].sort(), [a.id, b.id].sort(), 'replicas on the two left');
  const change = await page.$$eval('#changes li', (els) => els.map((e) => ({ left: e.getAttribute('data-left'), text: e.textContent ?? '' })));
  t.equal(change[0]?.left, c.id, 'the ring change names who left');
  t.match(change[0]?.text, new RegExp(`${c.id} left; \\d+ primaries moved`));
  t.same(await page.$$eval('#members-body tr', (els) => els.map((e) => e.getAttribute('data-state'))), ['active', 'active', 'left'], 'the two left active, listed first');
  await page.screenshot({ path: join(ARTIFACTS, 'status-page-after-kill.png'), fullPage: true });
  t.same(problems, [], 'no script error, no CSP violation, no request off the admin listener');
});
