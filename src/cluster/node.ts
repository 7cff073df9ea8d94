// ClusterNode: this sidecar as a member. It turns views into owner tables, routes misses
// to owners (Router), replicates what it stores as an owner, applies replica fills, and
// runs the lifecycle: join (warm, replay, then active), leave (draining, then gone).
import type { Logger } from 'pino';
import type { Config } from '../core/config.js';
import { rawGet } from '../http/headers.js';
import type { FillLog, FillRecord, InvalidationLog, Membership } from '../log/types.js';
import type { View } from '../core/types.js';
import type { Metrics } from '../core/metrics.js';
import { hash32 } from '../proxy/key.js';
import type { Compressor } from '../proxy/compress.js';
import type { OriginRequest, OriginResponse } from '../proxy/origin.js';
import type { InterimListener } from '../proxy/route.js';
import type { Cache } from '../store/cache.js';
import { entrySize, EntrySource, heldBytes, type Entry } from '../store/types.js';
import type { PeerClient } from './peers.js';
import type { Cluster } from './cluster.js';
import { decodeFillMeta, encodeFillMeta } from './fill-meta.js';
import { ownedPartitions, placedMembers, type Placement, type OwnerTable } from './placement.js';

const EMPTY = new Uint8Array(0);

/** Subject token of one variant: two independent 32-bit hashes, hex. The Vary names are part
 *  of it, as they are of the store's idea of a variant (sameVariant): two responses that vary
 *  on different fields are different variants even when their values happen to be equal. */
export function variantSubjectKey(key: string, varyNames: readonly string[] | null, varyValues: readonly string[]): string {
  const s = varyNames === null ? key : `${key}\n${varyNames.join(',')}\n${varyValues.join('\n')}`;
  return hash32(s).toString(16).padStart(8, '0') + hash32(`${s}#`).toString(16).padStart(8, '0');
}

export interface ClusterNodeDeps {
  readonly config: Config;
  readonly log: InvalidationLog & FillLog & Membership;
  readonly cache: Cache;
  readonly placement: Placement;
  readonly peers: PeerClient;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Compression on store: a replica makes its own gzip form of the origin's bytes a fill carries. */
  readonly compressor?: Compressor;
}

export class ClusterNode implements Cluster {
  readonly ring = true;
  readonly #d: ClusterNodeDeps;
  readonly #self: string;
  #table: OwnerTable;
  #owned = new Set<number>();
  /** Partitions being replayed for a join: fills for them are applied too. */
  #warming = new Set<number>();
  #replaying: Promise<void> = Promise.resolve();
  #joined = false;
  #replayedKeys = 0;

  constructor(d: ClusterNodeDeps) {
    this.#d = d;
    this.#self = d.config.nodeId;
    this.#table = d.placement.place([], 0);
  }

  get epoch(): number {
    return this.#table.epoch;
  }

  get table(): OwnerTable {
    return this.#table;
  }

  get partitionsOwned(): number {
    return this.#owned.size;
  }

  get replayedKeys(): number {
    return this.#replayedKeys;
  }

  partitionOf(key: string): number {
    return this.#d.placement.partitionOf(key);
  }

  // ---- Router ----------------------------------------------------------------------------

