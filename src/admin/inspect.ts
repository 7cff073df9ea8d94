// GET /inspect?url=: whether and where one URL is cached. The URL is keyed as a purge of it
// would be; this member says what it holds, and every other member of the view is asked over
// the signed peer port (its owners, and any that keep a hot copy).
import type { OwnerTable } from '../cluster/placement.js';
import type { Membership } from '../log/types.js';
import type { MemberState } from '../core/types.js';
import type { StoredVariant } from '../store/describe.js';
import type { NotStored } from '../store/not-stored.js';
import { BadRequest, resolvePurgeTarget, type KeyFunction } from './purge-body.js';

/** What one member holds for a key (also its answer to the peer query). */
export interface KeyHolding {
  readonly variants: readonly StoredVariant[];
  /** Why it last did not store a response for the key (recent refusals only); null: none known. */
  readonly notStored: NotStored | null;
}

export interface MemberHolding extends Partial<KeyHolding> {
  readonly id: string;
  readonly state: MemberState | 'absent';
  /** Its place for the key's partition in the answering member's ring. */
  readonly role: 'primary' | 'replica' | 'none';
  readonly reachable: boolean;
  readonly error?: string;
}

export interface Inspection {
  readonly url: string;
  readonly key: string;
  readonly partition: number;
  readonly epoch: number;
  /** Primary first. */
  readonly owners: readonly string[];
  /** Some reachable member holds a variant. */
  readonly cached: boolean;
  readonly members: readonly MemberHolding[];
}

export interface InspectDeps {
  readonly self: string;
  /** The partition of a primary key (the cluster's placement). */
  readonly partitionOf: (key: string) => number;
  readonly upstream: URL | undefined;
  readonly keyOf: KeyFunction;
  readonly log: Pick<Membership, 'view'>;
  readonly table: () => OwnerTable | undefined;
  readonly local: (key: string) => KeyHolding;
  /** Another member's holding over the peer port; undefined: standalone. */
  readonly remote: ((id: string, key: string) => Promise<unknown>) | undefined;
}

function isHolding(x: unknown): x is KeyHolding {
  return typeof x === 'object' && x !== null && Array.isArray((x as KeyHolding).variants);
}

/** `url`: an absolute URL or, in reverse mode, a path; BadRequest when it is neither. */
export async function inspectUrl(d: InspectDeps, url: string): Promise<Inspection> {
  if (url === '') throw new BadRequest('expected ?url=<absolute URL, or a path in reverse mode>');
  const r = resolvePurgeTarget(url, 'url', d.upstream);
  const key = d.keyOf(r.keyOrigin, r.target);
  const partition = d.partitionOf(key);
  const table = d.table();
  const owners = table === undefined ? [d.self] : table.owners[partition] ?? [];
  const view = d.log.view;
  const ids = new Set(view.members.map((m) => m.id));
  ids.add(d.self);
  const members = await Promise.all([...ids].sort().map(async (id): Promise<MemberHolding> => {
    const i = owners.indexOf(id);
    const base = {
      id,
      state: view.members.find((m) => m.id === id)?.state ?? 'absent',
      role: i === 0 ? 'primary' : i > 0 ? 'replica' : 'none',
    } as const;
    if (id === d.self) return { ...base, reachable: true, ...d.local(key) };
    try {
      if (d.remote === undefined) throw new Error('no peer port (standalone)');
      const h = await d.remote(id, key);
      if (!isHolding(h)) throw new Error('answered with something other than its holding');
      return { ...base, reachable: true, variants: h.variants, notStored: h.notStored ?? null };
    } catch (err) {
      return { ...base, reachable: false, error: (err as Error).message };
    }
  }));
  return {
    url,
    key,
    partition,
    epoch: table?.epoch ?? view.epoch,
    owners,
    cached: members.some((m) => (m.variants?.length ?? 0) > 0),
    members,
  };
}
