// The indexed analysis (check/analyse.ts) finds exactly what the same verdicts find when what
// they look up is found by scanning, as first written (analyse-reference.ts: every read against
// every purge), on seeded random histories dense with ties and with every kind of purge,
// membership, Cache-Status and anomaly; and analyseAsync gives the event loop a turn while it
// reads a long history.
import t from 'tap';
import { analyse, analyseAsync, ANOMALY_KINDS, type Anomaly, type Bounds, type HistoryData } from '../../../check/analyse.js';
import type { Bump, ClientOp, FaultEvent, OriginResponse, Outage, PurgeBody, PurgeOp, ReadOp } from '../../../check/history.js';
import { Rng } from '../../../check/prng.js';
import { analyseReference } from './analyse-reference.js';

const BOUNDS: Bounds = { missingGraceMs: 500, answerWithinMs: 400 };
// Keys with stale-while-revalidate, Vary, stale-if-error and neither; one no profile knows.
const KEYS = ['/k/a/0', '/k/a/2', '/k/b/5', '/k/c/3', '/k/zz'];
const MEMBERS = ['s0', 's1', 's2', 's3'];

/** A history of `n` client operations over a few seconds, times on a 50 ms grid so that they tie
 *  often. `soft`: mostly soft purges, stale serves and INVAL resets (the rarest paths). */
function randomHistory(seed: number, n: number, soft = false): HistoryData {
  const rng = new Rng(seed);
  const span = Math.max(40, n / 2);
  const time = () => rng.int(span) * 50;
  let id = 1;
  const bumps: Bump[] = [];
  for (const key of KEYS) {
    let v = 1;
    for (let i = rng.int(1 + n / 10); i > 0; i--) {
      v = rng.chance(0.9) ? v + 1 : rng.between(0, v + 2);
      bumps.push({ key, at: time(), version: v, by: rng.chance(0.5) ? 'write' : 'operator' });
    }
  }
  const origin: OriginResponse[] = [];
  for (let i = rng.between(n / 4, n / 2); i > 0; i--) {
    const receivedAt = time();
    const sentAt = rng.chance(0.1) ? undefined : receivedAt + (rng.chance(0.05) ? -50 : rng.int(4) * 50);
    const status = rng.pick([200, 200, 304, 503, undefined]);
    origin.push({
      id: id++, key: rng.pick(KEYS), method: 'GET', receivedAt, ...(sentAt !== undefined ? { sentAt } : {}),
      ...(status !== undefined ? { status } : {}), ...(status !== 503 ? { version: rng.between(0, 5) } : {}), conditional: status === 304, via: '',
    });
  }
  const ops: ClientOp[] = [];
  const subset = () => MEMBERS.filter(() => rng.chance(0.5));
  for (let i = rng.between(n / 20, n / 8); i > 0; i--) {
    const softly = rng.chance(soft ? 0.8 : 0.4) ? { soft: true } : {};
    const kind = rng.weighted({ url: 4, prefix: 1, tags: 1, all: 1 });
    const body: PurgeBody = kind === 'url' ? { url: KEYS.filter(() => rng.chance(0.4)), ...softly }
      : kind === 'prefix' ? { prefix: rng.pick(['/k/a/', '/k/b', '/k/']), ...softly }
      : kind === 'tags' ? { tags: [rng.pick(['g-a', 'g-c', 't-0', 't-2'])], ...softly }
      : { all: true, ...softly };
    const start = time();
    const acknowledged = subset();
    const missing = MEMBERS.filter((m) => !acknowledged.includes(m) && rng.chance(0.5));
    ops.push({
      type: 'purge', id: id++, member: rng.pick(MEMBERS), body, start, ...(rng.chance(0.95) ? { end: start + rng.int(4) * 50 } : {}),
      status: rng.chance(0.9) ? 200 : 503, ...(rng.chance(0.95) ? { seq: rng.between(1, 12) } : {}), acknowledged, missing,
    });
  }
  const statuses = (node: string, member: string, seq: number) => [
    'sidecache; hit',
    `sidecache; hit; node="${member}"; epoch=4; seq=${seq}`,
    `sidecache; hit; node="${node}"; epoch=4; seq=${seq}; detail="stale-while-revalidate"`,
    `sidecache; hit; node="${node}"; seq=${seq}; detail="stale-while-revalidate", sidecache; fwd=uri-miss; fwd-status=200; stored; node="${member}"`,
    `sidecache; fwd=stale; fwd-status=503; node="${node}"; detail="stale-if-error"`,
    `sidecache; fwd=stale; fwd-status=304; stored; node="${member}"`,
    `sidecache; hit; node="${node}"; detail="stale"`,
    'sidecache; hot; node="s1"',
    'sidecache; replica; node="s2"',
  ];
  for (let i = n - ops.length; i > 0; i--) {
    const member = rng.pick(MEMBERS);
    const key = rng.pick(KEYS);
    const start = time();
    if (rng.chance(0.05)) {
      ops.push({ type: 'write', id: id++, client: 'c', member, method: 'POST', key, start, end: start + rng.int(10) * 50, status: rng.pick([200, 502]), fromOrigin: rng.chance(0.8) });
      continue;
    }
    const fetch = rng.chance(0.8) && origin.length > 0 ? rng.pick(origin) : undefined;
    const lang = rng.pick(['en', 'fr']);
    const read: ReadOp = {
      type: 'read', id: id++, client: 'c', member, method: rng.pick(['GET', 'HEAD']), key, lang, start,
      status: rng.pick([200, 200, 200, 200, 304, 304, 503, 502]), version: rng.between(0, 5),
      ...(fetch !== undefined ? { fetchId: fetch.id } : {}),
      bodyKey: rng.chance(0.97) ? key : rng.pick(KEYS), bodyLang: rng.pick(['-', '-', lang, 'de']),
      cacheStatus: statuses(rng.pick(MEMBERS), member, rng.between(0, 14))[soft && rng.chance(0.7) ? rng.between(2, 3) : rng.int(9)], fromOrigin: rng.chance(0.9),
      ...(rng.chance(0.03) ? { error: 'socket hang up' } : {}),
    };
    if (rng.chance(0.97)) read.end = start + (rng.chance(0.03) ? 450 : rng.int(8) * 50);
    if (rng.chance(0.05)) delete read.version;
    ops.push(read);
  }
  // Client operations in no particular order, as clients finish them.
  for (let i = ops.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [ops[i], ops[j]] = [ops[j]!, ops[i]!];
  }
  const faults: FaultEvent[] = [];
  for (let i = soft ? rng.between(1, 3) : rng.int(3); i > 0; i--) {
    const start = time();
    faults.push({ type: 'fault', id: id++, kind: rng.pick(['inval-reset', 'inval-reset', 'lag']), target: rng.pick(MEMBERS), start, end: start + 100, note: '' });
  }
  const outages: Outage[] = [];
  for (let i = rng.int(3); i > 0; i--) {
    const start = time();
    outages.push({ member: rng.pick(MEMBERS), kind: rng.pick(['paused', 'down', 'stopped'] as const), start, ...(rng.chance(0.8) ? { end: start + rng.int(20) * 50 } : {}) });
  }
  return { trafficStart: 0, ops, origin, bumps, faults, outages };
}

