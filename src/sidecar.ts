// Sidecar: builds the pieces from a Config and runs them: proxy listener, admin listener,
// the log (in-process or JetStream) and, in cluster mode, the ring and peer port.
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { Server as NetServer, Socket } from 'node:net';
import type { Logger } from 'pino';
import { AccessLog } from './access-log.js';
import { ClusterReporter } from './admin/cluster-report.js';
import { inspectUrl, type KeyHolding } from './admin/inspect.js';
import { BadRequest } from './admin/purge-body.js';
import { AdminServer } from './admin/server.js';
import { memberStatus, type MemberStatus } from './cluster/member-status.js';
import { ControlPath, createPeerControl } from './cluster/peer-control.js';
import type { Config, Listen } from './core/config.js';
import { SingleNode, type Cluster } from './cluster/cluster.js';
import { Invalidator } from './cluster/invalidator.js';
import { WriteQueue } from './cluster/write-queue.js';
import { NatsLog } from './log/nats-log.js';
import { SoloLog } from './log/solo.js';
import { ClusterNode } from './cluster/node.js';
import { PeerVerifier } from './cluster/peer-auth.js';
import { createPeerServer, type PeerServer } from './cluster/peer-server.js';
import { PeerClient } from './cluster/peers.js';
import { placementOf } from './cluster/placement.js';
import type { InvalidationLog, LogHandlers, Membership } from './log/types.js';
import { Metrics } from './core/metrics.js';
import { Compressor } from './proxy/compress.js';
import { sendError } from './proxy/deliver.js';
import { Flights } from './proxy/flight.js';
import { ProxyHandler } from './proxy/handler.js';
import { OriginClient } from './proxy/origin.js';
import { createUpgradeHandler, handleConnect } from './proxy/tunnel.js';
import { Cache } from './store/cache.js';
import { describeKey } from './store/describe.js';
import { NotStoredLog } from './store/not-stored.js';

/**
 * llhttp's codes for a message whose length cannot be trusted (RFC 9112 §6.3). Each covers
 * several faults (HPE_UNEXPECTED_CONTENT_LENGTH is a duplicate Content-Length, or Content-Length
 * with Transfer-Encoding in some versions); the parser's `reason` says which one.
 */
const FRAMING_ERRORS: ReadonlySet<string> = new Set(['HPE_UNEXPECTED_CONTENT_LENGTH', 'HPE_INVALID_CONTENT_LENGTH', 'HPE_INVALID_TRANSFER_ENCODING']);

/** Node's parser errors -> the status a client should read. */
function clientErrorStatus(err: NodeJS.ErrnoException & { reason?: unknown }): [number, string] {
  const code = err.code;
  if (code === 'HPE_HEADER_OVERFLOW') return [431, 'request header fields too large'];
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return [408, 'request timeout'];
  if (code !== undefined && FRAMING_ERRORS.has(code)) {
    // The reason goes into the status line and body: printable ASCII only.
    const reason = typeof err.reason === 'string' ? err.reason.replace(/[^\x20-\x7e]/g, '').slice(0, 100) : '';
    return [400, `bad message framing: ${reason === '' ? code : reason}`];
  }
  return [400, `malformed request${code ? ` (${code})` : ''}`];
}

