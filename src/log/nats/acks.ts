// Acknowledgements: which INVAL seq each member has applied (acks on core NATS, and the seq in
// each heartbeat), our own ack, and the waiters of waitApplied (a purge waits for every member)
// and catchUp.

import type { Msg, Subscription } from '@nats-io/transport-node';
import { decodeAck, encodeAck } from '../codec.js';
import type { PurgeAcks, View } from '../../core/types.js';
import type { Runtime } from './runtime.js';
import type { LogState } from './state.js';

interface Applied {
  readonly seq: number;
  readonly incarnation: string | undefined;
}

interface Waiter {
  settle(final: boolean): void;
}

export class Acks {
  readonly #rt: Runtime;
  readonly #state: LogState;
  readonly #view: () => View;
  /** Member id -> latest applied seq it reported (ack or heartbeat). */
  readonly #acks = new Map<string, Applied>();
  readonly #waiters = new Set<Waiter>();
  #sub: Subscription | undefined;
  #ackScheduled = false;

  /** `view`: the members a purge waits for. */
  constructor(rt: Runtime, state: LogState, view: () => View) {
    this.#rt = rt;
    this.#state = state;
    this.#view = view;
  }

  subscribe(): void {
    const rt = this.#rt;
    this.#sub = rt.nc!.subscribe(rt.names.ackSubject, {
      callback: (err: Error | null, msg: Msg) => {
        if (err !== null) {
          rt.log.warn({ err }, 'ack subscription error');
          return;
        }
        try {
          const ack = decodeAck(msg.data);
          this.noteApplied(ack.id, ack.seq, ack.incarnation);
        } catch (e) {
          rt.log.debug({ err: e }, 'ignoring an undecodable ack');
        }
      },
    });
  }

  /** Acks are cheap core-NATS messages; one per tick with the latest seq is enough. */
  scheduleAck(): void {
    if (this.#ackScheduled) return;
    this.#ackScheduled = true;
    setImmediate(() => {
      this.#ackScheduled = false;
      const rt = this.#rt;
      const nc = rt.nc;
      if (nc === undefined || nc.isClosed() || rt.closing) return;
      try {
        nc.publish(
          rt.names.ackSubject,
          encodeAck({ id: rt.self.id, seq: this.#state.appliedSeq, incarnation: this.#state.incarnation }),
        );
      } catch (err) {
        rt.log.debug({ err }, 'cannot publish an ack');
      }
    });
  }

  /** Member `id` has applied `seq` (an ack or a heartbeat said so). */
  noteApplied(id: string, seq: number, incarnation: string | undefined): void {
    if (id === this.#rt.self.id) return;
    if (incarnation !== undefined && incarnation !== this.#state.incarnation) return;
    const cur = this.#acks.get(id);
    // A higher ack than the stream holds is from before a reset: a lower one replaces it.
    if (cur !== undefined && cur.seq >= seq && cur.seq <= this.#state.knownLastSeq()) return;
    this.#acks.set(id, { seq, incarnation });
    this.checkWaiters();
  }

  #hasApplied(id: string, seq: number): boolean {
    if (id === this.#rt.self.id) return this.#state.appliedSeq >= seq;
    const a = this.#acks.get(id);
    return a !== undefined && a.seq >= seq && a.seq <= this.#state.knownLastSeq();
  }

  #ackStatus(seq: number): PurgeAcks {
    const ids = new Set<string>([this.#rt.self.id]);
    for (const m of this.#view().members) {
      if (m.state === 'active' || m.state === 'warming') ids.add(m.id);
    }
    const acknowledged: string[] = [];
    const missing: string[] = [];
    for (const id of ids) (this.#hasApplied(id, seq) ? acknowledged : missing).push(id);
    return { acknowledged, missing };
  }

  /** Something a waiter may be waiting for happened: an apply, an ack, a gap check, a view. */
  checkWaiters(): void {
    for (const w of this.#waiters) w.settle(false);
  }

  waitApplied(seq: number, timeoutMs: number): Promise<PurgeAcks> {
    return new Promise<PurgeAcks>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter: Waiter = {
        settle: (final) => {
          const status = this.#ackStatus(seq);
          if (status.missing.length > 0 && !final) return;
          if (timer !== undefined) clearTimeout(timer);
          this.#waiters.delete(waiter);
          resolve(status);
        },
      };
      this.#waiters.add(waiter);
      waiter.settle(this.#rt.closing);
      if (this.#waiters.has(waiter)) timer = setTimeout(() => waiter.settle(true), Math.max(0, timeoutMs));
    });
  }

  /** Resolves once `done()` holds at a check (see checkWaiters), or at close. */
  until(done: () => boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      const waiter: Waiter = {
        settle: (final) => {
          if (!final && !done()) return;
          this.#waiters.delete(waiter);
          resolve();
        },
      };
      this.#waiters.add(waiter);
      waiter.settle(this.#rt.closing);
    });
  }

  /** The INVAL stream was reset: applied seqs of the old stream mean nothing in the new one. */
  onStreamReset(): void {
    this.#acks.clear();
  }

  /** What we track per member ends with its membership, or members churning grow it forever.
   *  A member not yet registered is forgotten too: its next heartbeat or ack brings it back. */
  keepOnly(ids: ReadonlySet<string>): void {
    for (const id of [...this.#acks.keys()]) if (!ids.has(id)) this.#acks.delete(id);
  }

  trackedIds(): Iterable<string> {
    return this.#acks.keys();
  }

  close(): void {
    this.#sub?.unsubscribe();
    for (const w of [...this.#waiters]) w.settle(true);
  }
}
