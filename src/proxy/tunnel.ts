// CONNECT (forward mode) and Upgrade (WebSocket) handling. A CONNECT to an allowed host on
// a plain-HTTP port is answered 200 and the HTTP inside is served by the proxy like any
// other request (undici's EnvHttpProxyAgent tunnels even http:// targets); a CONNECT to a
// TLS port is an opaque, uncached tunnel; anything else gets 403. An Upgrade becomes a pipe
// only after the origin's 101.
import { readFileSync } from 'node:fs';
import { request as httpRequest, STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import { rootCertificates } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Config } from '../core/config.js';
import { toRawHeaders, upstreamRequestHeaders, VIA } from '../http/headers.js';
import { isAllowedHost, isRefusal, markTunnel, splitHostPort, type Receiver } from './recv.js';

const NO_DROP: ReadonlySet<string> = new Set();
/** How long a connection we are closing may stay idle before it is destroyed. */
const LINGER_MS = 10_000;

function refuse(socket: Duplex, status: number, reason: string): void {
  const body = `${status} ${reason}\n`;
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  // Read and discard what the client still sends, so that its close is seen; a client that
  // neither reads nor closes is dropped.
  socket.resume();
  (socket as Socket).setTimeout(LINGER_MS, () => socket.destroy());
}

/** Joins two sockets; both close when either does, or after idleMs with no bytes either way. */
function splice(a: Socket, b: Socket, idleMs: number): void {
  a.pipe(b);
  b.pipe(a);
  const close = () => { a.destroy(); b.destroy(); };
  // Every byte passes through both sockets, so either one's inactivity timer sees all traffic.
  a.setTimeout(idleMs, close);
  b.setTimeout(idleMs, close);
  a.on('error', close);
  b.on('error', close);
  a.on('close', close);
  b.on('close', close);
}

export function handleConnect(server: Server, config: Config, logger: Logger, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  socket.on('error', () => socket.destroy());
  if (config.upstream !== undefined) {
    refuse(socket, 405, 'CONNECT is not served in reverse mode');
    return;
  }
  const hp = splitHostPort(req.url ?? '', 0);
  if (hp === undefined || hp[1] === 0) {
    refuse(socket, 400, 'CONNECT target must be host:port');
    return;
  }
  const [host, port] = hp;
  if (!isAllowedHost(config.allowHosts, config.tlsPorts, host, port)) {
    refuse(socket, 403, `host ${host}:${port} is not in SIDECACHE_ALLOW_HOSTS`);
    return;
  }
  if (config.tlsPorts.includes(port)) {
    // TLS inside: we cannot read it, so it is tunnelled as bytes and never cached.
    const upstream = netConnect({ host: host.replace(/^\[|\]$/g, ''), port });
    const failed = (err: Error) => {
      logger.warn({ host, port, err: err.message }, 'CONNECT tunnel failed');
      refuse(socket, 502, `cannot reach ${host}:${port}`);
    };
    upstream.once('error', failed);
    upstream.once('connect', () => {
      // From here an error closes both sides (splice): no HTTP answer inside the tunnel.
      upstream.off('error', failed);
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      splice(socket as Socket, upstream, config.tunnelIdleTimeoutMs);
    });
    return;
  }
  // Plain HTTP inside the tunnel: hand the socket back to the HTTP server, remembering
  // the tunnel's host so that every request inside is held to it.
  socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
  const s = socket as Socket;
  markTunnel(s, { hostPort: `${host}:${port}`, host, port });
  if (head.length > 0) s.unshift(head);
  server.emit('connection', s);
}

/** Peer-signature fields: meaningful on the peer port only, never sent to an origin. */
const PEER_FIELDS: ReadonlySet<string> = new Set([
  'x-sidecache-signature', 'x-sidecache-ts', 'x-sidecache-nonce', 'x-sidecache-from', 'x-sidecache-epoch', 'x-sidecache-cluster',
]);

/**
 * Upgrade requests (RFC 9110 §7.8, WebSocket's handshake): sent to the origin as an ordinary,
 * well-framed request through node:http; the connection becomes a byte pipe only once the
 * origin has answered 101. Until then nothing else the client sent is passed on: a request
 * pipelined behind the upgrade, or a body, would otherwise reach the origin unchecked.
 */
