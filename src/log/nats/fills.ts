// FILLS: bounded fire-and-forget publish of stored entries, a live consumer that hands peers'
// fills to the cache, last-per-subject replay for a handoff, and emptying the stream after a
// purge-all. Section numbers refer to the design notes' NATS-2.9.md.

import { headers, type MsgHdrs } from '@nats-io/transport-node';
import { DeliverPolicy, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { logError } from '../../core/errors.js';
import { FILL_OP_DELETE, FILL_OP_HEADER, decodeFill, encodeFillPayload } from '../codec.js';
import { fillSubject, parseFillSubject } from '../subjects.js';
import type { FillHandlers, FillLog, FillRecord } from '../types.js';
import { describeError, type Runtime } from './runtime.js';

const FILL_PUBLISH_TIMEOUT_MS = 5_000;
const REPLAY_STALL_MS = 15_000;
/** At most one warning per this long about undecodable fills: during a rolling upgrade every
 *  fill of a member of the other version is one. */
const UNDECODABLE_WARN_INTERVAL_MS = 60_000;
const EMPTY = new Uint8Array(0);

export class Fills implements FillLog {
  readonly #rt: Runtime;
  #handlers: Partial<FillHandlers> = {};
  #consumer: ConsumerMessages | undefined;
  #gen = 0;
  #lastSeq = 0;
  #inFlight = 0;
  #undecodableWarnedAt = -Infinity;

  constructor(rt: Runtime) {
    this.#rt = rt;
  }

  /** Consume FILLS from its end on. */
  async start(handlers: Partial<FillHandlers>): Promise<void> {
    this.#handlers = handlers;
    const info = await this.#rt.jsm!.streams.info(this.#rt.names.fillsStream);
    this.#lastSeq = info.state.last_seq;
    await this.#restartConsumer();
  }

  async #restartConsumer(): Promise<void> {
    const rt = this.#rt;
    const gen = ++this.#gen;
    const old = this.#consumer;
    this.#consumer = undefined;
    old?.stop();
    // DeliverPolicy.New would be wrong here: an ordered consumer that resets before its
    // first message restarts at seq 1 and would replay the whole stream. A start seq gives
    // the reset a cursor.
    const c = await rt.js!.consumers.get(rt.names.fillsStream, {
      filter_subjects: rt.names.fillsWildcard,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: this.#lastSeq + 1,
    });
    if (gen !== this.#gen) {
      void c.delete().catch(() => undefined);
      return;
    }
    const msgs = await c.consume({
      max_messages: 512,
      expires: 10_000,
      callback: (m) => {
        if (gen !== this.#gen) return;
        this.#lastSeq = m.seq;
        if (this.#deliver(m)) rt.stats.fillsApplied++;
      },
    });
    this.#consumer = msgs;
    void msgs.closed().then((err) => {
      if (rt.closing || gen !== this.#gen) return;
      rt.log.warn({ err }, 'FILLS consumer stopped; restarting it');
      rt.retryLater(() => this.#restartConsumer(), 'restart the FILLS consumer');
    });
  }

  /** Decode a FILLS message and hand it to the cache; false if it was not delivered. */
  #deliver(m: JsMsg, partitions?: ReadonlySet<number>): boolean {
    const rt = this.#rt;
    const where = parseFillSubject(rt.names, m.subject);
    if (where === undefined) return false;
    if (partitions !== undefined && !partitions.has(where.partition)) return false;
    let record: FillRecord;
    try {
      const tombstone = m.headers?.get(FILL_OP_HEADER) === FILL_OP_DELETE;
      record = decodeFill(where.partition, where.subjectKey, m.data, tombstone);
    } catch (err) {
      rt.stats.fillsUndecodable++;
      const now = performance.now();
      if (now - this.#undecodableWarnedAt >= UNDECODABLE_WARN_INTERVAL_MS) {
        this.#undecodableWarnedAt = now;
        rt.log.warn({ err, subject: m.subject, seq: m.seq, undecodable: rt.stats.fillsUndecodable }, 'ignoring undecodable fills (counted in sidecache_fills_undecodable)');
      }
      return false;
    }
    try {
      this.#handlers.fill?.(record, m.seq, partitions !== undefined);
    } catch (err) {
      rt.log.error({ err, seq: m.seq }, 'fill handler threw');
      return false;
    }
    return true;
  }

  publishFill(record: FillRecord): void {
    const rt = this.#rt;
    const js = rt.js;
    if (!rt.attached || rt.closing || js === undefined || this.#inFlight >= rt.opts.fillMaxInFlight) {
      rt.stats.fillsDropped++;
      return;
    }
    const subject =
      record.partition < rt.self.partitions ? fillSubject(rt.names, record.partition, record.subjectKey) : undefined;
    if (subject === undefined) {
      rt.stats.fillsDropped++;
      rt.log.warn({ partition: record.partition, subjectKey: record.subjectKey }, 'dropping a fill with an invalid subject');
      return;
    }
    let payload: Uint8Array;
    let opts: { timeout: number; headers?: MsgHdrs };
    if (record.tombstone === true) {
      const h = headers();
      h.set(FILL_OP_HEADER, FILL_OP_DELETE);
      payload = EMPTY;
      opts = { timeout: FILL_PUBLISH_TIMEOUT_MS, headers: h };
    } else {
      payload = encodeFillPayload(record);
      opts = { timeout: FILL_PUBLISH_TIMEOUT_MS };
    }
    this.#inFlight++;
    js.publish(subject, payload, opts).then(
      () => {
        this.#inFlight--;
        rt.stats.fillsPublished++;
      },
      (err: unknown) => {
        this.#inFlight--;
        rt.stats.fillsDropped++;
        rt.log.debug({ err, subject }, 'fill publish failed');
      },
    );
  }

  async replayFills(partitions: ReadonlySet<number>): Promise<number> {
    const rt = this.#rt;
    const js = rt.js;
    const stream = rt.names.fillsStream;
    if (!rt.started || rt.closing || js === undefined) throw logError('replayFills: the NATS log is not running');
    if (partitions.size === 0) return 0;
    // One consumer on fill.> with last-per-subject, filtered here: a handoff replays many
    // partitions, and one consumer pays its set-up once where one per partition pays it each
    // time (NATS-2.9.md §3).
    let c;
    try {
      c = await js.consumers.get(stream, {
        filter_subjects: rt.names.fillsWildcard,
        deliver_policy: DeliverPolicy.LastPerSubject,
      });
    } catch (err) {
      throw logError(`cannot replay ${stream}: ${describeError(err)}`, err);
    }
    const pending = (await c.info(true)).num_pending;
    if (pending === 0) {
      void c.delete().catch(() => undefined);
      return 0;
    }
    let count = 0;
    let msgs: ConsumerMessages | undefined;
    try {
      count = await new Promise<number>((resolve, reject) => {
        let stall: NodeJS.Timeout | undefined;
        const arm = (): void => {
          if (stall !== undefined) clearTimeout(stall);
          stall = setTimeout(() => {
            reject(logError(`replay of ${stream} stalled: no message for ${REPLAY_STALL_MS} ms`));
          }, REPLAY_STALL_MS);
        };
        arm();
        let finished = false;
        c.consume({
          max_messages: 1000,
          callback: (m) => {
            if (finished) return;
            if (this.#deliver(m, partitions)) count++;
            arm();
            if (m.info.pending === 0) {
              finished = true;
              clearTimeout(stall);
              resolve(count);
            }
          },
        }).then(
          (it) => {
            msgs = it;
            if (finished) it.stop();
            void it.closed().then((err) => {
              if (finished) return;
              finished = true;
              clearTimeout(stall);
              reject(logError(`replay of ${stream} stopped early: ${describeError(err)}`, err));
            });
          },
          (err: unknown) => {
            clearTimeout(stall);
            reject(logError(`cannot replay ${stream}: ${describeError(err)}`, err));
          },
        );
      });
    } finally {
      msgs?.stop();
      void c.delete().catch(() => undefined);
    }
    rt.stats.replayed += count;
    return count;
  }

  /** After a purge-all, the compacted FILLS log holds only purged content: empty it, so a
   *  sidecar joining after the ban's INVAL retention cannot replay it. */
  async purgeAfterBan(): Promise<void> {
    const rt = this.#rt;
    try {
      await rt.jsm!.streams.purge(rt.names.fillsStream);
    } catch (err) {
      // Replays refuse those fills anyway (their fences are below the ban, or below the
      // retained log once the ban has aged out); emptying FILLS keeps them from being
      // replayed and refused by every joiner until FILLS' max_age. A later purge also takes
      // fills stored after the ban: those replicas miss once.
      rt.log.warn({ err: describeError(err) }, 'purge-all: could not empty the FILLS stream; retrying');
      rt.retryLater(async () => {
        await rt.jsm!.streams.purge(rt.names.fillsStream);
        rt.log.info('purge-all: FILLS stream emptied after a retry');
      }, 'empty FILLS after a purge-all');
    }
  }

  close(): void {
    this.#gen++;
    this.#consumer?.stop();
  }
}
