// The cluster checker's analysis (check/analyse.ts) on hand-made histories: what counts as a
// broken promise and what does not. Pure: no processes, fixed times in milliseconds.
import t from 'tap';
import { analyse, type Bounds, type HistoryData } from '../../../check/analyse.js';
import type { Bump, ClientOp, FaultEvent, OriginResponse, Outage, PurgeOp, ReadOp } from '../../../check/history.js';

const BOUNDS: Bounds = { missingGraceMs: 5_000, answerWithinMs: 12_000 };
const KEY = '/k/a/1';
let nextId = 1000;

function fetched(id: number, at: number, version: number, status = 200, conditional = false): OriginResponse {
  return { id, key: KEY, method: 'GET', receivedAt: at, sentAt: at + 1, status, version, conditional, via: '' };
}

/** A GET of KEY at `member` from `start` to `start + 5` that got the body of origin response `fetchId`. */
function read(member: string, start: number, version: number, fetchId: number | undefined, cacheStatus = 'sidecache; hit', over: Partial<ReadOp> = {}): ReadOp {
  return {
    type: 'read', id: nextId++, client: 'c', member, method: 'GET', key: KEY, lang: 'en', start, end: start + 5,
    status: 200, version, ...(fetchId !== undefined ? { fetchId } : {}), bodyKey: KEY, bodyLang: '-', cacheStatus, fromOrigin: true, ...over,
  };
}

/** A purge of KEY sent at 200, returned at 300, acknowledged by s0 and s1, s2 missing. */
function purge(soft = false): PurgeOp {
  return { type: 'purge', id: 1, member: 's0', body: { url: [KEY], ...(soft ? { soft: true } : {}) }, start: 200, end: 300, status: 200, seq: 5, acknowledged: ['s0', 's1'], missing: ['s2'] };
}

function history(ops: ClientOp[], origin: OriginResponse[] = [fetched(1, 100, 1)], bumps: Bump[] = [], outages: Outage[] = []): HistoryData {
  return { ops, origin, bumps, faults: [], outages };
}

const kinds = (h: HistoryData) => analyse(h, BOUNDS).map((a) => a.kind);

t.test('analyse - a body fetched before a hard purge, served after it by an acknowledging member', async (t) => {
  t.same(kinds(history([purge(), read('s0', 400, 1, 1)])), ['fetched-before-purge']);
  t.same(kinds(history([purge(), read('s0', 250, 1, 1)])), [], 'a read that began before the purge returned is not held to it');
  t.same(kinds(history([purge(), read('s0', 400, 1, 2)], [fetched(1, 100, 1), fetched(2, 210, 1)])), [], 'a fetch that began after the purge began');
});

t.test('analyse - a version older than the one the origin held when the purge began', async (t) => {
  const bump: Bump = { key: KEY, at: 150, version: 2, by: 'operator' };
  t.same(kinds(history([purge(), read('s1', 400, 1, undefined, 'sidecache; hit', { status: 304 })], [fetched(1, 100, 1)], [bump])), ['stale-read']);
  const late: Bump = { key: KEY, at: 250, version: 2, by: 'write' };
  t.same(kinds(history([purge(), read('s1', 400, 1, undefined, 'sidecache; hit', { status: 304 })], [fetched(1, 100, 1)], [late])), [],
    'a version written after the purge began was not removed by it');
});

t.test('analyse - members the purge listed as missing are held to the bound for detached members', async (t) => {
  t.same(kinds(history([purge(), read('s2', 400, 1, 1)])), [], 'within SIDECACHE_MAX_STALE_DETACHED + TTL of the purge');
  t.same(kinds(history([purge(), read('s2', 5_400, 1, 1)])), ['fetched-before-purge'], 'after it');
});

t.test('analyse - members in neither list must revalidate: a 304 is fine, a stale-while-revalidate hit is not', async (t) => {
  const revalidation = fetched(3, 401, 1, 304, true);
  t.same(kinds(history([purge(), read('s3', 400, 1, 1, 'sidecache; fwd=stale; fwd-status=304; stored')], [fetched(1, 100, 1), revalidation])), []);
  t.same(kinds(history([purge(), read('s3', 400, 1, 1, 'sidecache; hit; detail="stale-while-revalidate"')])), ['fetched-before-purge']);
});

t.test('analyse - after a soft purge, an acknowledging member serves the old body only as stale or revalidated', async (t) => {
  t.same(kinds(history([purge(true), read('s0', 400, 1, 1, 'sidecache; hit; detail="stale-while-revalidate"')])), []);
  t.same(kinds(history([purge(true), read('s0', 400, 1, 1, 'sidecache; hit')])), ['soft-not-revalidated']);
  const revalidation = fetched(3, 401, 1, 304, true);
  t.same(kinds(history([purge(true), read('s0', 400, 1, 1, 'sidecache; fwd=stale; fwd-status=304')], [fetched(1, 100, 1), revalidation])), []);
});

