// The peer listener: only signed requests of the same cluster get in; they are served by
// the same data path with fromPeer set, so they are never forwarded again (one hop).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import { sendError } from '../proxy/deliver.js';
import type { ProxyHandler } from '../proxy/handler.js';
import { CONTROL_PREFIX } from './member-status.js';
import type { PeerRefusal, PeerVerifier } from './peer-auth.js';

/** One warn line per refusal reason at most this often: anyone who reaches the port can make refusals. */
export const REFUSAL_LOG_WINDOW_MS = 10_000;

/**
 * Logs refused peer requests at most once per reason per window; the line says how many
 * refusals of that reason went unlogged before it (the metric counts every one).
 */
export class RefusalLog {
  readonly #logger: Logger;
  readonly #windowMs: number;
  readonly #last = new Map<PeerRefusal, { at: number; unlogged: number }>();

  constructor(logger: Logger, windowMs = REFUSAL_LOG_WINDOW_MS) {
    this.#logger = logger;
    this.#windowMs = windowMs;
  }

  note(reason: PeerRefusal, remote: string | undefined, now = Date.now()): void {
    const last = this.#last.get(reason);
    if (last !== undefined && now - last.at < this.#windowMs) {
      last.unlogged++;
      return;
    }
    this.#logger.warn({ remote, reason, unloggedBefore: last?.unlogged ?? 0, windowMs: this.#windowMs }, 'peer request refused');
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
}

export function createPeerServer(handler: ProxyHandler, verifier: PeerVerifier, metrics: Metrics, logger: Logger, limits: PeerServerLimits, extras: PeerServerExtras = {}): Server {
  const ctx = { fromPeer: true };
  const control = extras.control;
  // Undefined unless the access log is on: the data path is then called directly, as before.
  const wrapped = extras.wrap?.((req, res) => handler.handle(req, res, ctx));
  const refusals = new RefusalLog(logger);
  // A request head is read before its signature can be checked: slow or idle senders are
  // bounded here as on the proxy listener (sidecar.ts), in number and in time.
  const server = createServer({
    maxHeaderSize: limits.maxHeaderBytes, keepAliveTimeout: 65_000,
    headersTimeout: limits.headersTimeoutMs, requestTimeout: limits.requestTimeoutMs,
    connectionsCheckingInterval: Math.max(50, Math.min(30_000, Math.floor(limits.headersTimeoutMs / 4))),
  }, (req, res) => {
    const v = verifier.verify(req.headers, req.method ?? '', req.url ?? '');
    if (!v.ok) {
      metrics.peerRejected.labels(v.code).inc();
      refusals.note(v.code, req.socket.remoteAddress);
      sendError(res, v.status, v.reason);
      req.resume();
      return;
    }
    // Forwarded misses are GETs (proxy/handler.ts): a POST under the prefix is a member query.
    if (control !== undefined && req.method === 'POST' && req.url!.startsWith(CONTROL_PREFIX)) {
      control(req, res);
      return;
    }
    if (wrapped === undefined) handler.handle(req, res, ctx);
    else wrapped(req, res);
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  server.maxConnections = limits.maxConnections;
  server.on('drop', () => metrics.peerConnectionsDropped.inc());
  return server;
}
