// The JetStream implementation of ClusterLog: INVAL (ordered, never dropped, gap-checked),
// FILLS (bounded fire-and-forget publish, live consumer, last-per-subject replay), applied-seq
// acks on core NATS, and membership (heartbeats KV + a compare-and-set view KV).
// Facts it relies on are measured in /work/shared/NATS-2.9.md; section numbers refer to it.

import {
  connect,
  credsAuthenticator,
  headers,
  nuid,
  NoRespondersError,
  RequestError,
  TimeoutError,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type NodeConnectionOptions,
  type QueuedIterator,
  type Subscription,
} from '@nats-io/transport-node';
import {
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import { Kvm, type KV, type KvEntry, type KvWatchEntry } from '@nats-io/kv';
import type { Logger } from 'pino';
import { ErrorCode, SidecacheError, logError, redactCredentials } from '../core/errors.js';
import { describeTlsError, type NatsTls } from '../core/transport-security.js';
import { Backlog } from './backlog.js';
import {
  FILL_OP_DELETE,
  FILL_OP_HEADER,
  decodeAck,
  decodeFill,
  decodeHeartbeat,
  decodeInvalidation,
  decodeView,
  encodeAck,
  encodeFillPayload,
  encodeHeartbeat,
  encodeInvalidation,
  encodeView,
  type StoredView,
} from './codec.js';
import { fillSubject, heartbeatKey, logNames, parseFillSubject, type LogNames } from './subjects.js';
import type { ClusterLog, FillRecord, LogHandlers } from './types.js';
import type { Invalidation, Member, MemberState, PurgeAcks, View } from '../core/types.js';

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
  readonly self: { readonly id: string; readonly peerUrl: string; readonly partitions: number };
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

const MIN_SERVER = { major: 2, minor: 9 } as const;
const FILL_PUBLISH_TIMEOUT_MS = 5_000;
const INVAL_ATTEMPT_TIMEOUT_MS = 2_000;
const INVAL_RETRY_WAIT_MS = 100;
const CAS_BUDGET_MS = 10_000;
/** How long start() retries JetStream setup steps that time out. */
const SETUP_BUDGET_MS = 30_000;
/** Revisions the view bucket keeps: room for the losers of concurrent writes (#readView). */
const VIEW_HISTORY = 16;
const REPLAY_STALL_MS = 15_000;
const RESTART_DELAY_MS = 1_000;
/** At most one warning per this long about undecodable fills: during a rolling upgrade every
 *  fill of a member of the other version is one. */
const UNDECODABLE_WARN_INTERVAL_MS = 60_000;
const EMPTY = new Uint8Array(0);
const EMPTY_VIEW: View = Object.freeze({ epoch: 0, members: Object.freeze([]) as readonly Member[] });
const nanosPerMs = 1_000_000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Timeouts, no responders (no stream leader during an election, §8; JetStreamNotEnabled
 *  wraps it) and JetStream 503s are worth retrying; anything else is final. */
function isRetryable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof TimeoutError || e instanceof NoRespondersError) return true;
    if (e instanceof RequestError && e.isNoResponders()) return true;
    if (e instanceof JetStreamApiError && e.status === 503) return true;
  }
  return false;
}

const INCARNATION_TAG = 'incarnation ';
const MSG_ID_HEADER = 'Nats-Msg-Id';

/** The INVAL stream's incarnation id, from the description we set when creating it; a
 *  stream made by hand without one has the empty incarnation. */
function incarnationOf(info: StreamInfo): string {
  const d = info.config.description ?? '';
  const at = d.lastIndexOf(INCARNATION_TAG);
  return at < 0 ? d : d.slice(at + INCARNATION_TAG.length);
}

function isApiError(err: unknown, ...codes: number[]): boolean {
  return err instanceof JetStreamApiError && codes.includes(err.code);
}

function isCasConflict(err: unknown): boolean {
  return isApiError(err, JetStreamApiCodes.StreamWrongLastSequence, JetStreamApiCodes.StreamWrongLastSequenceUnknown);
}

function sameMember(a: Member, b: Member): boolean {
  return a.id === b.id && a.peerUrl === b.peerUrl && a.state === b.state && a.partitions === b.partitions;
}

function byId(a: Member, b: Member): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

interface Applied {
  readonly seq: number;
  readonly incarnation: string | undefined;
}

/** Our INVAL cursor at one moment: the seq applied and the Nats-Msg-Id of that message. */
interface AppliedCursor {
  readonly seq: number;
  readonly msgId: string | undefined;
}

/** Our own invalidations our consumer applied before their publish returned: a few hundred
 *  is more than the publishes one sidecar has in flight. */
const OWN_APPLIED_MAX = 1024;

interface Waiter {
  readonly seq: number;
  settle(final: boolean): void;
}

/** One setting we send and later read back; `critical` settings of an existing stream must
 *  match (the log would misbehave), the others only earn a warning. */
interface Setting {
  readonly field: keyof StreamConfig;
  readonly value: unknown;
  readonly critical: boolean;
}

