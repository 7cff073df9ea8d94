// GET /cluster/members' gathering, with peers that answer, lag or do not answer (fake peers,
// as the style guide's picker tests use an injected ring): lag per incarnation, unreachable
// members, and gathers shared by concurrent callers.
import t from 'tap';
import { ClusterReporter, REPORT_REUSE_MS } from '../../../src/admin/cluster-report.js';
import type { MemberStatus } from '../../../src/cluster/member-status.js';
import type { Membership } from '../../../src/log/types.js';
import type { View } from '../../../src/core/types.js';

function status(id: string, appliedSeq: number, incarnation = 'i1'): MemberStatus {
  return {
    id, version: '0', at: 0, startedAt: 0, state: 'active', ready: true, draining: false, attached: true, epoch: 2, ring: ['a', 'b', 'c', 'd'],
    incarnation, appliedSeq, partitions: { total: 4, primary: 1, replica: 1 }, cache: { entries: 0, bytes: 0, hotEntries: 0, hotBytes: 0 },
    requests: { hit: 0, stale: 0, miss: 0, collapsed: 0, revalidated: 0, pass: 0, forwarded: 0, error: 0 },
    hitRatio: null, originRequests: 0, forwardedRequests: 0, degradedFetches: 0, purges: 0, invalidationsApplied: 0,
  };
}

const view: View = {
  epoch: 2,
  members: ['a', 'b', 'c', 'd', 'e'].map((id) => ({ id, peerUrl: `http://${id}`, state: 'active' as const, partitions: 4 })),
};
const log: Pick<Membership, 'view'> = { view };

t.test('cluster report - every member of the view; lag within an incarnation; the silent ones unreachable', async (t) => {
  let queries = 0;
  const answers: Record<string, () => Promise<unknown>> = {
    b: async () => status('b', 7),
    c: async () => status('c', 10),
    d: async () => status('d', 2, 'i0'),
    e: async () => { throw new Error('peer e: connect ECONNREFUSED'); },
  };
  const r = new ClusterReporter({
    self: 'a', cluster: 'x', replicas: 2, partitions: 4, log, table: () => ({ epoch: 2, members: ['a', 'b', 'c', 'd'], owners: [['a', 'b'], ['b', 'c'], ['c', 'd'], ['d', 'a']] }),
    ownStatus: async () => status('a', 9),
    peerStatus: (id) => { queries++; return answers[id]!(); },
  });
  const [one, two] = await Promise.all([r.report(), r.report()]);
  t.equal(one, two, 'concurrent callers share one gather');
  t.equal(queries, 4, 'one query per other member');
  t.same(one.members.map((m) => [m.id, m.reachable, m.lag]), [['a', true, 1], ['b', true, 3], ['c', true, 0], ['d', true, 0], ['e', false, null]]);
  t.match(one.members[4], { error: 'peer e: connect ECONNREFUSED', status: null, state: 'active', peerUrl: 'http://e' });
  t.same(one.ring?.owners[1], ['b', 'c']);
  t.equal(one.mode, 'cluster');
  t.equal(await r.report(one.at + REPORT_REUSE_MS - 1), one, 'reused for a moment');
  const later = await r.report(one.at + REPORT_REUSE_MS);
  t.not(later, one, 'then gathered anew');
  t.equal(queries, 8);
});

t.test('cluster report - lag counts from the highest seq any member knows the log holds, so members equally behind show it', async (t) => {
  const knowing = (id: string, appliedSeq: number, knownSeq?: number): MemberStatus =>
    ({ ...status(id, appliedSeq), ...(knownSeq === undefined ? {} : { knownSeq }) });
  const r = new ClusterReporter({
    self: 'a', cluster: 'x', replicas: 2, partitions: 4, log, table: () => undefined,
    ownStatus: async () => knowing('a', 5, 12),
    peerStatus: async (id) => (id === 'b' ? knowing('b', 5, 5) : id === 'c' ? knowing('c', 9) : knowing(id, 5, 5)),
  });
  const rep = await r.report();
  t.same(rep.members.map((m) => [m.id, m.lag]), [['a', 7], ['b', 7], ['c', 3], ['d', 7], ['e', 7]],
    'a learnt seq 12 from the stream: every member is behind it, a member of an earlier version (no knownSeq) by its applied seq');
});

t.test('cluster report - an answer for another member, or not a status, is no answer', async (t) => {
  const r = new ClusterReporter({
    self: 'a', cluster: 'x', replicas: 2, partitions: 4, log, table: () => undefined,
    ownStatus: async () => status('a', 1),
    peerStatus: async (id) => (id === 'b' ? status('c', 1) : id === 'c' ? { ...status('c', 1), knownSeq: 'many' } : { hello: 1 }),
  });
  const rep = await r.report();
  t.equal(rep.mode, 'standalone');
  t.equal(rep.ring, null);
  for (const m of rep.members.slice(1)) t.match(m, { reachable: false, error: /answered with something other than its status/ });
});