export function createUpgradeHandler(recv: Receiver, config: Config, logger: Logger): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const ca = config.caFile === undefined ? undefined : [...rootCertificates, readFileSync(config.caFile, 'utf8')];
  const answerWithinMs = config.connectTimeoutMs + config.headersTimeoutMs;
  return (req, socket, head) => {
    const client = socket as Socket;
    client.on('error', () => client.destroy());
    const target = recv.target(req);
    if (isRefusal(target)) {
      refuse(client, target.status, target.reason);
      return;
    }
    // RFC 6455 §4.1: the opening handshake is a GET. Another method with Upgrade would need
    // the cache's handling of unsafe methods (§4.4 invalidation), which a pipe bypasses.
    if (req.method !== 'GET') {
      refuse(client, 400, `an Upgrade request must be a GET, got ${req.method}`);
      return;
    }
    // node:http hands the upgrade over before reading any body: whatever follows the head
    // is raw bytes to it. A body here could only reach the origin unframed (RFC 9112 §6).
    const cl = req.headers['content-length'];
    if (req.headers['transfer-encoding'] !== undefined || (cl !== undefined && Number(cl) !== 0)) {
      refuse(client, 400, 'an Upgrade request must not carry a body (Transfer-Encoding or a Content-Length above 0)');
      return;
    }
    const u = new URL(target.origin);
    const https = u.protocol === 'https:';
    const headers = upstreamRequestHeaders(req.headers, client.remoteAddress, PEER_FIELDS);
    headers.host = u.host;
    headers.connection = 'upgrade';
    headers.upgrade = req.headers.upgrade!;
    const up = (https ? httpsRequest : httpRequest)({
      host: u.hostname.replace(/^\[|\]$/g, ''),
      port: Number(u.port || (https ? 443 : 80)),
      method: 'GET',
      path: target.path,
      headers,
      agent: false,
      maxHeaderSize: 64 * 1024,
      ...(https && ca !== undefined ? { ca } : {}),
    });
    let answered = false;
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; up.destroy(new Error('timeout')); }, answerWithinMs);
    const settle = () => { answered = true; clearTimeout(timer); };
    client.once('close', () => { if (!answered) { settle(); up.destroy(); } });

    up.once('upgrade', (res: IncomingMessage, upstream: Socket, upHead: Buffer) => {
      settle();
      if (res.statusCode !== 101 || client.destroyed) {
        upstream.destroy();
        refuse(client, 502, `origin answered the upgrade with ${res.statusCode}`);
        return;
      }
      let text = `HTTP/1.1 101 ${res.statusMessage || 'Switching Protocols'}\r\n`;
      const raw = res.rawHeaders;
      for (let i = 0; i < raw.length; i += 2) text += `${raw[i]}: ${raw[i + 1]}\r\n`;
      client.write(`${text}\r\n`);
      if (upHead.length > 0) client.write(upHead);
      // Bytes the client sent after its request belong to the new protocol now.
      if (head.length > 0) upstream.write(head);
      splice(client, upstream, config.tunnelIdleTimeoutMs);
    });

    // Anything but 101: an ordinary answer, relayed and then the connection closed, so no
    // byte of the client's that followed the upgrade request is ever read.
    up.once('response', (res: IncomingMessage) => {
      settle();
      const raw = toRawHeaders(res.headers, NO_DROP);
      let text = `HTTP/1.1 ${res.statusCode} ${res.statusMessage ?? ''}\r\n`;
      for (let i = 0; i < raw.length; i += 2) text += `${raw[i]}: ${raw[i + 1]}\r\n`;
      // Without Content-Length the body is delimited by the close (RFC 9112 §6.3).
      client.write(`${text}via: ${VIA}\r\nconnection: close\r\n\r\n`);
      res.on('error', () => client.destroy());
      res.on('aborted', () => client.destroy());
      res.pipe(client);
      client.resume();
      client.setTimeout(LINGER_MS, () => client.destroy());
    });

    up.on('error', (err) => {
      if (answered && !timedOut) {
        client.destroy();
        return;
      }
      settle();
      logger.warn({ origin: target.origin, err: timedOut ? 'timeout' : err.message }, 'upgrade to origin failed');
      if (timedOut) refuse(client, 504, `origin did not answer the upgrade within ${answerWithinMs} ms`);
      else refuse(client, 502, 'origin unreachable');
    });
    up.end();
  };
}