  peersFor(key: string): readonly string[] | undefined {
    if (!this.#d.config.ring) return undefined;
    const owners = this.#table.owners[this.#d.placement.partitionOf(key)];
    if (owners === undefined || owners.length === 0 || owners[0] === this.#self) return undefined;
    const out: string[] = [];
    for (const id of owners) if (id !== this.#self && this.#d.peers.isAvailable(id)) out.push(id);
    // No owner reachable (or we are the only one left): fetch here.
    return out.length === 0 ? undefined : out;
  }

  forward(peer: string, r: OriginRequest, onInfo?: InterimListener): Promise<OriginResponse> {
    return this.#d.peers.forward(peer, r, onInfo);
  }

  // ---- views -----------------------------------------------------------------------------

  onView(view: View): void {
    if (view.epoch < this.#table.epoch) return;
    this.#d.peers.update(view.members);
    const table = this.#d.placement.place(placedMembers(view), view.epoch);
    const owned = ownedPartitions(table, this.#self);
    const gained = new Set<number>();
    for (const p of owned) if (!this.#owned.has(p) && !this.#warming.has(p)) gained.add(p);
    this.#table = table;
    this.#owned = owned;
    // Partitions warmed for a join are owned from the view that made us active on.
    for (const p of owned) this.#warming.delete(p);
    this.#d.logger.info({ epoch: view.epoch, members: table.members, owned: owned.size, gained: gained.size }, 'new ring');
    // A peer left or crashed and we gained partitions: warm them from the log.
    if (this.#joined && this.#d.config.handoff && gained.size > 0) void this.#replay(gained, 'rebalance');
  }

  // ---- replication -----------------------------------------------------------------------

  /** Called after this sidecar stored an entry it fetched itself: replicate it. */
  replicate(entry: Entry): void {
    const p = this.#d.placement.partitionOf(entry.key);
    const owners = this.#table.owners[p];
    // Only owners publish; a non-owner's degraded fetch stays local.
    if (owners === undefined || (owners.length > 0 && !owners.includes(this.#self))) return;
    if (entry.body.length > this.#d.config.fillMaxBytes) return;
    const record: FillRecord = {
      partition: p,
      subjectKey: variantSubjectKey(entry.key, entry.varyNames, entry.varyValues),
      meta: encodeFillMeta(entry),
      body: entry.body,
    };
    this.#d.log.publishFill(record);
  }

  /** An invalidation removed an entry here: the primary also removes it from the compacted
   *  FILLS log (a tombstone). Only to keep FILLS small: correctness does not rest on it, since
   *  every member applies INVAL itself and a replaying member checks each fill against the
   *  retained invalidations (refusing fills fenced before them), so a lost or unsent
   *  tombstone costs a refused replay, never a stale read. */
  removed(entry: Entry): void {
    const p = this.#d.placement.partitionOf(entry.key);
    if (this.#table.owners[p]?.[0] !== this.#self) return;
    this.#d.log.publishFill({
      partition: p,
      subjectKey: variantSubjectKey(entry.key, entry.varyNames, entry.varyValues),
      meta: EMPTY,
      body: EMPTY,
      tombstone: true,
    });
  }

  /** A fill from the log: stored when we own (or are warming) its partition. */
  applyFill(record: FillRecord, seq: number, replay = false): boolean {
    if (record.tombstone) return false;
    if (!this.#owned.has(record.partition) && !this.#warming.has(record.partition)) return false;
    let meta: ReturnType<typeof decodeFillMeta>;
    try {
      meta = decodeFillMeta(record.meta);
    } catch (err) {
      this.#d.metrics.fencesUntrusted.labels('fill', 'unreadable').inc();
      this.#d.logger.warn({ seq, err: (err as Error).message }, 'unreadable fill skipped');
      return false;
    }
    // Fenced in another INVAL stream (from before a reset, or by a member that has not seen
    // it yet): nothing here can tell whether a purge since removed it (DESIGN invariant 2).
    if (meta.incarnation !== this.#d.log.incarnation) {
      this.#d.metrics.fencesUntrusted.labels('fill', 'incarnation').inc();
      return false;
    }
    if (this.#d.cache.clock.now() >= meta.keepUntil) return false;
    const existing = this.#d.cache.sameVariantAs(meta);
    // Never replace a newer response with an older one (fills arrive in any order). Parts of a
    // 206 kept here (proxy/partial-store.ts) are no response of their own: a whole one replaces them.
    if (existing !== undefined && existing.parts === undefined && existing.freshness.storedAt >= meta.freshness.storedAt) return false;
    const body = Buffer.from(record.body.buffer, record.body.byteOffset, record.body.byteLength);
    const entry: Entry = {
      key: meta.key,
      varyNames: meta.varyNames,
      varyValues: meta.varyValues,
      status: meta.status,
      headers: meta.headers,
      body,
      policy: meta.policyObject,
      freshness: meta.freshness,
      keepUntil: meta.keepUntil,
      tags: meta.tags,
      fence: meta.fence,
      incarnation: meta.incarnation,
      etag: rawGet(meta.headers, 'etag'),
      lastModified: rawGet(meta.headers, 'last-modified'),
      source: EntrySource.replica,
      fillSeq: seq,
      size: entrySize(meta.key, meta.headers, heldBytes(body), meta.varyNames, meta.varyValues, meta.tags),
      softPurged: false,
      gzip: undefined,
    };
    if (!this.#d.cache.store(entry)) {
      this.#d.metrics.fillsRejected.inc();
      return false;
    }
    this.#d.compressor?.consider(entry);
    if (replay) this.#d.metrics.handoffKeysReplayed.inc();
    else this.#d.metrics.replicaFillsApplied.inc();
    return true;
  }

  #replay(partitions: Set<number>, why: 'join' | 'rebalance'): Promise<void> {
    const run = async () => {
      // Before we own them, live fills for these partitions must be kept too.
      if (why === 'join') for (const p of partitions) if (!this.#owned.has(p)) this.#warming.add(p);
      const started = Date.now();
      try {
        const n = await this.#d.log.replayFills(partitions);
        this.#replayedKeys += n;
        this.#d.logger.info({ why, partitions: partitions.size, fills: n, ms: Date.now() - started }, 'partitions replayed from the log');
      } catch (err) {
        this.#d.logger.warn({ why, err: (err as Error).message }, 'replay from the log failed: those partitions start cold');
      }
    };
    this.#replaying = this.#replaying.then(run);
    return this.#replaying;
  }

  // ---- lifecycle -------------------------------------------------------------------------

  /** Join: register warming, apply the retained invalidations, replay what we will own, then
   *  become active (handoff before cutover). Fills are replayed only once every invalidation
   *  the log held at that moment is applied: each is then checked against all of them as it
   *  is stored, so none that a retained invalidation removed is ever stored, let alone served.
   *  Invalidations after that point remove replayed entries as they are applied. */
  async join(): Promise<void> {
    await this.#d.log.setState('warming');
    const caughtUp = await this.#d.log.catchUp();
    this.#d.logger.info({ seq: caughtUp }, 'retained invalidations applied');
    const view = this.#d.log.view;
    const future = this.#d.placement.place(placedMembers(view, this.#self), view.epoch);
    const gaining = ownedPartitions(future, this.#self);
    if (this.#d.config.handoff && gaining.size > 0) await this.#replay(gaining, 'join');
    this.#joined = true;
    await this.#d.log.setState('active');
  }

  /** Leave: draining first, so peers route around us while in-flight work finishes. */
  async drain(): Promise<void> {
    await this.#d.log.setState('draining');
  }

  async leave(): Promise<void> {
    await this.#d.log.leave();
    await this.#d.peers.close();
  }
}
