// NatsLog: the JetStream log, all three seams at once (an invalidation log, a fill log and
// membership), composed of the parts in nats/: connection, provisioning, the INVAL consumer and
// its stream checks, invalidation publishes, acknowledgements, FILLS, and membership (view,
// heartbeats, lease, departures). It starts and closes them in order and wires what one part
// does to another; it holds no state of its own.

import { logError, redactCredentials, SidecacheError } from '../core/errors.js';
import type { Invalidation, Member, MemberState, PurgeAcks, View } from '../core/types.js';
import { Acks } from './nats/acks.js';
import { connectNats, replicasOf, watchConnection } from './nats/connection.js';
import { Fills } from './nats/fills.js';
import { InvalConsumer } from './nats/invalidations.js';
import { publishInvalidation } from './nats/inval-publish.js';
import { NatsMembership } from './nats/membership/membership.js';
import { ensureFillsStream, ensureInvalStream, incarnationOf, openBuckets } from './nats/provision.js';
import { describeError, Runtime, type NatsLogOptions, type NatsLogStats } from './nats/runtime.js';
import { LogState } from './nats/state.js';
import { StreamCheck } from './nats/stream-check.js';
import type { FillLog, FillRecord, InvalidationLog, LogHandlers, Membership } from './types.js';

export type { NatsLogOptions, NatsLogStats } from './nats/runtime.js';

const EMPTY_VIEW: View = Object.freeze({ epoch: 0, members: Object.freeze([]) as readonly Member[] });

export class NatsLog implements InvalidationLog, FillLog, Membership {
  readonly #rt: Runtime;
  readonly #state = new LogState();
  readonly #acks: Acks;
  readonly #inval: InvalConsumer;
  readonly #check: StreamCheck;
  readonly #fills: Fills;
  /** Made in start(), once the buckets exist. */
  #membership: NatsMembership | undefined;

  constructor(opts: NatsLogOptions) {
    const rt = new Runtime(opts);
    this.#rt = rt;
    // A purge waits for the members of the current view.
    this.#acks = new Acks(rt, this.#state, () => this.view);
    // A gap flushed what could not be proven fresh: the lease has nothing left to catch up on.
    this.#inval = new InvalConsumer(rt, this.#state, this.#acks, () => this.#membership?.lease.flushed());
    this.#check = new StreamCheck(rt, this.#state, this.#inval, this.#acks);
    this.#fills = new Fills(rt);
  }

  /** Must every entry be revalidated before it is served? (membership/lease.ts) */
  mustRevalidate(): boolean {
    return this.#membership?.mustRevalidate() ?? false;
  }

  /** For how long we have known that the stream holds invalidations we have not applied
   *  (our own publishes, its last seq at a check): 0 when none. A member whose deliveries
   *  stall while it stays attached must stop trusting its cache after a while (Backlog). */
  behindMs(): number {
    return this.#state.backlog.behindMs(performance.now());
  }

  get knownSeq(): number {
    return this.#state.knownStreamSeq();
  }

  get appliedSeq(): number {
    return this.#state.appliedSeq;
  }

  get incarnation(): string {
    return this.#state.incarnation;
  }

  get attached(): boolean {
    return this.#rt.attached;
  }

  get view(): View {
    return this.#membership?.view ?? EMPTY_VIEW;
  }

