// What every part of the NATS log shares: its options and names, the logger, the connection once
// made, the lifecycle flags that every retry, timer and watch checks, and the counters. It holds
// no state of INVAL, FILLS or membership: each part keeps its own.

import {
  NoRespondersError,
  RequestError,
  TimeoutError,
  type NatsConnection,
  type QueuedIterator,
} from '@nats-io/transport-node';
import { JetStreamApiCodes, JetStreamApiError, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { Logger } from 'pino';
import { SidecacheError, logError } from '../../core/errors.js';
import type { NatsTls } from '../../core/transport-security.js';
import { logNames, type LogNames } from '../subjects.js';

export interface NatsLogOptions {
  readonly servers: readonly string[];
  readonly token?: string;
  readonly user?: string;
  readonly pass?: string;
  /** Contents of a .creds file (user JWT and nkey seed). */
  readonly creds?: Uint8Array;
  /** TLS required, with these PEM texts (transport-security.ts). */
  readonly tls?: NatsTls;
  readonly cluster: string;
  readonly self: Self;
  /** Replicas of the streams and buckets. Default: min(3, servers in the NATS cluster as
   *  the connected server reports them in connect_urls), at least 1. */
  readonly streamReplicas?: number;
  readonly heartbeatIntervalMs: number;
  /** A member not heard from for this long is removed from the view by its peers. */
  readonly heartbeatTtlMs: number;
  readonly invalMaxAgeMs: number;
  /** Size bound of INVAL. Default: no bound. */
  readonly invalMaxBytes?: number;
  readonly fillsMaxBytes: number;
  readonly fillsMaxAgeMs: number;
  /** Outstanding fill publishes; publishFill drops (and counts) beyond this. */
  readonly fillMaxInFlight: number;
  readonly logger: Logger;
  /** INVAL seq this sidecar already applied (a restart that kept its cache). Default: the
   *  end of the stream at start (a new sidecar has nothing to invalidate). */
  readonly initialAppliedSeq?: number;
  /** With no initialAppliedSeq: start from the first retained invalidation instead of the
   *  end of the stream. Applying them to an empty cache costs little and tells the cache
   *  which keys were purged after the fences of the fills it will replay (invariant 2). */
  readonly replayRetainedInvalidations?: boolean;
  /** How often the INVAL stream state is checked for a gap. Default 5000. */
  readonly gapCheckIntervalMs?: number;
  /** Total time invalidate() retries a publish (leader election: 4–7 s, §8). Default 10000. */
  readonly invalidateTimeoutMs?: number;
}

export interface Self {
  readonly id: string;
  readonly peerUrl: string;
  readonly partitions: number;
  readonly placement?: 'range';
}

export interface NatsLogStats {
  fillsPublished: number;
  fillsDropped: number;
  fillsApplied: number;
  /** Fills that could not be decoded: another fill version (a rolling upgrade), or malformed. */
  fillsUndecodable: number;
  invalApplied: number;
  gaps: number;
  replayed: number;
}

/** How long start() retries JetStream setup steps that time out. */
const SETUP_BUDGET_MS = 30_000;
const RESTART_DELAY_MS = 1_000;
export const nanosPerMs = 1_000_000;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Timeouts, no responders (no stream leader during an election, §8; JetStreamNotEnabled
 *  wraps it) and JetStream 503s are worth retrying; anything else is final. */
export function isRetryable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof TimeoutError || e instanceof NoRespondersError) return true;
    if (e instanceof RequestError && e.isNoResponders()) return true;
    if (e instanceof JetStreamApiError && e.status === 503) return true;
  }
  return false;
}

export function isApiError(err: unknown, ...codes: number[]): boolean {
  return err instanceof JetStreamApiError && codes.includes(err.code);
}

export function isCasConflict(err: unknown): boolean {
  return isApiError(err, JetStreamApiCodes.StreamWrongLastSequence, JetStreamApiCodes.StreamWrongLastSequenceUnknown);
}

export class Runtime {
  readonly opts: NatsLogOptions;
  readonly names: LogNames;
  readonly log: Logger;
  readonly self: Self;
  readonly stats: NatsLogStats = {
    fillsPublished: 0,
    fillsDropped: 0,
    fillsApplied: 0,
    fillsUndecodable: 0,
    invalApplied: 0,
    gaps: 0,
    replayed: 0,
  };

  /** Set by connect() (connection.ts), in that order. */
  nc: NatsConnection | undefined;
  js: JetStreamClient | undefined;
  jsm: JetStreamManager | undefined;

  started = false;
  /** start() finished: consumers and timers exist. */
  running = false;
  closing = false;
  attached = false;
  /** Local time of the start or the last reconnect: peers get a heartbeat grace from it. */
  attachedAt = 0;

  #timers: NodeJS.Timeout[] = [];
  #watchers: QueuedIterator<KvWatchEntry>[] = [];

  constructor(opts: NatsLogOptions) {
    this.opts = opts;
    this.names = logNames(opts.cluster);
    this.self = { id: opts.self.id, peerUrl: opts.self.peerUrl, partitions: opts.self.partitions, ...(opts.self.placement === undefined ? {} : { placement: opts.self.placement }) };
    this.log = opts.logger.child({ component: 'nats-log', cluster: opts.cluster, member: opts.self.id });
  }

  /** Stops every timer and KV watch (close()). */
  stopAll(): void {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    for (const w of this.#watchers) w.stop();
    this.#watchers = [];
  }

  /** An unref'd interval, stopped at close. */
  every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    t.unref();
    this.#timers.push(t);
  }

  /** Try `fn` again in a while, and again after each failure, until it succeeds or we close. */
  retryLater(fn: () => Promise<void>, what: string): void {
    const t = setTimeout(() => {
      this.#timers = this.#timers.filter((x) => x !== t);
      if (this.closing) return;
      fn().catch((err: unknown) => {
        if (this.closing) return;
        this.log.warn({ err, what }, 'retry failed; trying again');
        this.retryLater(fn, what);
      });
    }, RESTART_DELAY_MS);
    t.unref();
    this.#timers.push(t);
  }

  /** Run a JetStream setup step, retrying while JetStream is busy: sidecars of a cluster
   *  start together and create the same streams at once, and an R3 create can time out
   *  while the meta leader is busy or being elected. SidecacheErrors (bad config) are final. */
  async retrying<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + SETUP_BUDGET_MS;
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof SidecacheError) throw err;
        if (!isRetryable(err) || Date.now() >= deadline || this.closing) {
          throw logError(`cannot ${what}: ${describeError(err)}`, err);
        }
        this.log.warn({ err, what }, 'JetStream busy; retrying');
        await sleep(200 + Math.random() * 300);
      }
    }
  }

  /** Watch a KV bucket until close; a watch that ends early is opened again. */
  watch(kv: KV, key: string | undefined, onEntry: (e: KvWatchEntry) => void, what: string): void {
    const run = async (): Promise<void> => {
      const iter = await kv.watch(key === undefined ? {} : { key });
      if (this.closing) {
        iter.stop();
        return;
      }
      this.#watchers.push(iter);
      try {
        for await (const e of iter) onEntry(e);
      } finally {
        this.#watchers = this.#watchers.filter((w) => w !== iter);
      }
    };
    const loop = (): void => {
      run().then(
        () => {
          if (!this.closing) this.retryLater(async () => loop(), `watch ${what}`);
        },
        (err: unknown) => {
          if (this.closing) return;
          this.log.warn({ err, what }, 'KV watch failed; reopening it');
          this.retryLater(async () => loop(), `watch ${what}`);
        },
      );
    };
    loop();
  }
}
