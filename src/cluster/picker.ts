// Placement: which members own a partition. Computed once per epoch into a table, never
// per request (DESIGN facts: hashring lookups are slow, the table is an array index).
import HashRing from 'hashring';
import type { View } from '../core/types.js';

/** Who owns each partition at one epoch. `owners[p][0]` is the primary. */
export interface OwnerTable {
  readonly epoch: number;
  readonly owners: readonly (readonly string[])[];
  /** Members placed on the ring, sorted. */
  readonly members: readonly string[];
}

export interface OwnerPicker {
  /** The owner table for these members (ids), at `epoch`. */
  place(members: readonly string[], epoch: number): OwnerTable;
}

/** 'vnode count' >= 160 brings a 3 -> 4 scale-out close to the ideal quarter (DESIGN facts). */
const VNODES = 160;

export class HashRingPicker implements OwnerPicker {
  readonly #partitions: number;
  readonly #replicas: number;

  constructor(partitions: number, replicas: number) {
    this.#partitions = partitions;
    this.#replicas = replicas;
  }

  place(members: readonly string[], epoch: number): OwnerTable {
    const sorted = [...new Set(members)].sort();
    const owners: string[][] = new Array(this.#partitions);
    if (sorted.length === 0) {
      for (let p = 0; p < this.#partitions; p++) owners[p] = [];
      return { epoch, owners, members: sorted };
    }
    const ring = new HashRing(sorted, 'md5', { 'vnode count': VNODES, 'max cache size': 1 });
    const r = Math.min(this.#replicas, sorted.length);
    for (let p = 0; p < this.#partitions; p++) owners[p] = ring.range(`partition-${p}`, r, true);
    return { epoch, owners, members: sorted };
  }
}

/** Range placement: partitions in order, cut into contiguous runs per member, so that a
 *  prefix purge or scan touches few sidecars. Replicas are the next members in order. */
export class RangePicker implements OwnerPicker {
  readonly #partitions: number;
  readonly #replicas: number;

  constructor(partitions: number, replicas: number) {
    this.#partitions = partitions;
    this.#replicas = replicas;
  }

  place(members: readonly string[], epoch: number): OwnerTable {
    const sorted = [...new Set(members)].sort();
    const n = sorted.length;
    const owners: string[][] = new Array(this.#partitions);
    const r = Math.min(this.#replicas, n);
    for (let p = 0; p < this.#partitions; p++) {
      if (n === 0) {
        owners[p] = [];
        continue;
      }
      const first = Math.floor((p * n) / this.#partitions);
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
