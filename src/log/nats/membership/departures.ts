// Departures: on 2.9 a KV watch sees nothing when a heartbeat expires (§7 of the design notes'
// NATS-2.9.md): every member tracks the members of the view itself and removes the silent ones
// by compare-and-set, so that several survivors agree on one new epoch.

import type { Member } from '../../../core/types.js';
import { heartbeatKey } from '../../subjects.js';
import type { Runtime } from '../runtime.js';
import type { Heartbeats } from './heartbeats.js';
import type { ViewStore } from './view.js';

export class Departures {
  readonly #rt: Runtime;
  readonly #views: ViewStore;
  readonly #heartbeats: Heartbeats;
  #pending = false;

  constructor(rt: Runtime, views: ViewStore, heartbeats: Heartbeats) {
    this.#rt = rt;
    this.#views = views;
    this.#heartbeats = heartbeats;
  }

  /** Check every so often: a quarter of the TTL, at most one heartbeat interval. */
  startTimer(): void {
    const o = this.#rt.opts;
    this.#rt.every(Math.max(100, Math.min(o.heartbeatIntervalMs, Math.floor(o.heartbeatTtlMs / 4))), () => void this.check());
  }

  async check(): Promise<void> {
    const rt = this.#rt;
    if (!rt.attached || rt.closing || this.#pending) return;
    const lastSeen = this.#heartbeats.lastSeen;
    const now = Date.now();
    const ttl = rt.opts.heartbeatTtlMs;
    const silent = (m: Member): boolean => {
      if (m.id === rt.self.id) return false;
      const since = Math.max(lastSeen.get(m.id) ?? 0, this.#views.inViewSince(m.id) ?? now, rt.attachedAt);
      return now - since > ttl;
    };
    const suspects = this.#views.view.members.filter(silent);
    if (suspects.length === 0) return;
    this.#pending = true;
    try {
      // Our watcher may be behind: ask the bucket before removing anyone.
      const dead = new Set<string>();
      for (const m of suspects) {
        const e = await this.#heartbeats.kv.get(heartbeatKey(m.id));
        if (e !== null && e.operation === 'PUT' && Date.now() - e.created.getTime() <= ttl) {
          lastSeen.set(m.id, Math.max(lastSeen.get(m.id) ?? 0, e.created.getTime()));
          continue;
        }
        dead.add(m.id);
      }
      if (dead.size === 0) return;
      rt.log.warn({ members: [...dead], ttlMs: ttl }, 'members stopped heartbeating; removing them from the view');
      await this.#views.change(`remove silent members ${[...dead].join(', ')}`, (cur) => {
        const left = cur.members.filter((m) => !dead.has(m.id));
        return left.length === cur.members.length ? null : left;
      });
    } catch (err) {
      rt.log.warn({ err }, 'departure check failed');
    } finally {
      this.#pending = false;
    }
  }
}