export function listen(server: NetServer, l: Listen): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(l.port, l.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

export class Sidecar {
  readonly config: Config;
  readonly logger: Logger;
  readonly cache: Cache;
  readonly metrics: Metrics;
  readonly log: InvalidationLog & Membership;
  readonly origin: OriginClient;
  readonly handler: ProxyHandler;
  readonly proxyServer: Server;
  readonly admin: AdminServer;
  /** This sidecar as a ring member, or a single node (no NATS): chosen from configuration. */
  readonly cluster: Cluster;
  readonly invalidator: Invalidator;
  readonly peerServer: PeerServer | undefined;
  readonly writeQueue: WriteQueue;
  readonly startedAt = Date.now();
  /** Why recent responses were not stored (sidecache inspect). */
  readonly notStored = new NotStoredLog();
  #ready = false;
  /** Out of the ring (POST /drain, or stopping): every hit is revalidated through the owners. */
  #draining = false;
  #stopping = false;
  #detachedSince: number | undefined;
  readonly #sockets = new Set<Socket>();

  constructor(config: Config, logger: Logger) {
    this.config = config;
    this.logger = logger;
    this.cache = new Cache({
      maxBytes: config.maxBytes,
      hotMaxBytes: config.hotMaxBytes,
      maxVariants: config.maxVariants,
      historyMaxBytes: config.invalHistoryBytes,
      onEvict: () => this.metrics.evictions.inc(),
      incarnation: () => this.log.incarnation,
    });
    const self = { id: config.nodeId, peerUrl: config.peerUrl, partitions: config.partitions, ...(config.placement === 'range' ? { placement: 'range' as const } : {}) };
    const nats = config.natsUrls.length === 0
      ? undefined
      : new NatsLog({
          servers: config.natsUrls,
          ...(config.natsToken === undefined ? {} : { token: config.natsToken }),
          ...(config.natsUser === undefined ? {} : { user: config.natsUser }),
          ...(config.natsPass === undefined ? {} : { pass: config.natsPass }),
          ...(config.natsCreds === undefined ? {} : { creds: config.natsCreds }),
          ...(config.natsTls === undefined ? {} : { tls: config.natsTls }),
          cluster: config.cluster,
          self,
          ...(config.streamReplicas === undefined ? {} : { streamReplicas: config.streamReplicas }),
          heartbeatIntervalMs: config.heartbeatIntervalMs,
          heartbeatTtlMs: config.heartbeatTtlMs,
          invalMaxAgeMs: config.invalMaxAgeMs,
          invalMaxBytes: config.invalMaxBytes,
          fillsMaxBytes: config.fillsMaxBytes,
          fillsMaxAgeMs: config.fillsMaxAgeMs,
          fillMaxInFlight: config.fillMaxInFlight,
          replayRetainedInvalidations: true,
          logger: logger.child({ part: 'log' }),
        });
    this.log = nats ?? new SoloLog(self);
    const logStats = () => nats?.stats;
    this.metrics = new Metrics({
      bytes: () => this.cache.stats.bytes,
      entries: () => this.cache.stats.entries,
      hotBytes: () => this.cache.stats.hotBytes,
      appliedSeq: () => this.log.appliedSeq,
      epoch: () => this.log.view.epoch,
      members: () => this.log.view.members.filter((m) => m.state === 'active').length,
      partitionsOwned: () => this.cluster.partitionsOwned,
      attached: () => (this.log.attached ? 1 : 0),
      fills: () => {
        const s = logStats();
        return { published: s?.fillsPublished ?? 0, dropped: s?.fillsDropped ?? 0, undecodable: s?.fillsUndecodable ?? 0 };
      },
      history: () => ({ bytes: this.cache.historyBytes, forgotten: this.cache.historyForgotten }),
      writesPending: () => this.writeQueue.pending,
      clientConnections: () => this.#sockets.size,
    }, { gcDurations: this.config.gcMetrics });
    let peers: PeerClient | undefined;
    const compressor = new Compressor(this.cache, config, (outcome) => this.metrics.compressions.labels(outcome).inc()); // misses' and fills': one bound on gzip
    if (nats === undefined) {
      this.cluster = new SingleNode(config.partitions);
    } else {
      peers = new PeerClient({
        secret: config.clusterSecret!,
        cluster: config.cluster,
        self: config.nodeId,
        acceptTimeoutMs: config.peerTimeoutMs,
        headersTimeoutMs: config.headersTimeoutMs + config.peerTimeoutMs,
        bodyTimeoutMs: config.bodyTimeoutMs + config.peerTimeoutMs,
        epoch: () => this.log.view.epoch,
        ...(config.peerTls === undefined ? {} : { tls: config.peerTls }),
      });
      this.cluster = new ClusterNode({
        config, log: nats, cache: this.cache, peers, metrics: this.metrics, logger, compressor,
        placement: placementOf(config.placement, config.partitions, config.replicas),
      });
    }
    this.writeQueue = new WriteQueue({
      log: this.log,
      logger,
      onCoalesced: (n) => this.metrics.writeInvalidationsCoalesced.inc(n),
    });
    this.origin = new OriginClient(config);
    const cluster = this.cluster;
    const flights = new Flights();
    this.invalidator = new Invalidator({ cache: this.cache, flights, cluster, metrics: this.metrics, logger });
    // Off (0): the listeners are the plain ones, with no per-request work for it.
    const accessLog = config.accessLogSample > 0 ? new AccessLog(logger, config.accessLogSample) : undefined;
    this.handler = new ProxyHandler({
      config, cache: this.cache, origin: this.origin, log: this.log, router: cluster, flights,
      invalidator: this.invalidator, metrics: this.metrics, logger, writeQueue: this.writeQueue, compressor,
      onNotStored: (key, reason) => this.notStored.note(key, reason),
      onStored: (e) => cluster.replicate(e),
      // Detached from NATS for too long, dropped from the view or about to be (see
      // NatsLog.mustRevalidate), or behind invalidations we know the log holds for as long
      // (deliveries stalled while attached): purges may have gone by without us, so every
      // entry is revalidated before it is served.
      // A drained member too: purges no longer wait for it, so it serves nothing it has not
      // revalidated with an owner (or the origin) since.
      mustRevalidateAll: () => this.log.mustRevalidate() || this.#draining ||
        (this.#detachedSince !== undefined && Date.now() - this.#detachedSince > config.maxStaleDetachedMs) ||
        this.log.behindMs() > config.maxStaleDetachedMs,
    });
    this.proxyServer = createServer(
      // requireHostHeader off: node:http's own 400 for a missing Host lets the requests
      // pipelined behind it through; recv refuses it and closes instead.
      {
        maxHeaderSize: config.maxHeaderBytes, keepAliveTimeout: 65_000, requireHostHeader: false,
        // Slow clients (slowloris): a head or request not complete in time gets 408 and is
        // closed. node:http checks these on an interval (30 s by default): a quarter of the
        // headers timeout keeps a slow head from being held much past its bound.
        headersTimeout: config.clientHeadersTimeoutMs,
        requestTimeout: config.clientRequestTimeoutMs,
        connectionsCheckingInterval: Math.max(50, Math.min(30_000, Math.floor(config.clientHeadersTimeoutMs / 4))),
      },
      accessLog === undefined ? (req, res) => this.handler.handle(req, res) : accessLog.wrap((req, res) => this.handler.handle(req, res), 'client'),
    );
    // Beyond this many open connections node:http closes new ones as they arrive ('drop'),
    // so slow or idle clients cannot take every file descriptor.
    this.proxyServer.maxConnections = config.maxConnections;
    this.proxyServer.on('drop', () => this.metrics.clientConnectionsDropped.inc());
    this.proxyServer.on('connection', (s: Socket) => {
      this.#sockets.add(s);
      s.once('close', () => this.#sockets.delete(s));
    });
    this.proxyServer.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      const [status, reason] = clientErrorStatus(err);
      this.metrics.clientErrors.labels(String(status)).inc();
      logger.debug({ code: err.code, status }, 'malformed request');
      // A complete pipelined request before the bad bytes may still be waiting for its
      // response: a 400 written now would reach the client as that request's answer. Let the
      // pending response finish, then close; nothing after the bad bytes is read. When the bad
      // bytes are the pending request's own body, that request is broken: 400 and close.
      // (`_httpMessage` is node:http's own record of the response in progress on a socket.)
      const pending = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
      if (pending != null && !pending.writableFinished && pending.req.complete) {
        pending.shouldKeepAlive = false;
        pending.once('close', () => socket.destroy());
        return;
      }
      if (socket.writable) {
        const body = `${status} ${reason}\n`;
        socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
      } else {
        socket.destroy();
      }
    });
    this.proxyServer.on('connect', (req, socket, head) => handleConnect(this.proxyServer, config, logger, req, socket, head));
    this.proxyServer.on('upgrade', createUpgradeHandler(this.handler.receiver, config, logger));
    const peerClient = peers;
    const reporter = new ClusterReporter({
      self: config.nodeId, cluster: config.cluster, replicas: config.replicas, partitions: config.partitions, log: this.log,
      table: () => cluster.table,
      ownStatus: () => this.status(),
      peerStatus: peerClient === undefined ? undefined : (id) => peerClient.query(id, ControlPath.status, config.peerTimeoutMs),
    });
    this.admin = new AdminServer({
      config,
      log: this.log,
      metrics: this.metrics,
      logger,
      keyOf: (keyOrigin, target) => this.handler.keyOf(keyOrigin, target),
      ready: () => this.#ready,
      clusterState: () => ({
        node: config.nodeId,
        entries: this.cache.stats.entries,
        hotEntries: this.cache.stats.hotEntries,
        ...(cluster.table === undefined ? {} : {
          ringEpoch: cluster.epoch,
          ring: cluster.table.members,
          partitionsOwned: cluster.partitionsOwned,
          replayedKeys: cluster.replayedKeys,
        }),
        ...(nats === undefined ? {} : { logStats: nats.stats }),
      }),
      members: () => reporter.report(),
      inspect: (url) => inspectUrl({
        self: config.nodeId, partitionOf: (key) => cluster.partitionOf(key), upstream: config.upstream, log: this.log,
        keyOf: (keyOrigin, target) => this.handler.keyOf(keyOrigin, target),
        table: () => cluster.table,
        local: (key) => this.#holding(key),
        remote: peerClient === undefined ? undefined : (id, key) => peerClient.query(id, ControlPath.inspect(key), config.peerTimeoutMs),
      }, url),
      drain: () => this.drain(),
    });
    this.peerServer = !cluster.ring
      ? undefined
      : createPeerServer(this.handler, new PeerVerifier(config.clusterSecret!, config.cluster), this.metrics, logger, {
          maxHeaderBytes: config.maxHeaderBytes,
          headersTimeoutMs: config.clientHeadersTimeoutMs,
          requestTimeoutMs: config.clientRequestTimeoutMs,
          maxConnections: config.maxConnections,
        }, {
          control: createPeerControl({ status: () => this.status(), inspect: (key) => this.#holding(key) }),
          ...(accessLog === undefined ? {} : { wrap: (l) => accessLog.wrap(l, 'peer') }),
          ...(config.peerTls === undefined ? {} : { tls: config.peerTls }),
        });
  }

  /** This member's status (GET /cluster/members, and the peer query behind it). */
  status(): Promise<MemberStatus> {
    return memberStatus({
      id: this.config.nodeId,
      partitions: this.config.partitions,
      startedAt: this.startedAt,
      log: this.log,
      cache: this.cache,
      metrics: this.metrics,
      table: () => this.cluster.table,
      ready: () => this.#ready,
      draining: () => this.#draining || this.#stopping,
    });
  }

  /** What this member holds for a primary key (GET /inspect, and the peer query behind it). */
  #holding(key: string): KeyHolding {
    return { variants: describeKey(this.cache, key), notStored: this.notStored.get(key) ?? null };
  }

  /** POST /drain: out of the ring, still serving this sidecar's app, by forwarding to the owners
   *  (or fetching itself when none answers), until it is stopped. The same first step as SIGTERM. */
  async drain(): Promise<{ node: string; state: 'draining'; epoch: number }> {
    if (!this.cluster.ring) throw new BadRequest('standalone: there is no ring to leave', 409);
    if (!this.#ready) throw new BadRequest('not ready: the sidecar is starting or stopping', 409);
    const wasDraining = this.#draining;
    this.#draining = true;
    try {
      await this.cluster.drain();
    } catch (err) {
      this.#draining = wasDraining;
      throw new BadRequest(`drain not accepted: ${(err as Error).message}`, 503);
    }
    this.logger.info({ epoch: this.log.view.epoch }, 'drained: out of the ring, serving by forwarding until stopped');
    return { node: this.config.nodeId, state: 'draining', epoch: this.log.view.epoch };
  }

  logHandlers(): LogHandlers {
    return {
      invalidation: (seq, inval) => {
        this.invalidator.apply(seq, inval);
      },
      fill: (record, seq, replay) => { this.cluster.applyFill(record, seq, replay); },
      horizon: (seq) => this.cache.raiseHistoryFloor(seq),
      gap: (reason, from, to) => this.invalidator.gap(reason, from, to),
      view: (view) => this.cluster.onView(view),
      attached: (on) => {
        if (on) {
          this.#detachedSince = undefined;
          this.writeQueue.flush();
        } else {
          this.#detachedSince ??= Date.now();
        }
      },
    };
  }

  async start(): Promise<void> {
    await listen(this.admin.server, this.config.adminListen);
    await this.log.start(this.logHandlers());
    if (this.peerServer !== undefined) await listen(this.peerServer, this.config.peerListen);
    await listen(this.proxyServer, this.config.listen);
    // Handoff before cutover: replay what we will own, then become active.
    await this.cluster.join();
    this.#ready = true;
    this.logger.info({ listen: this.config.listen, admin: this.config.adminListen, upstream: this.config.upstream?.href, node: this.config.nodeId }, 'sidecache ready');
  }

  /** SIGTERM: stop accepting, let in-flight requests finish (bounded), then close. */
  async stop(): Promise<void> {
    this.#ready = false;
    this.#stopping = true;
    // Peers route around us first (draining), then in-flight work finishes.
    if (this.cluster.ring && this.log.attached) {
      await this.cluster.drain().catch((err: unknown) => this.logger.warn({ err: (err as Error).message }, 'could not mark draining'));
    }
    const closed = new Promise<void>((resolve) => this.proxyServer.close(() => resolve()));
    this.proxyServer.closeIdleConnections();
    const deadline = Date.now() + this.config.shutdownTimeoutMs;
    while (this.handler.inFlight > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      this.proxyServer.closeIdleConnections();
    }
    for (const s of this.#sockets) s.destroy();
    await closed;
    if (this.peerServer !== undefined) {
      // Forwarded requests still arriving finish like our own before we go.
      const peerClosed = new Promise<void>((resolve) => this.peerServer!.close(() => resolve()));
      this.peerServer.closeIdleConnections();
      while (this.handler.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      this.peerServer.closeAllConnections();
      await peerClosed;
    }
    // Our writes' invalidations the log could not take yet get until the deadline (at least
    // one try) before we go; close() below reports any still waiting.
    await this.writeQueue.settle(deadline);
    if (this.log.attached) {
      await this.cluster.leave().catch((err: unknown) => this.logger.warn({ err: (err as Error).message }, 'could not leave the view'));
    }
    await new Promise<void>((resolve) => this.admin.server.close(() => resolve()));
    this.admin.server.closeAllConnections();
    this.writeQueue.close();
    await this.log.close();
    await this.origin.close();
  }
}

export { sendError };
