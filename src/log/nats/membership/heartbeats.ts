// Heartbeats in their KV bucket (TTL = heartbeatTtlMs): ours, put every interval with the seq we
// applied, and our peers', which tell when each was last heard from and what it has applied.

import type { KV, KvWatchEntry } from '@nats-io/kv';
import { decodeHeartbeat, encodeHeartbeat } from '../../codec.js';
import { heartbeatKey } from '../../subjects.js';
import type { Runtime } from '../runtime.js';
import type { LogState } from '../state.js';
import type { Lease } from './lease.js';

export class Heartbeats {
  readonly #rt: Runtime;
  readonly #state: LogState;
  readonly #kv: KV;
  readonly #lease: Lease;
  readonly #onApplied: (id: string, seq: number, incarnation: string | undefined) => void;
  #timer: NodeJS.Timeout | undefined;
  #pending = false;
  /** We left the view: no more heartbeats until we register again. */
  #left = false;
  /** Member id -> local time its last heartbeat was seen. */
  readonly lastSeen = new Map<string, number>();
  /** Heartbeat KV key -> member id, to map a DEL back to its member. */
  readonly #keyToId = new Map<string, string>();

  /** `onApplied`: a peer's heartbeat says what it has applied (acks.ts counts it). */
  constructor(
    rt: Runtime,
    state: LogState,
    kv: KV,
    lease: Lease,
    onApplied: (id: string, seq: number, incarnation: string | undefined) => void,
  ) {
    this.#rt = rt;
    this.#state = state;
    this.#kv = kv;
    this.#lease = lease;
    this.#onApplied = onApplied;
  }

  get kv(): KV {
    return this.#kv;
  }

  get left(): boolean {
    return this.#left;
  }

  /** Follow every member's heartbeat. */
  watch(): void {
    this.#rt.watch(this.#kv, undefined, (e) => this.#onEntry(e), 'heartbeats');
  }

  /** Put ours every interval. */
  startTimer(): void {
    this.#timer = setInterval(() => void this.put(), this.#rt.opts.heartbeatIntervalMs);
    this.#timer.unref();
  }

  get timerRunning(): boolean {
    return this.#timer !== undefined;
  }

  /** Registered (again, after we left): heartbeats are ours to put. */
  resume(): void {
    this.#left = false;
  }

  /** We left the view: no more heartbeats until we register again. */
  leave(): void {
    this.#left = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
  }

  async put(): Promise<void> {
    const rt = this.#rt;
    if (this.#pending || rt.closing || this.#left) return;
    this.#pending = true;
    const startedAt = performance.now();
    this.#lease.heartbeatStarting(startedAt);
    try {
      await this.#kv.put(
        heartbeatKey(rt.self.id),
        encodeHeartbeat({
          id: rt.self.id,
          peerUrl: rt.self.peerUrl,
          appliedSeq: this.#state.appliedSeq,
          at: Date.now(),
          incarnation: this.#state.incarnation,
        }),
      );
    } catch (err) {
      rt.log.debug({ err }, 'heartbeat put failed');
      return;
    } finally {
      this.#pending = false;
    }
    this.#lease.heartbeatStored(startedAt);
  }

  /** Remove ours (we left); it expires by TTL if this fails. */
  async delete(): Promise<void> {
    try {
      await this.#kv.delete(heartbeatKey(this.#rt.self.id));
    } catch (err) {
      this.#rt.log.warn({ err }, 'cannot delete our heartbeat; it expires by TTL');
    }
  }

  #onEntry(e: KvWatchEntry): void {
    if (e.operation !== 'PUT') {
      // An explicit delete: the member left (leave() also removes it from the view).
      const id = this.#keyToId.get(e.key);
      if (id !== undefined) this.lastSeen.delete(id);
      return;
    }
    try {
      const hb = decodeHeartbeat(e.value);
      this.#keyToId.set(e.key, hb.id);
      this.lastSeen.set(hb.id, Date.now());
      this.#onApplied(hb.id, hb.appliedSeq, hb.incarnation);
    } catch (err) {
      this.#rt.log.debug({ err, key: e.key }, 'ignoring an undecodable heartbeat');
    }
  }

  /** What we track per member ends with its membership (see Acks.keepOnly). */
  keepOnly(ids: ReadonlySet<string>): void {
    for (const id of [...this.lastSeen.keys()]) if (!ids.has(id)) this.lastSeen.delete(id);
    for (const [key, id] of [...this.#keyToId]) if (!ids.has(id)) this.#keyToId.delete(key);
  }

  trackedIds(): Iterable<string> {
    return [...this.lastSeen.keys(), ...this.#keyToId.values()];
  }
}