  /** Member ids this log holds state for (acks, heartbeats seen): bounded by the view and the
   *  members heartbeating now, however many have come and gone. */
  get trackedMembers(): number {
    return new Set([...this.#acks.trackedIds(), ...(this.#membership?.trackedIds() ?? [])]).size;
  }

  /** Live counters; read them, do not write them. */
  get stats(): Readonly<NatsLogStats> {
    return this.#rt.stats;
  }

  /** Connect, check the server, create or verify streams and buckets, follow the view, start
   *  consuming INVAL from appliedSeq+1 and FILLS from now. Throws SidecacheError(SC_ERR_LOG). */
  async start(handlers: LogHandlers): Promise<void> {
    const rt = this.#rt;
    if (rt.started) throw logError('NatsLog.start: already started');
    rt.started = true;
    this.#inval.setHandlers(handlers);
    try {
      await connectNats(rt);
      rt.attached = true;
      rt.attachedAt = Date.now();
      watchConnection(rt, {
        attached: (attached) => {
          try {
            handlers.attached(attached);
          } catch (err) {
            rt.log.error({ err }, 'attached handler threw');
          }
        },
        reconnected: () => this.#onReconnect(),
      });
      const replicas = replicasOf(rt);
      this.#state.incarnation = incarnationOf(await ensureInvalStream(rt, replicas));
      await ensureFillsStream(rt, replicas);
      const membership = new NatsMembership(rt, this.#state, this.#acks, await openBuckets(rt, replicas));
      this.#membership = membership;
      this.#acks.subscribe();
      await rt.retrying('read the membership view', () => membership.start(handlers));
      await rt.retrying('start consuming INVAL', () => this.#check.start());
      await rt.retrying('start consuming FILLS', () => this.#fills.start(handlers));
      this.#startTimers(membership);
      rt.running = true;
      rt.log.info(
        { servers: rt.opts.servers.map(redactCredentials), replicas, appliedSeq: this.#state.appliedSeq, epoch: this.view.epoch },
        'attached to the NATS log',
      );
    } catch (err) {
      await this.close().catch(() => undefined);
      if (err instanceof SidecacheError) throw err;
      throw logError(`cannot start the NATS log: ${describeError(err)}`, err);
    }
  }

  async close(): Promise<void> {
    const rt = this.#rt;
    if (rt.closing) return;
    rt.closing = true;
    rt.stopAll();
    this.#membership?.close();
    this.#inval.close();
    this.#fills.close();
    this.#acks.close();
    const nc = rt.nc;
    rt.attached = false;
    if (nc === undefined || nc.isClosed()) return;
    // Drain flushes our last acks and heartbeats; a connection that cannot reach a server
    // would wait forever, so bound it.
    await Promise.race([nc.drain().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 2_000))]);
    if (!nc.isClosed()) await nc.close().catch(() => undefined);
  }

  #startTimers(membership: NatsMembership): void {
    const rt = this.#rt;
    membership.startTimers();
    rt.every(rt.opts.gapCheckIntervalMs ?? 5_000, () => {
      if (!rt.attached || rt.closing) return;
      this.#check.checkGap('periodic').catch((err: unknown) => rt.log.debug({ err }, 'periodic gap check failed'));
    });
  }

  #onReconnect(): void {
    const rt = this.#rt;
    if (!rt.running) return; // start() is still setting up and checks the stream itself
    this.#membership?.reconnected();
    // The ordered consumer resumes by itself from the last seq it delivered, which is
    // appliedSeq (every delivery is applied synchronously). Check that the stream still
    // holds appliedSeq+1; a purge or a reset becomes a gap before anything later applies.
    this.#check.checkGap('reconnect').catch((err: unknown) => {
      rt.log.warn({ err }, 'gap check after reconnect failed; retrying');
      rt.retryLater(() => this.#check.checkGap('reconnect'), 'check INVAL after reconnect');
    });
  }

  // ---- the seams, each answered by its part ---------------------------------------------

  invalidate(inval: Invalidation): Promise<number> {
    // A purge-all leaves FILLS holding only purged content: fills.ts empties it.
    return publishInvalidation(this.#rt, this.#state, this.#check, () => this.#fills.purgeAfterBan(), inval);
  }

  catchUp(): Promise<number> {
    return this.#inval.catchUp();
  }

  waitApplied(seq: number, timeoutMs: number): Promise<PurgeAcks> {
    return this.#acks.waitApplied(seq, timeoutMs);
  }

  publishFill(record: FillRecord): void {
    this.#fills.publishFill(record);
  }

  replayFills(partitions: ReadonlySet<number>): Promise<number> {
    return this.#fills.replayFills(partitions);
  }

  setState(state: MemberState): Promise<void> {
    if (this.#membership === undefined) return Promise.reject(logError('setState: the NATS log is not running'));
    return this.#membership.setState(state);
  }

  leave(): Promise<void> {
    if (this.#membership === undefined) return Promise.reject(logError('leave: the NATS log is not running'));
    return this.#membership.leave();
  }
}
