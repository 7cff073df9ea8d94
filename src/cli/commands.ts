// sidecache status | purge | drain | inspect: one admin request each (drain then waits), a
// table for people or the admin API's JSON as it is (--json) for scripts.
import type { ClusterReport, MemberReport } from '../admin/cluster-report.js';
import type { Inspection } from '../admin/inspect.js';
import { IMPLICIT_VARY } from '../http/vary.js';
import type { AdminClient } from './admin-client.js';
import { CliError, Exit } from './admin-client.js';
import { bytes, duration, percent, table } from './format.js';

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

// ---- status ------------------------------------------------------------------------------

export function statusTable(r: ClusterReport): string {
  const rows = r.members.map((m: MemberReport) => {
    const s = m.status;
    if (s === null) return [m.id, m.state, '-', '-', '-', '-', '-', '-', '-', `unreachable: ${m.error ?? 'no answer'}`];
    const state = s.draining && s.state !== 'draining' ? `${s.state}*` : s.state;
    const notes = [!s.attached ? 'detached from NATS' : '', !s.ready ? 'not ready' : '', s.draining ? 'draining' : ''].filter((x) => x !== '');
    return [
      m.id, state, String(s.epoch), String(s.partitions.primary), String(s.partitions.replica), percent(s.hitRatio),
      String(s.appliedSeq), m.lag === null ? '-' : String(m.lag), `${s.cache.entries + s.cache.hotEntries}/${bytes(s.cache.bytes + s.cache.hotBytes)}`,
      notes.join(', '),
    ];
  });
  const ring = r.ring === null ? 'standalone' : `ring epoch ${r.ring.epoch}, ${r.ring.members.length} placed, ${r.ring.partitions} partitions x ${r.ring.replicas}`;
  return `cluster ${r.cluster}: ${r.members.length} member(s), view epoch ${r.view.epoch}, ${ring} (from ${r.from})\n` +
    table(['MEMBER', 'STATE', 'EPOCH', 'PRIMARY', 'REPLICA', 'HIT', 'APPLIED', 'LAG', 'ENTRIES', 'NOTES'], rows);
}

export async function status(client: AdminClient, json: boolean, o: Output): Promise<number> {
  const r = await client.request<ClusterReport>('GET', '/cluster/members');
  o.out(json ? JSON.stringify(r, null, 2) : statusTable(r));
  return Exit.ok;
}

// ---- purge -------------------------------------------------------------------------------

export interface PurgeFlags {
  readonly url?: readonly string[];
  readonly prefix?: string;
  readonly tag?: readonly string[];
  readonly all?: boolean;
  readonly soft?: boolean;
}

/** The admin API's purge body; CliError (usage) unless exactly one kind is given. */
export function purgeBody(f: PurgeFlags): Record<string, unknown> {
  const kinds = [f.url !== undefined && f.url.length > 0, f.prefix !== undefined, f.tag !== undefined && f.tag.length > 0, f.all === true]
    .filter(Boolean).length;
  if (kinds !== 1) throw new CliError('purge: give exactly one of --url URL (repeatable), --prefix PREFIX, --tag TAG (repeatable), --all', Exit.usage);
  const soft = f.soft === true ? { soft: true } : {};
  if (f.url !== undefined && f.url.length > 0) return { url: f.url.length === 1 ? f.url[0] : [...f.url], ...soft };
  if (f.prefix !== undefined) return { prefix: f.prefix, ...soft };
  if (f.tag !== undefined && f.tag.length > 0) return { tags: [...f.tag], ...soft };
  return { all: true, ...soft };
}

interface PurgeAnswer { seq: number; acknowledged: string[]; missing: string[] }

export async function purge(client: AdminClient, f: PurgeFlags, json: boolean, o: Output): Promise<number> {
  const body = purgeBody(f);
  const a = await client.request<PurgeAnswer>('POST', '/purge', body);
  const complete = a.missing.length === 0;
  if (json) {
    o.out(JSON.stringify(a, null, 2));
  } else {
    const total = a.acknowledged.length + a.missing.length;
    o.out(`purge seq ${a.seq} (${f.soft === true ? 'soft' : 'hard'}): acknowledged by ${a.acknowledged.length} of ${total} member(s)`);
    o.out(table(['MEMBER', 'ACK'], [...a.acknowledged.map((id) => [id, 'yes']), ...a.missing.map((id) => [id, 'MISSING'])]));
    if (!complete) o.err(`sidecache: ${a.missing.length} member(s) did not acknowledge within the purge timeout: ${a.missing.join(', ')}`);
  }
  return complete ? Exit.ok : Exit.incomplete;
}