export class NatsLog implements ClusterLog {
  readonly #opts: NatsLogOptions;
  readonly #names: LogNames;
  readonly #log: Logger;
  readonly #self: { readonly id: string; readonly peerUrl: string; readonly partitions: number };
  readonly #stats: NatsLogStats = {
    fillsPublished: 0,
    fillsDropped: 0,
    fillsApplied: 0,
    fillsUndecodable: 0,
    invalApplied: 0,
    gaps: 0,
    replayed: 0,
  };

  #handlers: LogHandlers | undefined;
  #nc: NatsConnection | undefined;
  #js: JetStreamClient | undefined;
  #jsm: JetStreamManager | undefined;
  #hbKv: KV | undefined;
  #viewKv: KV | undefined;
  #ackSub: Subscription | undefined;
  #watchers: QueuedIterator<KvWatchEntry>[] = [];
  #timers: NodeJS.Timeout[] = [];
  #heartbeatTimer: NodeJS.Timeout | undefined;

  #started = false;
  /** start() finished: consumers and timers exist. */
  #running = false;
  #closing = false;
  #attached = false;
  /** Local time of the start or the last reconnect: peers get a heartbeat grace from it. */
  #attachedAt = 0;

  // INVAL
  #appliedSeq = 0;
  /** Incarnation of the INVAL stream our seqs belong to (see codec.ts, incarnationOf). */
  #incarnation = '';
  #invalConsumer: ConsumerMessages | undefined;
  #invalGen = 0;
  /** What the last periodic check saw, to notice a consumer that stopped delivering. */
  #invalProgress = { appliedSeq: 0, behind: false };
  #invalNeedsRestart = false;
  /** The stream was reset keeping the old id: #stampIncarnation must give it a new one. */
  #stampDue = false;
  /** Nats-Msg-Id of the message at appliedSeq, to recognise the stream (#isSameStream). */
  #appliedMsgId: string | undefined;
  /** Nats-Msg-Id -> seq of our own invalidations as our consumer applied them: a publish
   *  acknowledged after they were applied (and later ones) is no seq numbered twice. */
  readonly #ownApplied = new Map<string, number>();
  /** Invalidations we know the stream holds and have not applied, and since when. */
  readonly #backlog = new Backlog();
  #invalOps: Promise<void> = Promise.resolve();
  /** Resets of the INVAL stream seen (seqs restarted): a catchUp target of the old numbering is void. */
  #resets = 0;
  #ackScheduled = false;
  /** Member id -> latest applied seq it reported (ack or heartbeat). */
  readonly #acks = new Map<string, Applied>();
  readonly #waiters = new Set<Waiter>();

  // FILLS
  #fillConsumer: ConsumerMessages | undefined;
  #fillGen = 0;
  #fillsLastSeq = 0;
  #fillsInFlight = 0;
  #undecodableWarnedAt = -Infinity;

  // Membership
  #view: View = EMPTY_VIEW;
  #myState: MemberState | undefined;
  #left = false;
  #heartbeatPending = false;
  /** The highest INVAL seq we published in the current stream (0 after a reset). With our
   *  applied seq it bounds what any member can truly have applied: see #knownLastSeq. */
  #publishedSeq = 0;
  #recoverPending = false;
  #departuresPending = false;
  #rejoinPending = false;
  /** Member id -> local time its last heartbeat was seen. */
  readonly #lastSeen = new Map<string, number>();
  /** Member id -> local time it first appeared in a view we adopted. */
  readonly #inViewSince = new Map<string, number>();
  /** Heartbeat KV key -> member id, to map a DEL back to its member. */
  readonly #hbKeyToId = new Map<string, string>();
  // Our lease (DESIGN invariant 1 for a member cut off from NATS while its peers are not):
  // peers drop a member whose last stored heartbeat is older than the TTL, and purges stop
  // waiting for it; so from TTL less one interval after the start of our last stored heartbeat,
  // nothing is served as fresh here. After such a lapse, or after a view that drops us, not
  // until a heartbeat is stored again, the view lists us, and we have applied every
  // invalidation the log held then.
  /** performance.now() at the start of our last heartbeat put (or registration) that was stored. */
  #heartbeatOkAt: number | undefined;
  /** A lapse or a drop was seen and is not yet cleared by a stored heartbeat, a view listing us, and recoverSeq. */
  #recovering = false;
  #recoverSeq = 0;

  constructor(opts: NatsLogOptions) {
    this.#opts = opts;
    this.#names = logNames(opts.cluster);
    this.#self = { id: opts.self.id, peerUrl: opts.self.peerUrl, partitions: opts.self.partitions };
    this.#log = opts.logger.child({ component: 'nats-log', cluster: opts.cluster, member: opts.self.id });
  }

  /** Must every entry be revalidated before it is served? While our lease has lapsed, or we
   *  are catching up after a lapse or a drop from the view (see #heartbeatOkAt). */
  mustRevalidate(): boolean {
    const ok = this.#heartbeatOkAt;
    if (ok === undefined) return false;
    return performance.now() - ok > this.#leaseMs() || this.#recovering || this.#appliedSeq < this.#recoverSeq;
  }

  /** For how long we have known that the stream holds invalidations we have not applied
   *  (our own publishes, its last seq at a check): 0 when none. A member whose deliveries
   *  stall while it stays attached must stop trusting its cache after a while (Backlog). */
  behindMs(): number {
    return this.#backlog.behindMs(performance.now());
  }

  #leaseMs(): number {
    return this.#opts.heartbeatTtlMs - this.#opts.heartbeatIntervalMs;
  }

  get appliedSeq(): number {
    return this.#appliedSeq;
  }

  get incarnation(): string {
    return this.#incarnation;
  }

  get attached(): boolean {
    return this.#attached;
  }

  get view(): View {
    return this.#view;
  }

  /** Member ids this log holds state for (acks, heartbeats seen): bounded by the view and the
   *  members heartbeating now, however many have come and gone. */
  get trackedMembers(): number {
    return new Set([...this.#acks.keys(), ...this.#lastSeen.keys(), ...this.#hbKeyToId.values()]).size;
  }

  /** Live counters; read them, do not write them. */
  get stats(): Readonly<NatsLogStats> {
    return this.#stats;
  }

  // ---- start / close ------------------------------------------------------------------

  async start(handlers: LogHandlers): Promise<void> {
    if (this.#started) throw logError('NatsLog.start: already started');
    this.#started = true;
    this.#handlers = handlers;
    try {
      await this.#connect();
      this.#attached = true;
      this.#attachedAt = Date.now();
      this.#watchConnection();
      const replicas = this.#replicas();
      await this.#ensureStreams(replicas);
      await this.#openBuckets(replicas);
      this.#subscribeAcks();
      await this.#retrying('read the membership view', () => this.#startMembership());
      await this.#retrying('start consuming INVAL', () => this.#startInval());
      await this.#retrying('start consuming FILLS', () => this.#startFills());
      this.#startTimers();
      this.#running = true;
      this.#log.info(
        { servers: this.#opts.servers.map(redactCredentials), replicas, appliedSeq: this.#appliedSeq, epoch: this.#view.epoch },
        'attached to the NATS log',
      );
    } catch (err) {
      await this.close().catch(() => undefined);
      if (err instanceof SidecacheError) throw err;
      throw logError(`cannot start the NATS log: ${describeError(err)}`, err);
    }
  }

  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    if (this.#heartbeatTimer !== undefined) clearInterval(this.#heartbeatTimer);
    for (const w of this.#watchers) w.stop();
    this.#watchers = [];
    this.#invalGen++;
    this.#fillGen++;
    this.#invalConsumer?.stop();
    this.#fillConsumer?.stop();
    this.#ackSub?.unsubscribe();
    for (const w of [...this.#waiters]) w.settle(true);
    const nc = this.#nc;
    this.#attached = false;
    if (nc === undefined || nc.isClosed()) return;
    // Drain flushes our last acks and heartbeats; a connection that cannot reach a server
    // would wait forever, so bound it.
    await Promise.race([nc.drain().catch(() => undefined), sleep(2_000)]);
    if (!nc.isClosed()) await nc.close().catch(() => undefined);
  }

  async #connect(): Promise<void> {
    const o = this.#opts;
    const copts: NodeConnectionOptions = {
      servers: [...o.servers],
      name: o.self.id,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      // Notice a silent server within ~20 s rather than the default 4 minutes.
      pingInterval: 10_000,
      maxPingOut: 2,
    };
    if (o.token !== undefined) copts.token = o.token;
    if (o.user !== undefined) copts.user = o.user;
    if (o.pass !== undefined) copts.pass = o.pass;
    if (o.creds !== undefined) copts.authenticator = credsAuthenticator(o.creds);
    if (o.tls !== undefined) copts.tls = { ...o.tls };
    const describe = (err: unknown): string => describeTlsError(err, { ca: 'SIDECACHE_NATS_TLS_CA', cert: 'SIDECACHE_NATS_TLS_CERT' });
    try {
      this.#nc = await connect(copts);
    } catch (err) {
      let why = describe(err);
      if (err instanceof TimeoutError) {
        // Retrying, the client forgets why each attempt failed (a server that refuses our
        // certificate or credentials after the handshake looks like a timeout): one attempt
        // without retries says.
        const probe = await connect({ ...copts, reconnect: false, timeout: 5_000 }).then(
          async (nc) => { await nc.close().catch(() => undefined); return undefined; },
          (e: unknown) => (e instanceof TimeoutError ? undefined : describe(e)),
        );
        if (probe !== undefined) why += ` (a single attempt says: ${probe})`;
        // A server that refuses our certificate may reset the connection before its alert is read.
        if (probe !== undefined && o.tls !== undefined && /ECONNRESET/.test(probe)) {
          why += '; a reset right after the TLS handshake is how a server may refuse our certificate (SIDECACHE_NATS_TLS_CERT) or its absence';
        }
      }
      throw logError(`cannot connect to NATS at ${o.servers.map(redactCredentials).join(', ')}: ${why}`, err);
    }
    const info = this.#nc.info;
    const version = info?.version ?? 'unknown';
    const m = /^v?(\d+)\.(\d+)\./.exec(version);
    const major = m ? Number(m[1]) : 0;
    const minor = m ? Number(m[2]) : 0;
    if (major < MIN_SERVER.major || (major === MIN_SERVER.major && minor < MIN_SERVER.minor)) {
      throw logError(
        `nats-server ${version} is too old: sidecache needs ${MIN_SERVER.major}.${MIN_SERVER.minor} or newer ` +
          '(R3 streams, MaxMsgsPerSubject, direct get, KV compare-and-set)',
      );
    }
    if (info?.jetstream !== true) {
      throw logError(`nats-server ${version} at ${this.#nc.getServer()} has JetStream disabled (start it with -js)`);
    }
    this.#js = jetstream(this.#nc);
    this.#jsm = await jetstreamManager(this.#nc);
  }

  #replicas(): number {
    if (this.#opts.streamReplicas !== undefined) return this.#opts.streamReplicas;
    const urls = new Set(this.#nc?.info?.connect_urls ?? []);
    return Math.max(1, Math.min(3, urls.size));
  }

  // ---- streams and buckets ------------------------------------------------------------

  #invalSettings(replicas: number): Setting[] {
    const o = this.#opts;
    return [
      { field: 'subjects', value: [this.#names.invalSubject], critical: true },
      { field: 'retention', value: RetentionPolicy.Limits, critical: true },
      // Every invalidation is kept until max_age: one per subject would lose them.
      { field: 'max_msgs_per_subject', value: -1, critical: true },
      { field: 'discard', value: DiscardPolicy.Old, critical: true },
      { field: 'sealed', value: false, critical: true },
      { field: 'storage', value: StorageType.File, critical: false },
      { field: 'num_replicas', value: replicas, critical: false },
      { field: 'max_age', value: o.invalMaxAgeMs * nanosPerMs, critical: false },
      // A flood of invalidations must not fill the servers' disks. What the bound discards is
      // lost to a sidecar that had not applied it yet: its cursor falls below first_seq and
      // the gap check flushes its cache (invariant 3), so discarding old is never a stale read.
      { field: 'max_bytes', value: o.invalMaxBytes ?? -1, critical: false },
      // invalidate() retries with the same msgID for invalidateTimeoutMs (§6, §8).
      { field: 'duplicate_window', value: Math.min(120_000, o.invalMaxAgeMs) * nanosPerMs, critical: false },
      { field: 'allow_direct', value: true, critical: false },
    ];
  }

  #fillsSettings(replicas: number): Setting[] {
    const o = this.#opts;
    return [
      { field: 'subjects', value: [this.#names.fillsWildcard], critical: true },
      { field: 'retention', value: RetentionPolicy.Limits, critical: true },
      // The compacted log (§2): replay relies on one message per subject.
      { field: 'max_msgs_per_subject', value: 1, critical: true },
      { field: 'sealed', value: false, critical: true },
      { field: 'discard', value: DiscardPolicy.Old, critical: false },
      { field: 'storage', value: StorageType.File, critical: false },
      { field: 'num_replicas', value: replicas, critical: false },
      { field: 'max_bytes', value: o.fillsMaxBytes, critical: false },
      { field: 'max_age', value: o.fillsMaxAgeMs * nanosPerMs, critical: false },
      { field: 'duplicate_window', value: Math.min(120_000, o.fillsMaxAgeMs) * nanosPerMs, critical: false },
      { field: 'allow_direct', value: true, critical: false },
    ];
  }

  async #ensureStreams(replicas: number): Promise<void> {
    const inval = await this.#ensureStream(this.#names.invalStream, this.#invalSettings(replicas), this.#invalCreateOnly());
    this.#incarnation = incarnationOf(inval);
    await this.#ensureStream(this.#names.fillsStream, this.#fillsSettings(replicas));
  }

  /** Create the stream, or verify the existing one; then read the config back (§1: 2.9
   *  drops settings it does not know without an error). */
  /** Set only when we create INVAL: a fresh id that tells this stream from a later one of
   *  the same name. StreamInfo.created cannot serve: on R3 it differs between replicas. */
  #invalCreateOnly(): Partial<StreamConfig> {
    return { description: `sidecache INVAL log of cluster ${this.#opts.cluster}; ${INCARNATION_TAG}${nuid.next()}` };
  }

  async #ensureStream(name: string, settings: Setting[], createOnly: Partial<StreamConfig> = {}): Promise<StreamInfo> {
    const jsm = this.#jsm!;
    return this.#retrying(`create or verify stream ${name}`, async () => {
      let info: StreamInfo | undefined;
      let created = false;
      try {
        info = await jsm.streams.info(name);
      } catch (err) {
        if (!isApiError(err, JetStreamApiCodes.StreamNotFound)) throw err;
      }
      if (info === undefined) {
        const cfg: Partial<StreamConfig> & { name: string } = { ...createOnly, name };
        for (const s of settings) (cfg as Record<string, unknown>)[s.field] = s.value;
        try {
          info = await jsm.streams.add(cfg);
          created = true;
        } catch (err) {
          // 10058: another sidecar created it a moment ago with other settings: verify theirs.
          if (!isApiError(err, 10058)) throw err;
          info = await jsm.streams.info(name);
        }
      }
      this.#verifyConfig(`stream ${name}`, info.config, settings, created);
      return info;
    });
  }

  /** Run a JetStream setup step, retrying while JetStream is busy: sidecars of a cluster
   *  start together and create the same streams at once, and an R3 create can time out
   *  while the meta leader is busy or being elected. SidecacheErrors (bad config) are final. */
  async #retrying<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + SETUP_BUDGET_MS;
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof SidecacheError) throw err;
        if (!isRetryable(err) || Date.now() >= deadline || this.#closing) {
          throw logError(`cannot ${what}: ${describeError(err)}`, err);
        }
        this.#log.warn({ err, what }, 'JetStream busy; retrying');
        await sleep(200 + Math.random() * 300);
      }
    }
  }

  #verifyConfig(what: string, config: StreamConfig, settings: Setting[], created: boolean): void {
    const bad: string[] = [];
    const badCritical: string[] = [];
    for (const s of settings) {
      const got = (config as unknown as Record<string, unknown>)[s.field];
      let ok: boolean;
      if (Array.isArray(s.value)) {
        ok = Array.isArray(got) && s.value.every((v) => (got as unknown[]).includes(v));
      } else if (s.field === 'max_msgs_per_subject' && s.value === -1) {
        ok = got === -1 || got === 0 || got === undefined; // 0 and absent also mean "no limit"
      } else if (typeof s.value === 'boolean') {
        ok = (got ?? false) === s.value;
      } else {
        ok = got === s.value;
      }
      if (!ok) {
        const line = `${s.field}: expected ${JSON.stringify(s.value)}, got ${JSON.stringify(got)}`;
        bad.push(line);
        if (s.critical) badCritical.push(line);
      }
    }
    if (created && bad.length > 0) {
      throw logError(
        `${what}: the server did not keep settings sidecache relies on (${bad.join('; ')}); ` +
          `nats-server ${this.#nc?.info?.version ?? '?'} ignores settings it does not know`,
      );
    }
    if (badCritical.length > 0) {
      throw logError(
        `${what} exists with an incompatible config (${badCritical.join('; ')}); ` +
          'delete it or point this sidecar at another cluster name',
      );
    }
    if (bad.length > 0) {
      this.#log.warn({ what, differences: bad }, 'existing stream has other settings than ours; keeping them');
    }
  }

  async #openBuckets(replicas: number): Promise<void> {
    const o = this.#opts;
    this.#hbKv = await this.#ensureBucket(this.#names.heartbeatBucket, { ttl: o.heartbeatTtlMs, history: 1, replicas }, [
      { field: 'max_msgs_per_subject', value: 1, critical: false },
      { field: 'max_age', value: o.heartbeatTtlMs * nanosPerMs, critical: false },
      { field: 'num_replicas', value: replicas, critical: false },
      { field: 'sealed', value: false, critical: true },
    ]);
    this.#viewKv = await this.#ensureBucket(this.#names.viewBucket, { history: VIEW_HISTORY, replicas }, [
      { field: 'max_msgs_per_subject', value: VIEW_HISTORY, critical: true },
      // A TTL would expire the agreed view.
      { field: 'max_age', value: 0, critical: true },
      { field: 'num_replicas', value: replicas, critical: false },
      { field: 'sealed', value: false, critical: true },
    ]);
  }

  async #ensureBucket(
    bucket: string,
    kvOpts: { ttl?: number; history: number; replicas: number },
    settings: Setting[],
  ): Promise<KV> {
    const jsm = this.#jsm!;
    const kvm = new Kvm(this.#js!);
    const streamName = `KV_${bucket}`;
    return this.#retrying(`create or verify KV bucket ${bucket}`, async () => {
      let existed = true;
      try {
        await jsm.streams.info(streamName);
      } catch (err) {
        if (!isApiError(err, JetStreamApiCodes.StreamNotFound)) throw err;
        existed = false;
      }
      let kv: KV;
      try {
        kv = existed ? await kvm.open(bucket) : await kvm.create(bucket, { ...kvOpts, storage: StorageType.File });
      } catch (err) {
        if (!isApiError(err, 10058)) throw err;
        existed = true;
        kv = await kvm.open(bucket);
      }
      const info = await jsm.streams.info(streamName);
      this.#verifyConfig(`KV bucket ${bucket}`, info.config, settings, !existed);
      return kv;
    });
  }

  // ---- INVAL ---------------------------------------------------------------------------

  async #startInval(): Promise<void> {
    const info = await this.#jsm!.streams.info(this.#names.invalStream);
    const state = info.state;
    const initial = this.#opts.initialAppliedSeq;
    if (initial === undefined) {
      // A new sidecar holds nothing an older invalidation could concern, except the fills
      // it is about to replay: with replayRetainedInvalidations it reads the history too.
      this.#appliedSeq = this.#opts.replayRetainedInvalidations ? Math.max(0, state.first_seq - 1) : state.last_seq;
      // Invalidations at or below it are not ours to know: fills fenced before it are unprovable.
      this.#handlers!.horizon(this.#appliedSeq);
    } else {
      this.#appliedSeq = initial;
      this.#checkGapWith(info, info.state.last_seq >= initial, 'start');
    }
    await this.#restartInvalConsumer();
    this.#scheduleAck();
  }

  /** Run INVAL cursor work one at a time: gap checks and consumer restarts interleave
   *  with each other otherwise. */
  #serialInval(fn: () => Promise<void>): Promise<void> {
    const p = this.#invalOps.then(fn);
    this.#invalOps = p.catch(() => undefined);
    return p;
  }

  /** Start an ordered consumer from appliedSeq+1 and swap it in. The old consumer keeps
   *  delivering until the new one exists: overlapping deliveries are dropped by seq in
   *  #onInval, so there is never a moment without a consumer. After a stream reset the old
   *  consumer's cursor belongs to the old numbering: `silenceOld` stops it at once. */
  async #restartInvalConsumer(silenceOld = false): Promise<void> {
    const js = this.#js!;
    if (silenceOld) this.#invalGen++;
    // If appliedSeq+1 was purged the server silently starts later (§5): #onInval sees the
    // jump in stream seq and reports the gap.
    const c = await js.consumers.get(this.#names.invalStream, {
      filter_subjects: this.#names.invalSubject,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: this.#appliedSeq + 1,
    });
    if (this.#closing) {
      void c.delete().catch(() => undefined);
      return;
    }
    const gen = ++this.#invalGen;
    const old = this.#invalConsumer;
    const msgs = await c.consume({
      max_messages: 256,
      // Short pulls mean a 2.5 s idle heartbeat: a consumer lost with its server is noticed
      // and recreated in ~5 s instead of the default ~30 s. Invalidations wait meanwhile.
      expires: 5_000,
      callback: (m) => {
        if (gen === this.#invalGen) this.#onInval(m);
      },
    });
    this.#invalConsumer = msgs;
    old?.stop();
    this.#invalProgress = { appliedSeq: this.#appliedSeq, behind: false };
    void msgs.closed().then((err) => {
      if (this.#closing || gen !== this.#invalGen) return;
      this.#log.warn({ err }, 'INVAL consumer stopped; restarting it');
      this.#retryLater(() => this.#serialInval(() => this.#restartInvalConsumer()), 'restart the INVAL consumer');
    });
  }

  #onInval(m: JsMsg): void {
    const seq = m.seq;
    if (seq <= this.#appliedSeq) return; // redelivered after a consumer restart
    if (seq > this.#appliedSeq + 1) {
      // INVAL seqs are contiguous (limits retention, we never delete single messages),
      // so a jump means those messages left the stream before we read them.
      this.#gap(
        `INVAL messages ${this.#appliedSeq + 1}..${seq - 1} are no longer in the stream (retention, purge or loss)`,
        this.#appliedSeq + 1,
        seq - 1,
      );
    }
    let inval: Invalidation | undefined;
    try {
      inval = decodeInvalidation(m.data);
    } catch (err) {
      // We cannot apply what we cannot read: treat it as lost, never skip it silently.
      this.#log.error({ err, seq }, 'undecodable invalidation');
      this.#gap(`undecodable invalidation at seq ${seq}: ${describeError(err)}`, seq, seq);
    }
    if (inval !== undefined) {
      try {
        this.#handlers!.invalidation(seq, inval);
        this.#stats.invalApplied++;
      } catch (err) {
        this.#log.error({ err, seq }, 'invalidation handler threw');
        this.#gap(`the invalidation handler failed at seq ${seq}: ${describeError(err)}`, seq, seq);
      }
    }
    this.#appliedSeq = seq;
    this.#backlog.applied(seq);
    this.#appliedMsgId = m.headers?.get(MSG_ID_HEADER) || undefined;
    if (this.#appliedMsgId?.startsWith(`${this.#self.id}-`) === true) {
      this.#ownApplied.set(this.#appliedMsgId, seq);
      if (this.#ownApplied.size > OWN_APPLIED_MAX) this.#ownApplied.delete(this.#ownApplied.keys().next().value!);
    }
    this.#scheduleAck();
    this.#checkWaiters();
  }

  /** Report lost INVAL messages fromSeq..toSeq and move the cursor past them. */
  #gap(reason: string, fromSeq: number, toSeq: number): void {
    this.#stats.gaps++;
    this.#log.warn({ reason, fromSeq, toSeq }, 'INVAL gap: flushing what cannot be proven fresh');
    try {
      this.#handlers!.gap(reason, fromSeq, toSeq);
    } catch (err) {
      this.#log.error({ err }, 'gap handler threw');
    }
    this.#appliedSeq = toSeq;
    this.#backlog.applied(toSeq);
    this.#appliedMsgId = undefined;
    // What could not be proven fresh is gone: nothing left to catch up on.
    this.#recoverSeq = 0;
  }

  /** Is `info` still the INVAL stream whose messages we applied? `before` is our cursor as it
   *  was when we asked for `info`: messages that arrive while the server answers move the
   *  cursor past the last seq it named, and that is no reset.
   *  A changed incarnation id alone does not prove a reset either: sidecars that create the
   *  stream at the same moment race in the meta layer and the last create's description wins
   *  after some of them read the first (seen on 2.9.10). So when the id changed, or we
   *  applied past what the answer holds, look at the message we had applied last: same seq,
   *  same Nats-Msg-Id means same stream. */
  async #isSameStream(info: StreamInfo, before: AppliedCursor): Promise<boolean> {
    const { first_seq: firstSeq, last_seq: lastSeq } = info.state;
    // Fewer messages than we had applied before asking: numbered afresh.
    if (lastSeq < before.seq) return false;
    const overtaken = lastSeq < this.#appliedSeq;
    if (!overtaken && incarnationOf(info) === this.#incarnation) return true;
    // Nothing applied yet: there is nothing a reset could have taken from us.
    if (before.seq === 0) return true;
    // Our last message aged out or was purged: the gap check flushes everything anyway.
    if (before.seq < firstSeq) return true;
    if (before.msgId === undefined) return false;
    const sm = await this.#jsm!.streams.getMessage(this.#names.invalStream, { seq: before.seq });
    return sm !== null && sm.header.get(MSG_ID_HEADER) === before.msgId;
  }

  /** Compare the stream's state with our cursor (invariant 3). `sameStream` comes from
   *  #isSameStream. Returns true when the consumer must restart (the stream was reset). */
  #checkGapWith(info: StreamInfo, sameStream: boolean, when: string): boolean {
    const { first_seq: firstSeq, last_seq: lastSeq } = info.state;
    const incarnation = incarnationOf(info);
    if (!sameStream) {
      // Deleted and recreated: seqs restarted; everything after our cursor is unknown.
      const old = this.#incarnation;
      this.#incarnation = incarnation;
      if (incarnation === old && when !== 'start') {
        // Recreated from a copy of the old config, id and all: fences of the two numberings
        // would look alike. A private id until #stampIncarnation gives the stream a new one, so
        // that nothing fenced before the reset is taken for current meanwhile.
        this.#incarnation = `${incarnation}#${nuid.next()}`;
        this.#stampDue = true;
      }
      // Applied seqs of the old stream mean nothing in the new one.
      this.#acks.clear();
      this.#ownApplied.clear();
      this.#backlog.clear();
      this.#publishedSeq = 0;
      this.#resets++;
      this.#gap(
        `INVAL stream ${this.#names.invalStream} was reset (incarnation ${incarnation || '?'}, was ${old || '?'}; ` +
          `last seq ${lastSeq}, we had applied ${this.#appliedSeq}) [${when}]`,
        this.#appliedSeq + 1,
        Math.max(0, firstSeq - 1),
      );
      return true;
    }
    if (incarnation !== this.#incarnation && !this.#stampDue) {
      this.#log.info({ incarnation, was: this.#incarnation }, 'INVAL stream id changed, same messages: keeping the cursor');
      this.#incarnation = incarnation;
    }
    if (firstSeq > this.#appliedSeq + 1) {
      this.#gap(
        `INVAL messages ${this.#appliedSeq + 1}..${firstSeq - 1} are no longer in the stream ` +
          `(first seq is ${firstSeq}) [${when}]`,
        this.#appliedSeq + 1,
        firstSeq - 1,
      );
    }
    return false;
  }

  /** Gap check against the server (periodic and on reconnect); recreates a deleted stream.
   *  The periodic check also restarts a consumer that made no progress between two checks
   *  while the stream had messages for it (a stuck consumer must not hide as "no news"). */
  #checkGap(when: 'periodic' | 'reconnect' | 'publish'): Promise<void> {
    return this.#serialInval(async () => {
      if (this.#closing) return;
      // Our cursor before we ask: the answer is compared with it, not with a cursor that our
      // consumer moved on while the server answered.
      const before: AppliedCursor = { seq: this.#appliedSeq, msgId: this.#appliedMsgId };
      let info: StreamInfo;
      try {
        info = await this.#jsm!.streams.info(this.#names.invalStream);
      } catch (err) {
        if (!isApiError(err, JetStreamApiCodes.StreamNotFound)) throw err;
        this.#log.warn({ stream: this.#names.invalStream }, 'INVAL stream is gone; recreating it');
        info = await this.#ensureStream(
          this.#names.invalStream,
          this.#invalSettings(this.#replicas()),
          this.#invalCreateOnly(),
        );
      }
      const reset = this.#checkGapWith(info, await this.#isSameStream(info, before), when);
      this.#backlog.learn(info.state.last_seq, this.#appliedSeq, performance.now());
      if (this.#stampDue) await this.#stampIncarnation(info);
      // A restart that failed last time (JetStream busy electing) is due now.
      let restart = reset || this.#invalNeedsRestart;
      const behind = info.state.last_seq > this.#appliedSeq;
      if (when === 'periodic' && behind && this.#invalProgress.behind && this.#invalProgress.appliedSeq === this.#appliedSeq) {
        this.#log.warn(
          { appliedSeq: this.#appliedSeq, lastSeq: info.state.last_seq },
          'INVAL consumer made no progress since the last check; restarting it',
        );
        restart = true;
      }
      if (restart) {
        this.#invalNeedsRestart = true;
        await this.#restartInvalConsumer(reset);
        this.#invalNeedsRestart = false;
      } else if (when === 'periodic') {
        this.#invalProgress = { appliedSeq: this.#appliedSeq, behind };
      }
      this.#scheduleAck();
      this.#checkWaiters();
    });
  }

  /** The stream was reset but kept the old one's id (see #checkGapWith): give it a fresh one.
   *  Members that stamp at the same moment, or read the old id meanwhile, adopt the one that
   *  stayed at their next check (same messages, new id); until then they ignore each other's
   *  fills and acks. Retried at every check until it succeeds. */
  async #stampIncarnation(info: StreamInfo): Promise<void> {
    const d = info.config.description ?? '';
    const at = d.lastIndexOf(INCARNATION_TAG);
    const description = `${at < 0 ? `${d}${d === '' ? '' : '; '}` : d.slice(0, at)}${INCARNATION_TAG}${nuid.next()}`;
    try {
      const updated = await this.#jsm!.streams.update(this.#names.invalStream, { ...info.config, description });
      this.#incarnation = incarnationOf(updated);
      this.#stampDue = false;
      this.#log.warn({ incarnation: this.#incarnation }, 'INVAL was recreated with the old stream\'s id; gave it a new one');
    } catch (err) {
      this.#log.warn({ err }, 'INVAL was recreated with the old stream\'s id and a new one could not be set yet');
    }
  }

  async invalidate(inval: Invalidation): Promise<number> {
    const js = this.#js;
    if (!this.#started || this.#closing || js === undefined) {
      throw logError('invalidate: the NATS log is not running');
    }
    if (!this.#attached) {
      throw logError(`NATS is unreachable (${this.#opts.servers.map(redactCredentials).join(', ')}): the invalidation was not logged`);
    }
    const data = encodeInvalidation(inval);
    // One msgID for every retry: a publish that timed out may have been stored, and the
    // retry must then come back as a duplicate with the same seq (§6, §8).
    const msgID = `${this.#self.id}-${nuid.next()}`;
    const budgetMs = this.#opts.invalidateTimeoutMs ?? 10_000;
    const deadline = Date.now() + budgetMs;
    let lastErr: unknown;
    let seq: number | undefined;
    for (let attempt = 0; ; attempt++) {
      const remaining = deadline - Date.now();
      if (remaining <= 0 || this.#closing) break;
      try {
        const ack = await js.publish(this.#names.invalSubject, data, {
          msgID,
          timeout: Math.max(100, Math.min(INVAL_ATTEMPT_TIMEOUT_MS, remaining)),
        });
        if (attempt > 0) this.#log.info({ attempt, seq: ack.seq, duplicate: ack.duplicate }, 'invalidation stored after retry');
        seq = ack.seq;
        break;
      } catch (err) {
        lastErr = err;
        if (!isRetryable(err)) {
          throw logError(`cannot log the invalidation on ${this.#names.invalStream}: ${describeError(err)}`, err);
        }
        const wait = Math.min(INVAL_RETRY_WAIT_MS, deadline - Date.now());
        if (wait > 0) await sleep(wait);
      }
    }
    if (seq === undefined) {
      throw logError(
        `cannot log the invalidation on ${this.#names.invalStream} within ${budgetMs} ms ` +
          `(NATS unreachable or no stream leader): ${describeError(lastErr)}`,
        lastErr,
      );
    }
    // A seq at or below one we applied cannot be new in the stream we know, unless it is this
    // very message, already applied by our consumer (with others after it, when publishes
    // run concurrently): the stream was reset (perhaps recreated from a copy of its
    // configuration, which the id does not show). Find out before anyone's acknowledgement of
    // this seq is counted; if we cannot, the caller must not report it.
    const appliedAs = this.#ownApplied.get(msgID);
    this.#ownApplied.delete(msgID);
    if (seq <= this.#appliedSeq && appliedAs !== seq) {
      try {
        await this.#checkGap('publish');
      } catch (err) {
        throw logError(`the invalidation was stored at seq ${seq}, but whether ${this.#names.invalStream} was reset could not be checked: ${describeError(err)}`, err);
      }
    }
    this.#publishedSeq = Math.max(this.#publishedSeq, seq);
    this.#backlog.learn(seq, this.#appliedSeq, performance.now());
    if (inval.kind === 'all' && inval.soft !== true) await this.#purgeFills();
    return seq;
  }

  /** After a purge-all, the compacted FILLS log holds only purged content: empty it, so a
   *  sidecar joining after the ban's INVAL retention cannot replay it. */
  async #purgeFills(): Promise<void> {
    try {
      await this.#jsm!.streams.purge(this.#names.fillsStream);
    } catch (err) {
      // Replays refuse those fills anyway (their fences are below the ban, or below the
      // retained log once the ban has aged out); emptying FILLS keeps them from being
      // replayed and refused by every joiner until FILLS' max_age. A later purge also takes
      // fills stored after the ban: those replicas miss once.
      this.#log.warn({ err: describeError(err) }, 'purge-all: could not empty the FILLS stream; retrying');
      this.#retryLater(async () => {
        await this.#jsm!.streams.purge(this.#names.fillsStream);
        this.#log.info('purge-all: FILLS stream emptied after a retry');
      }, 'empty FILLS after a purge-all');
    }
  }

  async catchUp(): Promise<number> {
    if (!this.#running || this.#closing) throw logError('catchUp: the NATS log is not running');
    const started = Date.now();
    // A reset while we wait restarts the numbering: read the new stream's last seq and wait
    // for that instead (a few times at most; a stream reset over and over is an operator's
    // problem, and the gap it reports has flushed what we held).
    for (let round = 0; ; round++) {
      const info = await this.#retrying(`read the state of ${this.#names.invalStream}`, () =>
        this.#jsm!.streams.info(this.#names.invalStream),
      );
      const target = info.state.last_seq;
      const resets = this.#resets;
      await new Promise<void>((resolve) => {
        const waiter: Waiter = {
          seq: target,
          settle: (final) => {
            if (!final && this.#appliedSeq < target && this.#resets === resets) return;
            this.#waiters.delete(waiter);
            resolve();
          },
        };
        this.#waiters.add(waiter);
        waiter.settle(this.#closing);
      });
      if (this.#resets === resets || this.#closing || round >= 4) {
        this.#log.info({ target, appliedSeq: this.#appliedSeq, ms: Date.now() - started }, 'caught up with the retained invalidations');
        return target;
      }
    }
  }

  // ---- acks and waitApplied -------------------------------------------------------------

  #subscribeAcks(): void {
    this.#ackSub = this.#nc!.subscribe(this.#names.ackSubject, {
      callback: (err: Error | null, msg: Msg) => {
        if (err !== null) {
          this.#log.warn({ err }, 'ack subscription error');
          return;
        }
        try {
          const ack = decodeAck(msg.data);
          this.#noteApplied(ack.id, ack.seq, ack.incarnation);
        } catch (e) {
          this.#log.debug({ err: e }, 'ignoring an undecodable ack');
        }
      },
    });
  }

  /** Acks are cheap core-NATS messages; one per tick with the latest seq is enough. */
  #scheduleAck(): void {
    if (this.#ackScheduled) return;
    this.#ackScheduled = true;
    setImmediate(() => {
      this.#ackScheduled = false;
      const nc = this.#nc;
      if (nc === undefined || nc.isClosed() || this.#closing) return;
      try {
        nc.publish(
          this.#names.ackSubject,
          encodeAck({ id: this.#self.id, seq: this.#appliedSeq, incarnation: this.#incarnation }),
        );
      } catch (err) {
        this.#log.debug({ err }, 'cannot publish an ack');
      }
    });
  }

  #noteApplied(id: string, seq: number, incarnation: string | undefined): void {
    if (id === this.#self.id) return;
    if (incarnation !== undefined && incarnation !== this.#incarnation) return;
    const cur = this.#acks.get(id);
    // A higher ack than the stream holds is from before a reset: a lower one replaces it.
    if (cur !== undefined && cur.seq >= seq && cur.seq <= this.#knownLastSeq()) return;
    this.#acks.set(id, { seq, incarnation });
    this.#checkWaiters();
  }

  /** No member can have applied more of the current stream than exists in it: an ack above
   *  what we applied or published is counted in the numbering of a stream that was reset
   *  (an operator recreated INVAL from a copy of its configuration, so the id is the same)
   *  and proves nothing until that member has noticed the reset. A true ack above it (a
   *  peer applied another member's publish before we did) counts once we have applied it. */
  #knownLastSeq(): number {
    return Math.max(this.#appliedSeq, this.#publishedSeq);
  }

  #hasApplied(id: string, seq: number): boolean {
    if (id === this.#self.id) return this.#appliedSeq >= seq;
    const a = this.#acks.get(id);
    return a !== undefined && a.seq >= seq && a.seq <= this.#knownLastSeq();
  }

  #ackStatus(seq: number): PurgeAcks {
    const ids = new Set<string>([this.#self.id]);
    for (const m of this.#view.members) {
      if (m.state === 'active' || m.state === 'warming') ids.add(m.id);
    }
    const acknowledged: string[] = [];
    const missing: string[] = [];
    for (const id of ids) (this.#hasApplied(id, seq) ? acknowledged : missing).push(id);
    return { acknowledged, missing };
  }

  #checkWaiters(): void {
    for (const w of this.#waiters) w.settle(false);
  }

  waitApplied(seq: number, timeoutMs: number): Promise<PurgeAcks> {
    return new Promise<PurgeAcks>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter: Waiter = {
        seq,
        settle: (final) => {
          const status = this.#ackStatus(seq);
          if (status.missing.length > 0 && !final) return;
          if (timer !== undefined) clearTimeout(timer);
          this.#waiters.delete(waiter);
          resolve(status);
        },
      };
      this.#waiters.add(waiter);
      waiter.settle(this.#closing);
      if (this.#waiters.has(waiter)) timer = setTimeout(() => waiter.settle(true), Math.max(0, timeoutMs));
    });
  }

  // ---- FILLS ---------------------------------------------------------------------------

  async #startFills(): Promise<void> {
    const info = await this.#jsm!.streams.info(this.#names.fillsStream);
    this.#fillsLastSeq = info.state.last_seq;
    await this.#restartFillConsumer();
  }

  async #restartFillConsumer(): Promise<void> {
    const gen = ++this.#fillGen;
    const old = this.#fillConsumer;
    this.#fillConsumer = undefined;
    old?.stop();
    // DeliverPolicy.New would be wrong here: an ordered consumer that resets before its
    // first message restarts at seq 1 and would replay the whole stream. A start seq gives
    // the reset a cursor.
    const c = await this.#js!.consumers.get(this.#names.fillsStream, {
      filter_subjects: this.#names.fillsWildcard,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: this.#fillsLastSeq + 1,
    });
    if (gen !== this.#fillGen) {
      void c.delete().catch(() => undefined);
      return;
    }
    const msgs = await c.consume({
      max_messages: 512,
      expires: 10_000,
      callback: (m) => {
        if (gen !== this.#fillGen) return;
        this.#fillsLastSeq = m.seq;
        if (this.#deliverFill(m)) this.#stats.fillsApplied++;
      },
    });
    this.#fillConsumer = msgs;
    void msgs.closed().then((err) => {
      if (this.#closing || gen !== this.#fillGen) return;
      this.#log.warn({ err }, 'FILLS consumer stopped; restarting it');
      this.#retryLater(() => this.#restartFillConsumer(), 'restart the FILLS consumer');
    });
  }

  /** Decode a FILLS message and hand it to the cache; false if it was not delivered. */
  #deliverFill(m: JsMsg, partitions?: ReadonlySet<number>): boolean {
    const where = parseFillSubject(this.#names, m.subject);
    if (where === undefined) return false;
    if (partitions !== undefined && !partitions.has(where.partition)) return false;
    let record: FillRecord;
    try {
      const tombstone = m.headers?.get(FILL_OP_HEADER) === FILL_OP_DELETE;
      record = decodeFill(where.partition, where.subjectKey, m.data, tombstone);
    } catch (err) {
      this.#stats.fillsUndecodable++;
      const now = performance.now();
      if (now - this.#undecodableWarnedAt >= UNDECODABLE_WARN_INTERVAL_MS) {
        this.#undecodableWarnedAt = now;
        this.#log.warn({ err, subject: m.subject, seq: m.seq, undecodable: this.#stats.fillsUndecodable }, 'ignoring undecodable fills (counted in sidecache_fills_undecodable)');
      }
      return false;
    }
    try {
      this.#handlers!.fill(record, m.seq, partitions !== undefined);
    } catch (err) {
      this.#log.error({ err, seq: m.seq }, 'fill handler threw');
      return false;
    }
    return true;
  }

  publishFill(record: FillRecord): void {
    const js = this.#js;
    if (!this.#attached || this.#closing || js === undefined || this.#fillsInFlight >= this.#opts.fillMaxInFlight) {
      this.#stats.fillsDropped++;
      return;
    }
    const subject =
      record.partition < this.#self.partitions ? fillSubject(this.#names, record.partition, record.subjectKey) : undefined;
    if (subject === undefined) {
      this.#stats.fillsDropped++;
      this.#log.warn({ partition: record.partition, subjectKey: record.subjectKey }, 'dropping a fill with an invalid subject');
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
    this.#fillsInFlight++;
    js.publish(subject, payload, opts).then(
      () => {
        this.#fillsInFlight--;
        this.#stats.fillsPublished++;
      },
      (err: unknown) => {
        this.#fillsInFlight--;
        this.#stats.fillsDropped++;
        this.#log.debug({ err, subject }, 'fill publish failed');
      },
    );
  }

  async replayFills(partitions: ReadonlySet<number>): Promise<number> {
    const js = this.#js;
    if (!this.#started || this.#closing || js === undefined) throw logError('replayFills: the NATS log is not running');
    if (partitions.size === 0) return 0;
    // One consumer on fill.> with last-per-subject, filtered here: 2,000 keys in <0.1 s,
    // against 1.4–2.8 s for per-partition consumers (§3).
    let c;
    try {
      c = await js.consumers.get(this.#names.fillsStream, {
        filter_subjects: this.#names.fillsWildcard,
        deliver_policy: DeliverPolicy.LastPerSubject,
      });
    } catch (err) {
      throw logError(`cannot replay ${this.#names.fillsStream}: ${describeError(err)}`, err);
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
            reject(logError(`replay of ${this.#names.fillsStream} stalled: no message for ${REPLAY_STALL_MS} ms`));
          }, REPLAY_STALL_MS);
        };
        arm();
        let finished = false;
        c.consume({
          max_messages: 1000,
          callback: (m) => {
            if (finished) return;
            if (this.#deliverFill(m, partitions)) count++;
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
              reject(logError(`replay of ${this.#names.fillsStream} stopped early: ${describeError(err)}`, err));
            });
          },
          (err: unknown) => {
            clearTimeout(stall);
            reject(logError(`cannot replay ${this.#names.fillsStream}: ${describeError(err)}`, err));
          },
        );
      });
    } finally {
      msgs?.stop();
      void c.delete().catch(() => undefined);
    }
    this.#stats.replayed += count;
    return count;
  }

  // ---- membership ----------------------------------------------------------------------

  async #startMembership(): Promise<void> {
    this.#adoptView((await this.#readView()).view);
    this.#watch(this.#viewKv!, this.#names.viewKey, (e) => this.#onViewEntry(e), 'view');
    this.#watch(this.#hbKv!, undefined, (e) => this.#onHeartbeatEntry(e), 'heartbeats');
    await this.#putHeartbeat();
  }

  /** Watch a KV bucket until close; a watch that ends early is opened again. */
  #watch(kv: KV, key: string | undefined, onEntry: (e: KvWatchEntry) => void, what: string): void {
    const run = async (): Promise<void> => {
      const iter = await kv.watch(key === undefined ? {} : { key });
      if (this.#closing) {
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
          if (!this.#closing) this.#retryLater(async () => loop(), `watch ${what}`);
        },
        (err: unknown) => {
          if (this.#closing) return;
          this.#log.warn({ err, what }, 'KV watch failed; reopening it');
          this.#retryLater(async () => loop(), `watch ${what}`);
        },
      );
    };
    loop();
  }

  #onViewEntry(e: KvWatchEntry): void {
    if (e.operation !== 'PUT') return;
    let stored: StoredView;
    try {
      stored = decodeView(e.value);
    } catch (err) {
      this.#log.error({ err, revision: e.revision }, 'ignoring an undecodable view');
      return;
    }
    // A write that lost a compare-and-set race the server let through (see #readView).
    if (e.revision !== stored.prevRevision + 1) return;
    this.#adoptView(stored.view);
  }

  #onHeartbeatEntry(e: KvWatchEntry): void {
    if (e.operation !== 'PUT') {
      // An explicit delete: the member left (leave() also removes it from the view).
      const id = this.#hbKeyToId.get(e.key);
      if (id !== undefined) this.#lastSeen.delete(id);
      return;
    }
    try {
      const hb = decodeHeartbeat(e.value);
      this.#hbKeyToId.set(e.key, hb.id);
      this.#lastSeen.set(hb.id, Date.now());
      this.#noteApplied(hb.id, hb.appliedSeq, hb.incarnation);
    } catch (err) {
      this.#log.debug({ err, key: e.key }, 'ignoring an undecodable heartbeat');
    }
  }

  #adoptView(view: View): void {
    if (view.epoch <= this.#view.epoch) return;
    const now = Date.now();
    const ids = new Set<string>();
    for (const m of view.members) {
      ids.add(m.id);
      if (!this.#inViewSince.has(m.id)) this.#inViewSince.set(m.id, now);
    }
    for (const id of [...this.#inViewSince.keys()]) if (!ids.has(id)) this.#inViewSince.delete(id);
    // What we track per member ends with its membership, or members churning grow it forever.
    // A member not yet registered is forgotten too: its next heartbeat or ack brings it back.
    for (const id of [...this.#acks.keys()]) if (!ids.has(id)) this.#acks.delete(id);
    for (const id of [...this.#lastSeen.keys()]) if (!ids.has(id)) this.#lastSeen.delete(id);
    for (const [key, id] of [...this.#hbKeyToId]) if (!ids.has(id)) this.#hbKeyToId.delete(key);
    this.#view = view;
    this.#log.info({ epoch: view.epoch, members: view.members.map((m) => `${m.id}:${m.state}`) }, 'new view');
    try {
      this.#handlers!.view(view);
    } catch (err) {
      this.#log.error({ err }, 'view handler threw');
    }
    this.#checkWaiters();
    if (this.#myState !== undefined && !this.#left && !this.#closing && !ids.has(this.#self.id)) {
      // Dropped: purges stopped waiting for us, so we are fenced as after a lapse (see
      // #heartbeatOkAt) until we are listed again and have caught up.
      this.#recovering = true;
      this.#rejoin();
    }
  }

  /** Our peers removed us (they missed our heartbeats, e.g. a long disconnect): register
   *  again with our last state. */
  #rejoin(): void {
    if (this.#rejoinPending) return;
    this.#rejoinPending = true;
    this.#log.warn({ epoch: this.#view.epoch }, 'this sidecar is no longer in the view; registering again');
    const state = this.#myState!;
    this.setState(state)
      .catch((err: unknown) => this.#log.error({ err }, 'cannot register again'))
      .finally(() => {
        this.#rejoinPending = false;
      });
  }

  async setState(state: MemberState): Promise<void> {
    if (!this.#started || this.#closing) throw logError('setState: the NATS log is not running');
    const { id, peerUrl, partitions } = this.#self;
    const me: Member = { id, peerUrl, state, partitions };
    const startedAt = performance.now();
    await this.#changeView(`set ${me.id} ${state}`, (cur) => {
      const other = cur.members.find((m) => m.id !== me.id && m.partitions !== me.partitions);
      if (other !== undefined) {
        throw new SidecacheError(
          ErrorCode.log,
          `partitions mismatch: cluster has ${other.partitions}, this sidecar ${me.partitions}`,
        );
      }
      const existing = cur.members.find((m) => m.id === me.id);
      if (existing !== undefined && sameMember(existing, me)) return null;
      return [...cur.members.filter((m) => m.id !== me.id), me].sort(byId);
    });
    this.#myState = state;
    this.#left = false;
    // Registered: peers count our silence from now at the earliest.
    this.#heartbeatOkAt = Math.max(this.#heartbeatOkAt ?? 0, startedAt);
    if (this.#heartbeatTimer === undefined) this.#startHeartbeat();
  }

  async leave(): Promise<void> {
    if (!this.#started || this.#closing) throw logError('leave: the NATS log is not running');
    this.#left = true;
    this.#myState = undefined;
    this.#heartbeatOkAt = undefined;
    this.#recovering = false;
    if (this.#heartbeatTimer !== undefined) clearInterval(this.#heartbeatTimer);
    this.#heartbeatTimer = undefined;
    const id = this.#self.id;
    await this.#changeView(`remove ${id}`, (cur) =>
      cur.members.some((m) => m.id === id) ? cur.members.filter((m) => m.id !== id) : null,
    );
    try {
      await this.#hbKv!.delete(heartbeatKey(id));
    } catch (err) {
      this.#log.warn({ err }, 'cannot delete our heartbeat; it expires by TTL');
    }
  }

  /** The newest valid view and the bucket's last revision.
   *
   *  nats-server before 2.9.21 checks Nats-Expected-Last-Subject-Sequence before the Raft
   *  proposal, not in it (nats-server#4320): on an R3 bucket two concurrent kv.update calls
   *  with the same revision can BOTH succeed (seen here within ~1 ms). So a view write
   *  counts only if it was stored at prevRevision+1, i.e. directly after the revision it was
   *  computed from: the bucket holds only the view key, so any other write in between
   *  takes that seq. Losers of such a race are stored but invalid; everyone skips them, and
   *  the bucket keeps VIEW_HISTORY revisions so that the valid one before them is still
   *  there to read. */
  async #readView(): Promise<{ view: View; revision: number; keyExists: boolean }> {
    const kv = this.#viewKv!;
    const key = this.#names.viewKey;
    const latest = await kv.get(key);
    if (latest === null) {
      // Never written, or purged: the next write must follow the stream's last seq.
      const info = await this.#jsm!.streams.info(`KV_${this.#names.viewBucket}`);
      const revision = info.state.last_seq;
      return { view: { epoch: revision, members: [] }, revision, keyExists: false };
    }
    const revision = latest.revision;
    let e: KvEntry | null = latest;
    for (let i = 0; e !== null && i < VIEW_HISTORY; i++) {
      // Deleted by hand: start over empty, with an epoch above every earlier one (a valid
      // view's epoch never exceeds its revision).
      if (e.operation !== 'PUT') return { view: { epoch: e.revision, members: [] }, revision, keyExists: true };
      try {
        const stored = decodeView(e.value);
        if (e.revision === stored.prevRevision + 1) return { view: stored.view, revision, keyExists: true };
      } catch (err) {
        this.#log.error({ err, revision: e.revision }, 'skipping an undecodable view');
      }
      e = e.revision > 1 ? await kv.get(key, { revision: e.revision - 1 }) : null;
    }
    this.#log.error({ revision }, 'no valid view in the retained history; starting a new one');
    return { view: { epoch: revision, members: [] }, revision, keyExists: true };
  }

  /** Compare-and-set the view: read it, let `change` compute the new member list (null: no
   *  change needed), write it with epoch+1 only if nobody wrote in between; on a conflict
   *  read again. `change` must be idempotent: a write that timed out may have landed. */
  async #changeView(what: string, change: (cur: View) => Member[] | null): Promise<View> {
    const kv = this.#viewKv!;
    const key = this.#names.viewKey;
    const deadline = Date.now() + CAS_BUDGET_MS;
    for (let attempt = 0; ; attempt++) {
      let cur: View;
      let revision: number;
      let keyExists: boolean;
      try {
        ({ view: cur, revision, keyExists } = await this.#readView());
      } catch (err) {
        if (!isRetryable(err) || Date.now() >= deadline) {
          throw logError(`cannot ${what}: reading the view failed: ${describeError(err)}`, err);
        }
        await sleep(50 + Math.random() * 100);
        continue;
      }
      const members = change(cur);
      if (members === null) {
        this.#adoptView(cur);
        return cur;
      }
      const next: View = { epoch: Math.max(cur.epoch, this.#view.epoch) + 1, members };
      let stale = false;
      try {
        const data = encodeView({ view: next, prevRevision: revision });
        const seq = keyExists ? await kv.update(key, data, revision) : await kv.create(key, data);
        if (seq === revision + 1) {
          this.#adoptView(next);
          return next;
        }
        // Stored, but after someone else's write: invalid, everyone skips it (#readView).
        stale = true;
        this.#log.debug({ what, revision, seq }, 'view write lost a concurrent compare-and-set; retrying');
      } catch (err) {
        if ((!isCasConflict(err) && !isRetryable(err)) || Date.now() >= deadline) {
          throw logError(`cannot ${what}: writing the view failed: ${describeError(err)}`, err);
        }
      }
      if (Date.now() >= deadline) {
        throw logError(`cannot ${what}: the view kept changing for ${CAS_BUDGET_MS} ms${stale ? ' (lost races)' : ''}`);
      }
      // Someone else changed the view (or the write timed out): read and decide again.
      await sleep(Math.min(200, 10 * (attempt + 1)) * Math.random());
    }
  }

  #startHeartbeat(): void {
    this.#heartbeatTimer = setInterval(() => void this.#putHeartbeat(), this.#opts.heartbeatIntervalMs);
    this.#heartbeatTimer.unref();
  }

  async #putHeartbeat(): Promise<void> {
    if (this.#heartbeatPending || this.#closing || this.#left) return;
    this.#heartbeatPending = true;
    const startedAt = performance.now();
    if (this.#heartbeatOkAt !== undefined && startedAt - this.#heartbeatOkAt > this.#leaseMs() && !this.#recovering) {
      this.#recovering = true;
      this.#log.warn({ silentMs: Math.round(startedAt - this.#heartbeatOkAt) }, 'our heartbeats lapsed: revalidating every entry until we have caught up');
    }
    try {
      await this.#hbKv!.put(
        heartbeatKey(this.#self.id),
        encodeHeartbeat({
          id: this.#self.id,
          peerUrl: this.#self.peerUrl,
          appliedSeq: this.#appliedSeq,
          at: Date.now(),
          incarnation: this.#incarnation,
        }),
      );
      this.#heartbeatOkAt = Math.max(this.#heartbeatOkAt ?? 0, startedAt);
    } catch (err) {
      this.#log.debug({ err }, 'heartbeat put failed');
      return;
    } finally {
      this.#heartbeatPending = false;
    }
    // Not awaited by the heartbeat: on a slow link the recovery's reads take round trips of
    // their own, and heartbeats held back behind them would lapse the lease again, forever.
    // The fence holds meanwhile: #recovering stays set until the recovery has read the view.
    if (this.#recovering && !this.#recoverPending) {
      this.#recoverPending = true;
      this.#recover()
        .catch((err: unknown) => this.#log.debug({ err }, 'recovery after a lapse failed; the next heartbeat tries again'))
        .finally(() => { this.#recoverPending = false; });
    }
  }

  /** After a lapse or a drop, with a heartbeat stored again: purges may have skipped us. Stay
   *  fenced until the view lists us (the view watch registers us again when it does not), then
   *  catch up to the log's last seq as read after that: purges up to it may have skipped us,
   *  purges after it wait for us, as we are in the view. */
  async #recover(): Promise<void> {
    const { view } = await this.#readView();
    if (!view.members.some((m) => m.id === this.#self.id)) return;
    const info = await this.#jsm!.streams.info(this.#names.invalStream);
    this.#recoverSeq = Math.max(this.#recoverSeq, info.state.last_seq);
    this.#recovering = false;
    this.#log.info({ appliedSeq: this.#appliedSeq, recoverSeq: this.#recoverSeq }, 'heartbeats stored again; serving from the cache once caught up');
  }

  /** On 2.9 a KV watch sees nothing when a heartbeat expires (§7): every member tracks the
   *  members of the view itself and removes the silent ones by compare-and-set, so that
   *  several survivors agree on one new epoch. */
  async #checkDepartures(): Promise<void> {
    if (!this.#attached || this.#closing || this.#departuresPending) return;
    const now = Date.now();
    const ttl = this.#opts.heartbeatTtlMs;
    const silent = (m: Member): boolean => {
      if (m.id === this.#self.id) return false;
      const since = Math.max(this.#lastSeen.get(m.id) ?? 0, this.#inViewSince.get(m.id) ?? now, this.#attachedAt);
      return now - since > ttl;
    };
    const suspects = this.#view.members.filter(silent);
    if (suspects.length === 0) return;
    this.#departuresPending = true;
    try {
      // Our watcher may be behind: ask the bucket before removing anyone.
      const dead = new Set<string>();
      for (const m of suspects) {
        const e = await this.#hbKv!.get(heartbeatKey(m.id));
        if (e !== null && e.operation === 'PUT' && Date.now() - e.created.getTime() <= ttl) {
          this.#lastSeen.set(m.id, Math.max(this.#lastSeen.get(m.id) ?? 0, e.created.getTime()));
          continue;
        }
        dead.add(m.id);
      }
      if (dead.size === 0) return;
      this.#log.warn({ members: [...dead], ttlMs: ttl }, 'members stopped heartbeating; removing them from the view');
      await this.#changeView(`remove silent members ${[...dead].join(', ')}`, (cur) => {
        const left = cur.members.filter((m) => !dead.has(m.id));
        return left.length === cur.members.length ? null : left;
      });
    } catch (err) {
      this.#log.warn({ err }, 'departure check failed');
    } finally {
      this.#departuresPending = false;
    }
  }

  // ---- connection ----------------------------------------------------------------------

  #watchConnection(): void {
    const nc = this.#nc!;
    void (async () => {
      for await (const s of nc.status()) {
        switch (s.type) {
          case 'disconnect':
            this.#setAttached(false, s.server);
            break;
          case 'reconnect':
            this.#setAttached(true, s.server);
            this.#onReconnect();
            break;
          case 'error':
            this.#log.warn({ err: s.error }, 'NATS error');
            break;
          case 'ldm':
            this.#log.info({ server: s.server }, 'NATS server entering lame duck mode');
            break;
          default:
            break;
        }
      }
    })().catch((err: unknown) => this.#log.error({ err }, 'NATS status loop failed'));
    void nc.closed().then((err) => {
      if (this.#closing) return;
      this.#log.error({ err }, 'NATS connection closed for good');
      this.#setAttached(false, '');
    });
  }

  #setAttached(attached: boolean, server: string): void {
    if (this.#closing || this.#attached === attached) return;
    this.#attached = attached;
    if (attached) this.#attachedAt = Date.now();
    this.#log[attached ? 'info' : 'warn']({ server }, attached ? 'NATS reconnected' : 'NATS disconnected');
    try {
      this.#handlers!.attached(attached);
    } catch (err) {
      this.#log.error({ err }, 'attached handler threw');
    }
  }

  #onReconnect(): void {
    if (!this.#running) return; // start() is still setting up and checks the stream itself
    void this.#putHeartbeat();
    // The ordered consumer resumes by itself from the last seq it delivered, which is
    // appliedSeq (every delivery is applied synchronously). Check that the stream still
    // holds appliedSeq+1; a purge or a reset becomes a gap before anything later applies.
    this.#checkGap('reconnect').catch((err: unknown) => {
      this.#log.warn({ err }, 'gap check after reconnect failed; retrying');
      this.#retryLater(() => this.#checkGap('reconnect'), 'check INVAL after reconnect');
    });
  }

  #retryLater(fn: () => Promise<void>, what: string): void {
    const t = setTimeout(() => {
      this.#timers = this.#timers.filter((x) => x !== t);
      if (this.#closing) return;
      fn().catch((err: unknown) => {
        if (this.#closing) return;
        this.#log.warn({ err, what }, 'retry failed; trying again');
        this.#retryLater(fn, what);
      });
    }, RESTART_DELAY_MS);
    t.unref();
    this.#timers.push(t);
  }

  #startTimers(): void {
    this.#startHeartbeat();
    const gapEvery = this.#opts.gapCheckIntervalMs ?? 5_000;
    const gap = setInterval(() => {
      if (!this.#attached || this.#closing) return;
      this.#checkGap('periodic').catch((err: unknown) => this.#log.debug({ err }, 'periodic gap check failed'));
    }, gapEvery);
    const ttl = this.#opts.heartbeatTtlMs;
    const departures = setInterval(
      () => void this.#checkDepartures(),
      Math.max(100, Math.min(this.#opts.heartbeatIntervalMs, Math.floor(ttl / 4))),
    );
    gap.unref();
    departures.unref();
    this.#timers.push(gap, departures);
  }
}
