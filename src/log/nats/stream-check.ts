// INVAL against the server (DESIGN invariant 3): where the cursor starts, and the checks (periodic,
// on reconnect, after a suspicious publish) that find messages we can no longer read (a gap), a
// stream deleted and recreated (a reset), or a consumer that stopped delivering.

import { nuid } from '@nats-io/transport-node';
import { JetStreamApiCodes, type StreamInfo } from '@nats-io/jetstream';
import type { Acks } from './acks.js';
import { MSG_ID_HEADER, type InvalConsumer } from './invalidations.js';
import { replicasOf } from './connection.js';
import { INCARNATION_TAG, ensureInvalStream, incarnationOf } from './provision.js';
import { isApiError, type Runtime } from './runtime.js';
import type { LogState } from './state.js';

/** Our INVAL cursor at one moment: the seq applied and the Nats-Msg-Id of that message. */
interface AppliedCursor {
  readonly seq: number;
  readonly msgId: string | undefined;
}

export class StreamCheck {
  readonly #rt: Runtime;
  readonly #state: LogState;
  readonly #consumer: InvalConsumer;
  readonly #acks: Acks;
  /** The stream was reset keeping the old id: #stampIncarnation must give it a new one. */
  #stampDue = false;

  constructor(rt: Runtime, state: LogState, consumer: InvalConsumer, acks: Acks) {
    this.#rt = rt;
    this.#state = state;
    this.#consumer = consumer;
    this.#acks = acks;
  }

  /** Place the cursor and start the consumer. */
  async start(): Promise<void> {
    const rt = this.#rt;
    const info = await rt.jsm!.streams.info(rt.names.invalStream);
    const state = info.state;
    const initial = rt.opts.initialAppliedSeq;
    if (initial === undefined) {
      // A new sidecar holds nothing an older invalidation could concern, except the fills
      // it is about to replay: with replayRetainedInvalidations it reads the history too.
      this.#state.appliedSeq = rt.opts.replayRetainedInvalidations ? Math.max(0, state.first_seq - 1) : state.last_seq;
      // Invalidations at or below it are not ours to know: fills fenced before it are unprovable.
      this.#consumer.handlers.horizon(this.#state.appliedSeq);
    } else {
      this.#state.appliedSeq = initial;
      this.#checkGapWith(info, info.state.last_seq >= initial, 'start');
    }
    await this.#consumer.restart();
    this.#acks.scheduleAck();
  }

  /** Is `info` still the INVAL stream whose messages we applied? `before` is our cursor as it
   *  was when we asked for `info`: messages that arrive while the server answers move the
   *  cursor past the last seq it named, and that is no reset.
   *  A changed incarnation id alone does not prove a reset either: sidecars that create the
   *  stream at the same moment race in the meta layer (JetStream's stream create is not
   *  compare-and-set on 2.9) and the last create's description wins after some of them read
   *  the first. So when the id changed, or we
   *  applied past what the answer holds, look at the message we had applied last: same seq,
   *  same Nats-Msg-Id means same stream. */
  async #isSameStream(info: StreamInfo, before: AppliedCursor): Promise<boolean> {
    const { first_seq: firstSeq, last_seq: lastSeq } = info.state;
    // Fewer messages than we had applied before asking: numbered afresh.
    if (lastSeq < before.seq) return false;
    const overtaken = lastSeq < this.#state.appliedSeq;
    if (!overtaken && incarnationOf(info) === this.#state.incarnation) return true;
    // Nothing applied yet: there is nothing a reset could have taken from us.
    if (before.seq === 0) return true;
    // Our last message aged out or was purged: the gap check flushes everything anyway.
    if (before.seq < firstSeq) return true;
    if (before.msgId === undefined) return false;
    const sm = await this.#rt.jsm!.streams.getMessage(this.#rt.names.invalStream, { seq: before.seq });
    return sm !== null && sm.header.get(MSG_ID_HEADER) === before.msgId;
  }

