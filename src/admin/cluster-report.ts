// GET /cluster/members: every member's status, gathered from one member. The view holds no
// admin URLs, so each other member is asked over the signed peer port (cluster/peer-control.ts);
// one that does not answer is listed as unreachable. Gathers are shared and reused briefly, so
// however often the endpoint is polled each peer gets at most one query per REPORT_REUSE_MS.
import type { Membership } from '../log/types.js';
import type { MemberState } from '../core/types.js';
import { STATUS_VERSION, type MemberStatus } from '../cluster/member-status.js';
import type { OwnerTable } from '../cluster/placement.js';

/** A report younger than this is answered again rather than gathered anew. */
export const REPORT_REUSE_MS = 250;

export interface MemberReport {
  readonly id: string;
  /** Its state in the answering member's view; 'absent' for the answering member when its view
   *  does not list it (starting, or left). */
  readonly state: MemberState | 'absent';
  readonly peerUrl: string | null;
  readonly reachable: boolean;
  /** Why it is not reachable. */
  readonly error?: string;
  /** INVAL seqs it is behind the most advanced reachable member of the same incarnation; null when unreachable. */
  readonly lag: number | null;
  readonly status: MemberStatus | null;
}

export interface ClusterReport {
  readonly version: typeof STATUS_VERSION;
  readonly at: number;
  /** The member that gathered this report. */
  readonly from: string;
  readonly cluster: string;
  readonly mode: 'cluster' | 'standalone';
  readonly view: { readonly epoch: number; readonly members: readonly { id: string; peerUrl: string; state: MemberState }[] };
  /** The answering member's ring: who owns each partition, primary first. null: standalone. */
  readonly ring: {
    readonly epoch: number;
    readonly partitions: number;
    readonly replicas: number;
    readonly members: readonly string[];
    readonly owners: readonly (readonly string[])[];
  } | null;
  readonly members: readonly MemberReport[];
}

export interface ClusterReportDeps {
  readonly self: string;
  readonly cluster: string;
  readonly replicas: number;
  readonly partitions: number;
  readonly log: Pick<Membership, 'view'>;
  readonly table: () => OwnerTable | undefined;
  readonly ownStatus: () => Promise<MemberStatus>;
  /** A member's status over the peer port; rejects when it does not answer. undefined: standalone. */
  readonly peerStatus: ((id: string) => Promise<unknown>) | undefined;
}

function isStatusOf(x: unknown, id: string): x is MemberStatus {
  if (typeof x !== 'object' || x === null) return false;
  const s = x as Record<string, unknown>;
  // knownSeq is optional (members of earlier versions send none) and sets every member's lag:
  // anything but a seq would make all of them NaN.
  const knownSeq = s.knownSeq === undefined || (typeof s.knownSeq === 'number' && Number.isSafeInteger(s.knownSeq) && s.knownSeq >= 0);
  return s.id === id && typeof s.appliedSeq === 'number' && typeof s.epoch === 'number' && typeof s.incarnation === 'string' &&
    typeof s.requests === 'object' && s.requests !== null && knownSeq;
}

/** Lag of each reachable member: seqs behind the highest seq any reachable member of its
 *  incarnation knows the log holds (applied, published, or learnt from the stream), so members
 *  that are all equally behind show it too. */
function withLag(members: readonly Omit<MemberReport, 'lag'>[]): MemberReport[] {
  const highest = new Map<string, number>();
  for (const m of members) {
    if (m.status === null) continue;
    const known = Math.max(m.status.appliedSeq, m.status.knownSeq ?? 0);
    highest.set(m.status.incarnation, Math.max(highest.get(m.status.incarnation) ?? 0, known));
  }
  return members.map((m) => ({ ...m, lag: m.status === null ? null : highest.get(m.status.incarnation)! - m.status.appliedSeq }));
}

export class ClusterReporter {
  readonly #d: ClusterReportDeps;
  #last: ClusterReport | undefined;
  #gathering: Promise<ClusterReport> | undefined;

  constructor(d: ClusterReportDeps) {
    this.#d = d;
  }

  report(now = Date.now()): Promise<ClusterReport> {
    if (this.#last !== undefined && now - this.#last.at < REPORT_REUSE_MS) return Promise.resolve(this.#last);
    this.#gathering ??= this.#gather().then((r) => {
      this.#last = r;
      return r;
    }).finally(() => {
      this.#gathering = undefined;
    });
    return this.#gathering;
  }

  async #gather(): Promise<ClusterReport> {
    const d = this.#d;
    const view = d.log.view;
    const table = d.table();
    const ids = new Set(view.members.map((m) => m.id));
    ids.add(d.self);
    const reports = await Promise.all([...ids].sort().map(async (id): Promise<Omit<MemberReport, 'lag'>> => {
      const member = view.members.find((m) => m.id === id);
      const base = { id, state: member?.state ?? 'absent', peerUrl: member?.peerUrl ?? null } as const;
      if (id === d.self) return { ...base, reachable: true, status: await d.ownStatus() };
      try {
        if (d.peerStatus === undefined) throw new Error('no peer port (standalone)');
        const s = await d.peerStatus(id);
        if (!isStatusOf(s, id)) throw new Error('answered with something other than its status');
        return { ...base, reachable: true, status: s };
      } catch (err) {
        return { ...base, reachable: false, error: (err as Error).message, status: null };
      }
    }));
    return {
      version: STATUS_VERSION,
      at: Date.now(),
      from: d.self,
      cluster: d.cluster,
      mode: table === undefined ? 'standalone' : 'cluster',
      view: { epoch: view.epoch, members: view.members.map((m) => ({ id: m.id, peerUrl: m.peerUrl, state: m.state })) },
      ring: table === undefined ? null : {
        epoch: table.epoch,
        partitions: d.partitions,
        replicas: d.replicas,
        members: table.members,
        owners: table.owners,
      },
      members: withLag(reports),
    };
  }
}
