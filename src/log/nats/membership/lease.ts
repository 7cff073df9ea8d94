// Our lease (DESIGN invariant 1 for a member cut off from NATS while its peers are not): peers
// drop a member whose last stored heartbeat is older than the TTL, and purges stop waiting for
// it; so from TTL less one interval after the start of our last stored heartbeat, nothing is
// served as fresh here. After such a lapse, or after a view that drops us, not until a heartbeat
// is stored again, the view lists us, and we have applied every invalidation the log held then.

import type { View } from '../../../core/types.js';
import type { Runtime } from '../runtime.js';
import type { LogState } from '../state.js';

export class Lease {
  readonly #rt: Runtime;
  readonly #state: LogState;
  readonly #readView: () => Promise<{ view: View }>;
  /** performance.now() at the start of our last heartbeat put (or registration) that was stored. */
  #okAt: number | undefined;
  /** A lapse or a drop was seen and is not yet cleared by a stored heartbeat, a view listing us, and recoverSeq. */
  #recovering = false;
  #recoverSeq = 0;
  #recoverPending = false;

  /** `readView`: the newest valid view in the bucket (view.ts). */
  constructor(rt: Runtime, state: LogState, readView: () => Promise<{ view: View }>) {
    this.#rt = rt;
    this.#state = state;
    this.#readView = readView;
  }

  /** Must every entry be revalidated before it is served? While our lease has lapsed, or we
   *  are catching up after a lapse or a drop from the view. */
  mustRevalidate(): boolean {
    const ok = this.#okAt;
    if (ok === undefined) return false;
    return performance.now() - ok > this.#leaseMs() || this.#recovering || this.#state.appliedSeq < this.#recoverSeq;
  }

  #leaseMs(): number {
    return this.#rt.opts.heartbeatTtlMs - this.#rt.opts.heartbeatIntervalMs;
  }

  /** We registered in the view at `startedAt`: peers count our silence from then at the earliest. */
  registered(startedAt: number): void {
    this.#okAt = Math.max(this.#okAt ?? 0, startedAt);
  }

  /** We left the view: no peer waits for us, nothing to hold. */
  left(): void {
    this.#okAt = undefined;
    this.#recovering = false;
  }

  /** A view without us: purges stopped waiting for us, so we are fenced as after a lapse until
   *  we are listed again and have caught up. */
  dropped(): void {
    this.#recovering = true;
  }

  /** A gap flushed what could not be proven fresh: nothing left to catch up on. */
  flushed(): void {
    this.#recoverSeq = 0;
  }

  /** A heartbeat put starts at `startedAt`: has the lease lapsed since the last stored one? */
  heartbeatStarting(startedAt: number): void {
    if (this.#okAt !== undefined && startedAt - this.#okAt > this.#leaseMs() && !this.#recovering) {
      this.#recovering = true;
      this.#rt.log.warn({ silentMs: Math.round(startedAt - this.#okAt) }, 'our heartbeats lapsed: revalidating every entry until we have caught up');
    }
  }

  /** The heartbeat put started at `startedAt` was stored. */
  heartbeatStored(startedAt: number): void {
    this.#okAt = Math.max(this.#okAt ?? 0, startedAt);
    // Not awaited by the heartbeat: on a slow link the recovery's reads take round trips of
    // their own, and heartbeats held back behind them would lapse the lease again, forever.
    // The fence holds meanwhile: #recovering stays set until the recovery has read the view.
    if (this.#recovering && !this.#recoverPending) {
      this.#recoverPending = true;
      this.#recover()
        .catch((err: unknown) => this.#rt.log.debug({ err }, 'recovery after a lapse failed; the next heartbeat tries again'))
        .finally(() => { this.#recoverPending = false; });
    }
  }

  /** After a lapse or a drop, with a heartbeat stored again: purges may have skipped us. Stay
   *  fenced until the view lists us (the view watch registers us again when it does not), then
   *  catch up to the log's last seq as read after that: purges up to it may have skipped us,
   *  purges after it wait for us, as we are in the view. */
  async #recover(): Promise<void> {
    const rt = this.#rt;
    const { view } = await this.#readView();
    if (!view.members.some((m) => m.id === rt.self.id)) return;
    const info = await rt.jsm!.streams.info(rt.names.invalStream);
    this.#recoverSeq = Math.max(this.#recoverSeq, info.state.last_seq);
    this.#recovering = false;
    rt.log.info({ appliedSeq: this.#state.appliedSeq, recoverSeq: this.#recoverSeq }, 'heartbeats stored again; serving from the cache once caught up');
  }
}
