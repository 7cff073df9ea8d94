// The peer listener: only signed requests of the same cluster get in; they are served by
// the same data path with fromPeer set, so they are never forwarded again (one hop).
import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import { sendError } from '../proxy/deliver.js';
import type { ProxyHandler } from '../proxy/handler.js';
import type { PeerVerifier } from './peer-auth.js';

export function createPeerServer(handler: ProxyHandler, verifier: PeerVerifier, metrics: Metrics, logger: Logger, maxHeaderBytes: number): Server {
  const ctx = { fromPeer: true };
  const server = createServer({ maxHeaderSize: maxHeaderBytes, keepAliveTimeout: 65_000 }, (req, res) => {
    const v = verifier.verify(req.headers, req.method ?? '', req.url ?? '');
    if (!v.ok) {
      metrics.peerRejected.labels(v.reason).inc();
      logger.warn({ remote: req.socket.remoteAddress, reason: v.reason }, 'peer request refused');
      sendError(res, v.status, v.reason);
      req.resume();
      return;
    }
    handler.handle(req, res, ctx);
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  return server;
}