// ---- drain -------------------------------------------------------------------------------

/** Reachable members whose ring still places `node`. */
export function stillListing(r: ClusterReport, node: string): string[] {
  return r.members.filter((m) => m.status !== null && m.status.ring.includes(node)).map((m) => m.id);
}

export async function drain(client: AdminClient, waitMs: number, json: boolean, o: Output, pollMs = 250): Promise<number> {
  const a = await client.request<{ node: string; epoch: number }>('POST', '/drain');
  if (!json) o.out(`${a.node}: draining (view epoch ${a.epoch}); it serves its app by forwarding until it is stopped`);
  if (waitMs <= 0) {
    if (json) o.out(JSON.stringify({ ...a, waited: false }, null, 2));
    return Exit.ok;
  }
  const deadline = Date.now() + waitMs;
  for (;;) {
    const r = await client.request<ClusterReport>('GET', '/cluster/members');
    const listing = stillListing(r, a.node);
    if (listing.length === 0) {
      const seen = r.members.filter((m) => m.status !== null).length;
      if (json) o.out(JSON.stringify({ ...a, waited: true, out: true, ringEpoch: r.ring?.epoch ?? null, reachable: seen }, null, 2));
      else o.out(`${a.node}: out of the ring (ring epoch ${r.ring?.epoch ?? '-'}), as ${seen} reachable member(s) see it`);
      return Exit.ok;
    }
    if (Date.now() >= deadline) {
      throw new CliError(`drain: after ${Math.round(waitMs / 1000)} s the ring of ${listing.join(', ')} still lists ${a.node} (it is draining; see sidecache status)`);
    }
    await new Promise((res) => setTimeout(res, pollMs));
  }
}

// ---- inspect -----------------------------------------------------------------------------

export function inspectText(r: Inspection, now = Date.now()): string {
  const owners = r.owners.length === 0 ? 'none' : r.owners.map((id, i) => (i === 0 ? `${id} (primary)` : id)).join(', ');
  const head = `${r.url}\n  key ${r.key}\n  partition ${r.partition}, ring epoch ${r.epoch}, owners ${owners}\n  ` +
    (r.cached ? 'cached' : 'not cached on any reachable member');
  const rows: string[][] = [];
  for (const m of r.members) {
    if (!m.reachable) {
      rows.push([m.id, m.role, m.state, 'unreachable', '', '', '', '', '', '', m.error ?? '']);
      continue;
    }
    const variants = m.variants ?? [];
    if (variants.length === 0) {
      const why = m.notStored == null ? '' : `not stored ${duration((now - m.notStored.at) / 1000)} ago: ${m.notStored.reason}`;
      rows.push([m.id, m.role, m.state, 'no', '', '', '', '', '', '', why]);
      continue;
    }
    for (const v of variants) {
      // Every entry varies on the implicit fields: only the origin's own Vary is worth a note.
      const vary = (v.varyNames ?? []).filter((n) => !IMPLICIT_VARY.includes(n));
      const flags = [v.verdict === 'fresh' ? '' : v.verdict, v.softPurged ? 'soft-purged' : '', vary.length === 0 ? '' : `vary ${vary.join(',')}`]
        .filter((x) => x !== '');
      rows.push([
        m.id, m.role, m.state, `${v.store}/${v.source}`, String(v.status), duration(v.ageSec), duration(v.ttlSec), bytes(v.bodyBytes),
        `${v.fence.seq}${v.fence.incarnation === '' ? '' : `@${v.fence.incarnation.slice(0, 8)}`}`, v.tags.join(' '), flags.join(', '),
      ]);
    }
  }
  return `${head}\n${table(['MEMBER', 'ROLE', 'STATE', 'CACHED', 'STATUS', 'AGE', 'TTL', 'BODY', 'FENCE', 'TAGS', 'NOTES'], rows)}`;
}

export async function inspect(client: AdminClient, url: string, json: boolean, o: Output): Promise<number> {
  const r = await client.request<Inspection>('GET', `/inspect?url=${encodeURIComponent(url)}`);
  o.out(json ? JSON.stringify(r, null, 2) : inspectText(r));
  return Exit.ok;
}