t.test('analyse - after a soft purge, a stale answer is judged at the member that chose to serve stale', async (t) => {
  // s3 (joining: in neither list) forwards a miss to the owner s0, which applied the soft purge
  // and answers stale-while-revalidate (the checker, seed 2 in CI: s2 after a restart).
  const passedOn = 'sidecache; hit; node="s0"; detail="stale-while-revalidate", sidecache; fwd=uri-miss; fwd-status=200; stored; node="s3"';
  t.same(kinds(history([purge(true), read('s3', 400, 1, 1, passedOn)])), [], 'the owner acknowledged: its stale serve is allowed');
  const ownStale = 'sidecache; hit; node="s3"; detail="stale-while-revalidate"';
  t.same(kinds(history([purge(true), read('s3', 400, 1, 1, ownStale)])), ['soft-not-revalidated'], 'its own stale serve is not');
  const fromMissing = 'sidecache; hit; node="s2"; detail="stale-while-revalidate", sidecache; fwd=uri-miss; fwd-status=200; node="s3"';
  t.same(kinds(history([purge(true), read('s3', 400, 1, 1, fromMissing)])), ['soft-not-revalidated'], 'nor one passed on from a member that did not acknowledge');
  t.same(kinds(history([purge(), read('s3', 400, 1, 1, passedOn)])), ['fetched-before-purge'], 'a hard purge allows no stale serve');
});

t.test('analyse - after a soft purge, a member in neither list may serve stale once its answer shows it applied the purge', async (t) => {
  // s3 joined (or came back) during the purge: its Cache-Status names the seq it had applied.
  const swr = (seq: number) => `sidecache; hit; node="s3"; epoch=4; seq=${seq}; detail="stale-while-revalidate"`;
  const reset = (at: number): FaultEvent => ({ type: 'fault', id: 9, kind: 'inval-reset', target: 'INVAL', start: at, end: at + 50, note: '' });
  t.same(kinds(history([purge(true), read('s3', 400, 1, 1, swr(7))])), [], 'seq 7 >= the purge\'s 5: applied');
  t.same(kinds(history([purge(true), read('s3', 400, 1, 1, swr(4))])), ['soft-not-revalidated'], 'seq 4: not applied');
  t.same(kinds({ ...history([purge(true), read('s3', 400, 1, 1, swr(7))]), faults: [reset(350)] }), ['soft-not-revalidated'],
    'a reset between the purge and the read: the seq may count in another numbering');
  t.same(kinds({ ...history([purge(true), read('s3', 400, 1, 1, swr(7))]), faults: [reset(50)] }), ['soft-not-revalidated'],
    'a reset before the purge, and nothing shows s3 learnt the new numbering');
  const restarted: Outage = { member: 's3', kind: 'down', start: 60, end: 120 };
  t.same(kinds({ ...history([purge(true), read('s3', 400, 1, 1, swr(7))], undefined, [], [restarted]), faults: [reset(50)] }), [],
    'ready again after that reset: its seqs count in the new numbering');
  const acked: PurgeOp = { type: 'purge', id: 2, member: 's0', body: { url: ['/k/other'] }, start: 80, end: 90, status: 200, seq: 2, acknowledged: ['s0', 's3'], missing: [] };
  t.same(kinds({ ...history([acked, purge(true), read('s3', 400, 1, 1, swr(7))]), faults: [reset(50)] }), [],
    'it acknowledged a purge after that reset');
  t.same(kinds(history([purge(), read('s3', 400, 1, 1, swr(7))])), ['fetched-before-purge'], 'a hard purge allows no stale serve');
});

t.test('analyse - a request failing at a sidecar that was neither paused nor down', async (t) => {
  const failed = read('s0', 400, 1, undefined, undefined, { error: 'socket hang up' });
  t.same(kinds(history([failed])), ['unavailable']);
  t.same(kinds(history([failed], [], [], [{ member: 's0', kind: 'paused', start: 300, end: 402 }])), [], 'excused while it was paused');
  t.same(kinds(history([read('s0', 400, 1, undefined, undefined, { status: 503, fromOrigin: true })])), [], 'the origin\'s own 503');
  t.same(kinds(history([read('s0', 400, 1, undefined, undefined, { status: 502, fromOrigin: false })])), ['unavailable'], 'a 502 made by the sidecar');
  t.same(kinds(history([read('s0', 400, 1, 1, 'sidecache; hit', { end: 400 + 12_001 })])), ['unavailable'], 'an answer later than the bound');
});

