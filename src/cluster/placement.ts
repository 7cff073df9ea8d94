// Placement: which partition a key is in, and which members own a partition. Owners are
// computed once per epoch into a table, never per request (DESIGN facts: hashring lookups are
// slow, the table is an array index). Forwarding, replication and handoff only ever ask a
// Placement, so a placement that keeps neighbouring keys together (ranges) changes nothing else.
import HashRing from 'hashring';
import type { View } from '../core/types.js';
import { hash32 } from '../proxy/key.js';

/** Who owns each partition at one epoch. `owners[p][0]` is the primary. */
export interface OwnerTable {
  readonly epoch: number;
  readonly owners: readonly (readonly string[])[];
  /** Members placed on the ring, sorted. */
  readonly members: readonly string[];
}

export interface Placement {
  /** Partitions of the key space, fixed for the life of a cluster. */
  readonly partitions: number;
  /** The partition of a primary key (proxy/key.ts): the same on every member. */
  partitionOf(key: string): number;
  /** The owner table for these members (ids), at `epoch`. */
  place(members: readonly string[], epoch: number): OwnerTable;
}

export type PlacementKind = 'hash' | 'range';

export function placementOf(kind: PlacementKind, partitions: number, replicas: number): Placement {
  return kind === 'range' ? new RangePlacement(partitions, replicas) : new HashPlacement(partitions, replicas);
}

/** Both placements: a fixed number of partitions, each owned by `replicas` members. */
abstract class Partitions implements Placement {
  readonly partitions: number;
  protected readonly replicas: number;

  constructor(partitions: number, replicas: number) {
    this.partitions = partitions;
    this.replicas = replicas;
  }

  abstract partitionOf(key: string): number;
  abstract place(members: readonly string[], epoch: number): OwnerTable;
}

/** 'vnode count' >= 160 brings a 3 -> 4 scale-out close to the ideal quarter (DESIGN facts). */
const VNODES = 160;

/** Keys spread by hash (FNV-1a), partitions spread over a consistent-hash ring: balanced, and a
 *  scale-out moves about 1/n of the partitions. */
export class HashPlacement extends Partitions {
  partitionOf(key: string): number {
    return hash32(key) % this.partitions;
  }

  place(members: readonly string[], epoch: number): OwnerTable {
    const sorted = [...new Set(members)].sort();
    const owners: string[][] = new Array(this.partitions);
    if (sorted.length === 0) {
      for (let p = 0; p < this.partitions; p++) owners[p] = [];
      return { epoch, owners, members: sorted };
    }
    const ring = new HashRing(sorted, 'md5', { 'vnode count': VNODES, 'max cache size': 1 });
    const r = Math.min(this.replicas, sorted.length);
    for (let p = 0; p < this.partitions; p++) owners[p] = ring.range(`partition-${p}`, r, true);
    return { epoch, owners, members: sorted };
  }
}

/** Characters of the path that place a key; 128^3 ranges are enough to split any partition count. */
const RANGE_CHARS = 3;
const RANGE_SPAN = 128 ** RANGE_CHARS;

/** Range placement: keys in path order, cut into contiguous partitions, and partitions cut into
 *  contiguous runs per member, so that the keys under one path prefix sit on few sidecars (a
 *  prefix purge or a scan touches few). Replicas are the next members in order. Ranges are even
 *  over the first characters of the path, not over the keys a service has: balance depends on
 *  its paths. */
export class RangePlacement extends Partitions {

  /** Order-preserving: for keys of one origin, a <= b (as strings of ASCII paths) gives
   *  partitionOf(a) <= partitionOf(b). The origin (scheme://host) is left out. */
  partitionOf(key: string): number {
    const scheme = key.indexOf('://');
    const slash = key.indexOf('/', scheme === -1 ? 0 : scheme + 3);
    const start = slash === -1 ? key.length : slash + 1;
    let v = 0;
    for (let i = 0; i < RANGE_CHARS; i++) v = v * 128 + Math.min(key.charCodeAt(start + i) || 0, 127);
    return Math.floor((v * this.partitions) / RANGE_SPAN);
  }

  place(members: readonly string[], epoch: number): OwnerTable {
    const sorted = [...new Set(members)].sort();
    const n = sorted.length;
    const owners: string[][] = new Array(this.partitions);
    const r = Math.min(this.replicas, n);
    for (let p = 0; p < this.partitions; p++) {
      if (n === 0) {
        owners[p] = [];
        continue;
      }
      const first = Math.floor((p * n) / this.partitions);
      owners[p] = Array.from({ length: r }, (_, i) => sorted[(first + i) % n]!);
    }
    return { epoch, owners, members: sorted };
  }
}

/** Members that take part in placement: active ones (warming members join at activation). */
export function placedMembers(view: View, extra?: string): string[] {
  const ids = view.members.filter((m) => m.state === 'active').map((m) => m.id);
  if (extra !== undefined && !ids.includes(extra)) ids.push(extra);
  return ids;
}

/** Partitions where `id` is primary or replica. */
export function ownedPartitions(table: OwnerTable, id: string): Set<number> {
  const out = new Set<number>();
  for (let p = 0; p < table.owners.length; p++) if (table.owners[p]!.includes(id)) out.add(p);
  return out;
}
