// Membership over NATS: this sidecar's place in the agreed view (register, change state, leave,
// register again when dropped), with its heartbeats, its lease and the removal of silent peers.

import type { KV } from '@nats-io/kv';
import { ErrorCode, SidecacheError, logError } from '../../../core/errors.js';
import type { Member, MemberState, View } from '../../../core/types.js';
import type { Membership, MembershipHandlers } from '../../types.js';
import type { Acks } from '../acks.js';
import type { Runtime } from '../runtime.js';
import type { LogState } from '../state.js';
import { Departures } from './departures.js';
import { Heartbeats } from './heartbeats.js';
import { Lease } from './lease.js';
import { ViewStore } from './view.js';

function sameMember(a: Member, b: Member): boolean {
  return a.id === b.id && a.peerUrl === b.peerUrl && a.state === b.state && a.partitions === b.partitions && a.placement === b.placement;
}

function byId(a: Member, b: Member): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export class NatsMembership implements Membership {
  readonly #rt: Runtime;
  readonly #acks: Acks;
  readonly #views: ViewStore;
  readonly #heartbeats: Heartbeats;
  readonly #departures: Departures;
  /** Flushes and drops both reach it: invalidations.ts (a gap) and the view (a drop). */
  readonly lease: Lease;
  #handlers: Partial<MembershipHandlers> = {};
  #myState: MemberState | undefined;
  #rejoinPending = false;

  /** `acks` counts what peers' heartbeats say they applied, and its purge waiters are settled
   *  by each new view (a member that left is no longer waited for). */
  constructor(rt: Runtime, state: LogState, acks: Acks, buckets: { heartbeats: KV; view: KV }) {
    this.#rt = rt;
    this.#acks = acks;
    this.#views = new ViewStore(rt, buckets.view, {
      adopting: (ids) => {
        // What we track per member ends with its membership, or members churning grow it forever.
        acks.keepOnly(ids);
        this.#heartbeats.keepOnly(ids);
      },
      adopted: (view, ids) => this.#adopted(view, ids),
    });
    this.lease = new Lease(rt, state, () => this.#views.read());
    this.#heartbeats = new Heartbeats(rt, state, buckets.heartbeats, this.lease, (id, seq, incarnation) =>
      acks.noteApplied(id, seq, incarnation));
    this.#departures = new Departures(rt, this.#views, this.#heartbeats);
  }

  get view(): View {
    return this.#views.view;
  }

  mustRevalidate(): boolean {
    return this.lease.mustRevalidate();
  }

  /** Member ids we hold state for (heartbeats seen); acks.ts holds the rest. */
  trackedIds(): Iterable<string> {
    return this.#heartbeats.trackedIds();
  }

  /** Adopt the stored view, follow it and the heartbeats, and put our first heartbeat. */
  async start(handlers: Partial<MembershipHandlers>): Promise<void> {
    this.#handlers = handlers;
    await this.#views.start();
    this.#heartbeats.watch();
    await this.#heartbeats.put();
  }

  startTimers(): void {
    this.#heartbeats.startTimer();
    this.#departures.startTimer();
  }

  /** Connected again: tell peers at once that we are alive. */
  reconnected(): void {
    void this.#heartbeats.put();
  }

  #adopted(view: View, ids: ReadonlySet<string>): void {
    try {
      this.#handlers.view?.(view);
    } catch (err) {
      this.#rt.log.error({ err }, 'view handler threw');
    }
    // Purges wait for the members of the view: one that left is waited for no longer.
    this.#acks.checkWaiters();
    if (this.#myState !== undefined && !this.#heartbeats.left && !this.#rt.closing && !ids.has(this.#rt.self.id)) {
      // Dropped: purges stopped waiting for us, so we are fenced as after a lapse until we
      // are listed again and have caught up.
      this.lease.dropped();
      this.#rejoin();
    }
  }

  /** Our peers removed us (they missed our heartbeats, e.g. a long disconnect): register
   *  again with our last state. */
  #rejoin(): void {
    if (this.#rejoinPending) return;
    this.#rejoinPending = true;
    this.#rt.log.warn({ epoch: this.#views.view.epoch }, 'this sidecar is no longer in the view; registering again');
    const state = this.#myState!;
    this.setState(state)
      .catch((err: unknown) => this.#rt.log.error({ err }, 'cannot register again'))
      .finally(() => {
        this.#rejoinPending = false;
      });
  }

  async setState(state: MemberState): Promise<void> {
    const rt = this.#rt;
    if (!rt.started || rt.closing) throw logError('setState: the NATS log is not running');
    const { id, peerUrl, partitions, placement } = rt.self;
    const me: Member = { id, peerUrl, state, partitions, ...(placement === undefined ? {} : { placement }) };
    const startedAt = performance.now();
    await this.#views.change(`set ${me.id} ${state}`, (cur) => {
      const other = cur.members.find((m) => m.id !== me.id && m.partitions !== me.partitions);
      if (other !== undefined) {
        throw new SidecacheError(
          ErrorCode.log,
          `partitions mismatch: cluster has ${other.partitions}, this sidecar ${me.partitions}`,
        );
      }
      // Owners computed by another placement would differ on every member: refused as a
      // partition count is (both are fixed for the life of a cluster).
      const placed = cur.members.find((m) => m.id !== me.id && (m.placement ?? 'hash') !== (me.placement ?? 'hash'));
      if (placed !== undefined) {
        throw new SidecacheError(
          ErrorCode.log,
          `placement mismatch: cluster has ${placed.placement ?? 'hash'}, this sidecar ${me.placement ?? 'hash'} (SIDECACHE_PLACEMENT)`,
        );
      }
      const existing = cur.members.find((m) => m.id === me.id);
      if (existing !== undefined && sameMember(existing, me)) return null;
      return [...cur.members.filter((m) => m.id !== me.id), me].sort(byId);
    });
    this.#myState = state;
    this.#heartbeats.resume();
    // Registered: peers count our silence from now at the earliest.
    this.lease.registered(startedAt);
    if (!this.#heartbeats.timerRunning) this.#heartbeats.startTimer();
  }

  async leave(): Promise<void> {
    const rt = this.#rt;
    if (!rt.started || rt.closing) throw logError('leave: the NATS log is not running');
    this.#heartbeats.leave();
    this.#myState = undefined;
    this.lease.left();
    const id = rt.self.id;
    await this.#views.change(`remove ${id}`, (cur) =>
      cur.members.some((m) => m.id === id) ? cur.members.filter((m) => m.id !== id) : null,
    );
    await this.#heartbeats.delete();
  }

  close(): void {
    this.#heartbeats.close();
  }
}