  /** Compare the stream's state with our cursor (invariant 3). `sameStream` comes from
   *  #isSameStream. Returns true when the consumer must restart (the stream was reset). */
  #checkGapWith(info: StreamInfo, sameStream: boolean, when: string): boolean {
    const state = this.#state;
    const { first_seq: firstSeq, last_seq: lastSeq } = info.state;
    const incarnation = incarnationOf(info);
    if (!sameStream) {
      // Deleted and recreated: seqs restarted; everything after our cursor is unknown.
      const old = state.incarnation;
      state.incarnation = incarnation;
      if (incarnation === old && when !== 'start') {
        // Recreated from a copy of the old config, id and all: fences of the two numberings
        // would look alike. A private id until #stampIncarnation gives the stream a new one, so
        // that nothing fenced before the reset is taken for current meanwhile.
        state.incarnation = `${incarnation}#${nuid.next()}`;
        this.#stampDue = true;
      }
      // Applied seqs of the old stream mean nothing in the new one: neither the acks counted
      // for purges nor what we had learnt or published.
      this.#acks.onStreamReset();
      state.ownApplied.clear();
      state.backlog.clear();
      state.publishedSeq = 0;
      state.resets++;
      this.#consumer.gap(
        `INVAL stream ${this.#rt.names.invalStream} was reset (incarnation ${incarnation || '?'}, was ${old || '?'}; ` +
          `last seq ${lastSeq}, we had applied ${state.appliedSeq}) [${when}]`,
        state.appliedSeq + 1,
        Math.max(0, firstSeq - 1),
      );
      return true;
    }
    if (incarnation !== state.incarnation && !this.#stampDue) {
      this.#rt.log.info({ incarnation, was: state.incarnation }, 'INVAL stream id changed, same messages: keeping the cursor');
      state.incarnation = incarnation;
    }
    if (firstSeq > state.appliedSeq + 1) {
      this.#consumer.gap(
        `INVAL messages ${state.appliedSeq + 1}..${firstSeq - 1} are no longer in the stream ` +
          `(first seq is ${firstSeq}) [${when}]`,
        state.appliedSeq + 1,
        firstSeq - 1,
      );
    }
    return false;
  }

  /** Gap check against the server (periodic and on reconnect); recreates a deleted stream.
   *  The periodic check also restarts a consumer that made no progress between two checks
   *  while the stream had messages for it (a stuck consumer must not hide as "no news"). */
  checkGap(when: 'periodic' | 'reconnect' | 'publish'): Promise<void> {
    const rt = this.#rt;
    const state = this.#state;
    const consumer = this.#consumer;
    return consumer.serial(async () => {
      if (rt.closing) return;
      // Our cursor before we ask: the answer is compared with it, not with a cursor that our
      // consumer moved on while the server answered.
      const before: AppliedCursor = { seq: state.appliedSeq, msgId: state.appliedMsgId };
      let info: StreamInfo;
      try {
        info = await rt.jsm!.streams.info(rt.names.invalStream);
      } catch (err) {
        if (!isApiError(err, JetStreamApiCodes.StreamNotFound)) throw err;
        rt.log.warn({ stream: rt.names.invalStream }, 'INVAL stream is gone; recreating it');
        info = await ensureInvalStream(rt, replicasOf(rt));
      }
      const reset = this.#checkGapWith(info, await this.#isSameStream(info, before), when);
      state.backlog.learn(info.state.last_seq, state.appliedSeq, performance.now());
      if (this.#stampDue) await this.#stampIncarnation(info);
      // A restart that failed last time (JetStream busy electing) is due now.
      let restart = reset || consumer.needsRestart;
      const behind = info.state.last_seq > state.appliedSeq;
      if (when === 'periodic' && behind && consumer.progress.behind && consumer.progress.appliedSeq === state.appliedSeq) {
        rt.log.warn(
          { appliedSeq: state.appliedSeq, lastSeq: info.state.last_seq },
          'INVAL consumer made no progress since the last check; restarting it',
        );
        restart = true;
      }
      if (restart) {
        consumer.needsRestart = true;
        await consumer.restart(reset);
        consumer.needsRestart = false;
      } else if (when === 'periodic') {
        consumer.progress = { appliedSeq: state.appliedSeq, behind };
      }
      this.#acks.scheduleAck();
      this.#acks.checkWaiters();
    });
  }

  /** The stream was reset but kept the old one's id (see #checkGapWith): give it a fresh one.
   *  Members that stamp at the same moment, or read the old id meanwhile, adopt the one that
   *  stayed at their next check (same messages, new id); until then they ignore each other's
   *  fills and acks. Retried at every check until it succeeds. */
  async #stampIncarnation(info: StreamInfo): Promise<void> {
    const rt = this.#rt;
    const d = info.config.description ?? '';
    const at = d.lastIndexOf(INCARNATION_TAG);
    const description = `${at < 0 ? `${d}${d === '' ? '' : '; '}` : d.slice(0, at)}${INCARNATION_TAG}${nuid.next()}`;
    try {
      const updated = await rt.jsm!.streams.update(rt.names.invalStream, { ...info.config, description });
      this.#state.incarnation = incarnationOf(updated);
      this.#stampDue = false;
      rt.log.warn({ incarnation: this.#state.incarnation }, 'INVAL was recreated with the old stream\'s id; gave it a new one');
    } catch (err) {
      rt.log.warn({ err }, 'INVAL was recreated with the old stream\'s id and a new one could not be set yet');
    }
  }
}