const shown = (anomalies: readonly Anomaly[]) =>
  anomalies.map((a) => ({ kind: a.kind, op: a.op.id, purge: a.purge?.id, fetch: a.fetch?.id, message: a.message, hints: a.hints }));

t.test('analyse - the indexed analysis finds what the quadratic one finds, on 600 random histories', async (t) => {
  const seen = new Map<string, number>();
  let differ = 0;
  for (let seed = 1; seed <= 600; seed++) {
    const h = randomHistory(seed, seed % 100 === 0 ? 1_500 : 80, seed % 2 === 0);
    const got = shown(analyse(h, BOUNDS));
    const want = shown(analyseReference(h, BOUNDS));
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      differ++;
      if (differ <= 3) t.same(got, want, `seed ${seed}`);
    }
    for (const a of want) seen.set(a.kind, (seen.get(a.kind) ?? 0) + 1);
  }
  t.equal(differ, 0, 'histories where the two differ');
  for (const kind of ANOMALY_KINDS) t.ok((seen.get(kind) ?? 0) >= 10, `the histories hold ${kind} anomalies (${seen.get(kind) ?? 0})`);
});

t.test('analyse - analyseAsync finds the same and lets the event loop run while it reads a long history', async (t) => {
  const h = randomHistory(7, 20_000);
  const order: string[] = [];
  setImmediate(() => order.push('another task'));
  const got = await analyseAsync(h, BOUNDS).finally(() => order.push('analysis done'));
  t.same(order, ['another task', 'analysis done']);
  t.same(shown(got), shown(analyse(h, BOUNDS)));
  t.ok(got.length > 0);
});
