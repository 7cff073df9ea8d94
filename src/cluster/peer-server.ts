// The peer listener: only signed requests of the same cluster get in; they are served by
// the same data path with fromPeer set, so they are never forwarded again (one hop). With
// SIDECACHE_PEER_TLS_* it speaks HTTPS only and a peer must first show a certificate of the
// cluster's CA; the signature is still checked on every request.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Logger } from 'pino';
import type { Metrics } from '../core/metrics.js';
import { sendError } from '../proxy/deliver.js';
import type { ProxyHandler } from '../proxy/handler.js';
import type { PeerTls } from '../core/transport-security.js';
import { CONTROL_PREFIX } from './member-status.js';
import type { PeerRefusal, PeerVerifier } from './peer-auth.js';

/** Refused before any request: the TLS handshake failed (plaintext, no certificate, another CA). */
export const TLS_REFUSAL = 'tls';
export type PortRefusal = PeerRefusal | typeof TLS_REFUSAL;

export type PeerServer = Server | HttpsServer;

/** One warn line per refusal reason at most this often: anyone who reaches the port can make refusals. */
export const REFUSAL_LOG_WINDOW_MS = 10_000;

/**
 * Logs refused peer requests at most once per reason per window; the line says how many
 * refusals of that reason went unlogged before it (the metric counts every one).
 */
export class RefusalLog {
  readonly #logger: Logger;
  readonly #windowMs: number;
  readonly #last = new Map<PortRefusal, { at: number; unlogged: number }>();

  constructor(logger: Logger, windowMs = REFUSAL_LOG_WINDOW_MS) {
    this.#logger = logger;
    this.#windowMs = windowMs;
  }

  /** `detail`: what went wrong, in words of ours or Node's (never what the sender chose). */
  note(reason: PortRefusal, remote: string | undefined, now = Date.now(), detail?: string): void {
    const last = this.#last.get(reason);
    if (last !== undefined && now - last.at < this.#windowMs) {
      last.unlogged++;
      return;
    }
    this.#logger.warn({ remote, reason, ...(detail === undefined ? {} : { detail }), unloggedBefore: last?.unlogged ?? 0, windowMs: this.#windowMs }, 'peer request refused');
    this.#last.set(reason, { at: now, unlogged: 0 });
  }
}

/** What the peer listener accepts from a connection before any request is authenticated. */
export interface PeerServerLimits {
  readonly maxHeaderBytes: number;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly maxConnections: number;
}

/** Optional parts of the peer listener. */
export interface PeerServerExtras {
  /** Member queries (peer-control.ts): signed POSTs under CONTROL_PREFIX. */
  readonly control?: (req: IncomingMessage, res: ServerResponse) => void;
  /** Wraps the data path's listener (the access log), when set. */
  readonly wrap?: (listener: (req: IncomingMessage, res: ServerResponse) => void) => (req: IncomingMessage, res: ServerResponse) => void;
  /** SIDECACHE_PEER_TLS_*: HTTPS only, peers' certificates checked against the cluster's CA. */
  readonly tls?: PeerTls;
}

export function createPeerServer(handler: ProxyHandler, verifier: PeerVerifier, metrics: Metrics, logger: Logger, limits: PeerServerLimits, extras: PeerServerExtras = {}): PeerServer {
  const ctx = { fromPeer: true };
  const { control, tls } = extras;
  // Undefined unless the access log is on: the data path is then called directly, as before.
  const wrapped = extras.wrap?.((req, res) => handler.handle(req, res, ctx));
  const refusals = new RefusalLog(logger);
  // A request head is read before its signature can be checked: slow or idle senders are
  // bounded here as on the proxy listener (sidecar.ts), in number and in time.
  const options = {
    maxHeaderSize: limits.maxHeaderBytes, keepAliveTimeout: 65_000,
    headersTimeout: limits.headersTimeoutMs, requestTimeout: limits.requestTimeoutMs,
    connectionsCheckingInterval: Math.max(50, Math.min(30_000, Math.floor(limits.headersTimeoutMs / 4))),
  };
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const v = verifier.verify(req.headers, req.method ?? '', req.url ?? '');
    if (!v.ok) {
      metrics.peerRejected.labels(v.code).inc();
      refusals.note(v.code, req.socket.remoteAddress);
      sendError(res, v.status, v.reason);
      req.resume();
      return;
    }
    // Forwarded misses are GETs (proxy/route.ts): a POST under the prefix is a member query.
    if (control !== undefined && req.method === 'POST' && req.url!.startsWith(CONTROL_PREFIX)) {
      control(req, res);
      return;
    }
    if (wrapped === undefined) handler.handle(req, res, ctx);
    else wrapped(req, res);
  };
  const server: PeerServer = tls === undefined
    ? createServer(options, onRequest)
    : createHttpsServer({
        ...options,
        cert: tls.cert, key: tls.key, ca: tls.ca,
        // Both ways: a peer without a certificate of the cluster's CA gets no further.
        requestCert: true, rejectUnauthorized: true,
        // A handshake is bounded like a request head (slow senders).
        handshakeTimeout: limits.headersTimeoutMs,
      }, onRequest);
  if (tls !== undefined) {
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket) => {
      metrics.peerRejected.labels(TLS_REFUSAL).inc();
      refusals.note(TLS_REFUSAL, socket.remoteAddress, undefined, err.code ?? err.message);
    });
  }
  server.on('clientError', (_err, socket) => socket.destroy());
  server.maxConnections = limits.maxConnections;
  server.on('drop', () => metrics.peerConnectionsDropped.inc());
  return server;
}
