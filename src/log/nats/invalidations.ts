// The INVAL consumer: an ordered consumer from appliedSeq+1 that hands each invalidation to the
// cache in seq order, reports what it cannot apply as a gap, and never runs two cursors at once.
// Also catchUp (wait for the stream's last seq). Checks against the server: stream-check.ts.

import { DeliverPolicy, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { logError } from '../../core/errors.js';
import type { Invalidation } from '../../core/types.js';
import { decodeInvalidation } from '../codec.js';
import type { InvalidationHandlers } from '../types.js';
import type { Acks } from './acks.js';
import { describeError, type Runtime } from './runtime.js';
import type { LogState } from './state.js';

export const MSG_ID_HEADER = 'Nats-Msg-Id';

export class InvalConsumer {
  readonly #rt: Runtime;
  readonly #state: LogState;
  readonly #acks: Acks;
  readonly #onFlushed: () => void;
  #handlers: InvalidationHandlers | undefined;
  #consumer: ConsumerMessages | undefined;
  #gen = 0;
  #ops: Promise<void> = Promise.resolve();
  /** What the last periodic check saw, to notice a consumer that stopped delivering. */
  progress = { appliedSeq: 0, behind: false };
  /** A restart failed (JetStream busy electing): the next check does it. */
  needsRestart = false;

  /** `onFlushed`: a gap was reported; what could not be proven fresh is gone. */
  constructor(rt: Runtime, state: LogState, acks: Acks, onFlushed: () => void) {
    this.#rt = rt;
    this.#state = state;
    this.#acks = acks;
    this.#onFlushed = onFlushed;
  }

  get handlers(): InvalidationHandlers {
    return this.#handlers!;
  }

  setHandlers(handlers: InvalidationHandlers): void {
    this.#handlers = handlers;
  }

  /** Run INVAL cursor work one at a time: gap checks and consumer restarts interleave
   *  with each other otherwise. */
  serial(fn: () => Promise<void>): Promise<void> {
    const p = this.#ops.then(fn);
    this.#ops = p.catch(() => undefined);
    return p;
  }

  /** Start an ordered consumer from appliedSeq+1 and swap it in. The old consumer keeps
   *  delivering until the new one exists: overlapping deliveries are dropped by seq in
   *  #onInval, so there is never a moment without a consumer. After a stream reset the old
   *  consumer's cursor belongs to the old numbering: `silenceOld` stops it at once. */
  async restart(silenceOld = false): Promise<void> {
    const rt = this.#rt;
    const js = rt.js!;
    if (silenceOld) this.#gen++;
    // If appliedSeq+1 was purged the server silently starts later (§5): #onInval sees the
    // jump in stream seq and reports the gap.
    const c = await js.consumers.get(rt.names.invalStream, {
      filter_subjects: rt.names.invalSubject,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: this.#state.appliedSeq + 1,
    });
    if (rt.closing) {
      void c.delete().catch(() => undefined);
      return;
    }
    const gen = ++this.#gen;
    const old = this.#consumer;
    const msgs = await c.consume({
      max_messages: 256,
      // Short pulls mean a 2.5 s idle heartbeat: a consumer lost with its server is noticed
      // and recreated in ~5 s instead of the default ~30 s. Invalidations wait meanwhile.
      expires: 5_000,
      callback: (m) => {
        if (gen === this.#gen) this.#onInval(m);
      },
    });
    this.#consumer = msgs;
    old?.stop();
    this.progress = { appliedSeq: this.#state.appliedSeq, behind: false };
    void msgs.closed().then((err) => {
      if (rt.closing || gen !== this.#gen) return;
      rt.log.warn({ err }, 'INVAL consumer stopped; restarting it');
      rt.retryLater(() => this.serial(() => this.restart()), 'restart the INVAL consumer');
    });
  }

  #onInval(m: JsMsg): void {
    const rt = this.#rt;
    const state = this.#state;
    const seq = m.seq;
    if (seq <= state.appliedSeq) return; // redelivered after a consumer restart
    if (seq > state.appliedSeq + 1) {
      // INVAL seqs are contiguous (limits retention, we never delete single messages),
      // so a jump means those messages left the stream before we read them.
      this.gap(
        `INVAL messages ${state.appliedSeq + 1}..${seq - 1} are no longer in the stream (retention, purge or loss)`,
        state.appliedSeq + 1,
        seq - 1,
      );
    }
    let inval: Invalidation | undefined;
    try {
      inval = decodeInvalidation(m.data);
    } catch (err) {
      // We cannot apply what we cannot read: treat it as lost, never skip it silently.
      rt.log.error({ err, seq }, 'undecodable invalidation');
      this.gap(`undecodable invalidation at seq ${seq}: ${describeError(err)}`, seq, seq);
    }
    if (inval !== undefined) {
      try {
        this.#handlers!.invalidation(seq, inval);
        rt.stats.invalApplied++;
      } catch (err) {
        rt.log.error({ err, seq }, 'invalidation handler threw');
        this.gap(`the invalidation handler failed at seq ${seq}: ${describeError(err)}`, seq, seq);
      }
    }
    state.appliedSeq = seq;
    state.backlog.applied(seq);
    state.appliedMsgId = m.headers?.get(MSG_ID_HEADER) || undefined;
    if (state.appliedMsgId?.startsWith(`${rt.self.id}-`) === true) state.noteOwnApplied(state.appliedMsgId, seq);
    this.#acks.scheduleAck();
    this.#acks.checkWaiters();
  }

  /** Report lost INVAL messages fromSeq..toSeq and move the cursor past them. */
  gap(reason: string, fromSeq: number, toSeq: number): void {
    const rt = this.#rt;
    rt.stats.gaps++;
    rt.log.warn({ reason, fromSeq, toSeq }, 'INVAL gap: flushing what cannot be proven fresh');
    try {
      this.#handlers!.gap(reason, fromSeq, toSeq);
    } catch (err) {
      rt.log.error({ err }, 'gap handler threw');
    }
    this.#state.appliedSeq = toSeq;
    this.#state.backlog.applied(toSeq);
    this.#state.appliedMsgId = undefined;
    // What could not be proven fresh is gone: nothing left to catch up on (the lease's
    // recovery target included, membership/lease.ts).
    this.#onFlushed();
  }

  async catchUp(): Promise<number> {
    const rt = this.#rt;
    const state = this.#state;
    if (!rt.running || rt.closing) throw logError('catchUp: the NATS log is not running');
    const started = Date.now();
    // A reset while we wait restarts the numbering: read the new stream's last seq and wait
    // for that instead (a few times at most; a stream reset over and over is an operator's
    // problem, and the gap it reports has flushed what we held).
    for (let round = 0; ; round++) {
      const info = await rt.retrying(`read the state of ${rt.names.invalStream}`, () =>
        rt.jsm!.streams.info(rt.names.invalStream),
      );
      const target = info.state.last_seq;
      const resets = state.resets;
      await this.#acks.until(() => state.appliedSeq >= target || state.resets !== resets);
      if (state.resets === resets || rt.closing || round >= 4) {
        rt.log.info({ target, appliedSeq: state.appliedSeq, ms: Date.now() - started }, 'caught up with the retained invalidations');
        return target;
      }
    }
  }

  close(): void {
    this.#gen++;
    this.#consumer?.stop();
  }
}