t.test('analyse - a body for another variant', async (t) => {
  const wrong = { ...read('s0', 400, 1, 1), key: '/k/a/2', bodyKey: '/k/a/2', lang: 'en', bodyLang: 'fr' };
  t.same(kinds(history([wrong])), ['wrong-body']);
});

t.test('analyse - a sidecar stopped gracefully (SIGTERM) excuses its own clients only, until it is ready again', async (t) => {
  // A rolling restart: s1 drains from 300 and is ready again at 2,000. Its peers must route
  // around it, so their clients' failures and timeouts meanwhile are anomalies.
  const stopped: Outage = { member: 's1', kind: 'stopped', start: 300, end: 2_000 };
  const refused = (member: string, start: number) => read(member, start, 1, undefined, undefined, { error: 'connect ECONNREFUSED' });
  t.same(kinds(history([refused('s1', 400)], [], [], [stopped])), [], 'its own client, while it was stopping or starting');
  t.same(kinds(history([refused('s1', 2_100)], [], [], [stopped])), ['unavailable'], 'its own client, once it was ready again');
  t.same(kinds(history([refused('s0', 400)], [], [], [stopped])), ['unavailable'], 'a client of a peer');
  const slow = read('s0', 400, 1, 1, 'sidecache; fwd=uri-miss', { end: 400 + 12_001 });
  t.same(kinds(history([slow], [fetched(1, 100, 1)], [], [stopped])), ['unavailable'], 'a peer\'s client that waited past the bound');
  const gone: Outage = { member: 's2', kind: 'stopped', start: 300 };
  t.same(kinds(history([refused('s2', 30_000)], [], [], [gone])), [], 'a member that left for good (scale-in): its outage never ends');
});

t.test('analyse - a member that acknowledged a later purge is held to an earlier one it was not listed in as an acknowledging member', async (t) => {
  // The checker, seed 4: s0 was down during a soft purge-all (in neither list), joined again,
  // acknowledged a later purge, then served its own stale-while-revalidate copy of a body
  // fetched before the soft purge: as a member that applied the purge, it may.
  const later: PurgeOp = { type: 'purge', id: 2, member: 's1', body: { url: ['/k/b/0'] }, start: 400, end: 450, status: 200, seq: 9, acknowledged: ['s0', 's1', 's3'], missing: [] };
  const ownStale = 'sidecache; hit; node="s3"; detail="stale-while-revalidate"';
  t.same(kinds(history([purge(true), later, read('s3', 500, 1, 1, ownStale)])), [], 'after the later purge returned');
  t.same(kinds(history([purge(true), later, read('s3', 420, 1, 1, ownStale)])), ['soft-not-revalidated'], 'before it returned: still catching up');
  const early: PurgeOp = { ...later, start: 250 };
  t.same(kinds(history([purge(true), early, read('s3', 500, 1, 1, ownStale)])), ['soft-not-revalidated'], 'not a purge that began before the first returned');
  // Held as acknowledging, a hard purge allows no body fetched before it, even revalidated.
  const revalidated = 'sidecache; fwd=stale; fwd-status=304; stored';
  const origin = [fetched(1, 100, 1), fetched(3, 501, 1, 304, true)];
  t.same(kinds(history([purge(), read('s3', 500, 1, 1, revalidated)], origin)), [], 'in neither list: a revalidated copy is allowed');
  t.same(kinds(history([purge(), later, read('s3', 500, 1, 1, revalidated)], origin)), ['fetched-before-purge'], 'once it has applied the purge: not');
});

t.test('analyse - a member that revalidates every hit may answer stale-if-error when the origin fails that read, as the README says', async (t) => {
  // The checker, seeds 5 and 8: a member joining again (5) or dropped from the view while its
  // NATS server was paused (8) served its copy under stale-if-error after a purge it was not
  // listed in, the origin answering 503 to its revalidation.
  const sie = 'sidecache; fwd=stale; fwd-status=503; node="s3"; detail="stale-if-error"';
  const failed: OriginResponse = { id: 4, key: KEY, method: 'GET', receivedAt: 401, sentAt: 402, status: 503, conditional: true, via: '' };
  t.same(kinds(history([purge(), read('s3', 400, 1, 1, sie)], [fetched(1, 100, 1), failed])), [], 'in neither list, the origin failing');
  t.same(kinds(history([purge(true), read('s3', 400, 1, 1, sie)], [fetched(1, 100, 1), failed])), [], 'after a soft purge too');
  t.same(kinds(history([purge(), read('s3', 400, 1, 1, sie)])), ['fetched-before-purge'], 'not without an origin failure during the read');
  t.same(kinds(history([purge(), read('s0', 400, 1, 1, sie)], [fetched(1, 100, 1), failed])), ['fetched-before-purge'], 'never at a member that acknowledged a hard purge');
});
