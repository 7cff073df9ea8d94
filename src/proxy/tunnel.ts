// CONNECT (forward mode) and Upgrade (WebSocket) handling. A CONNECT to an allowed host on
// a plain-HTTP port is answered 200 and the HTTP inside is served by the proxy like any
// other request (undici's EnvHttpProxyAgent tunnels even http:// targets); a CONNECT to a
// TLS port is an opaque, uncached tunnel; anything else gets 403.
import type { IncomingMessage, Server } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { HOP_BY_HOP } from '../http/headers.js';
import { isAllowedHost, isRefusal, markTunnel, splitHostPort, type Receiver } from './recv.js';

function refuse(socket: Duplex, status: number, reason: string): void {
  const body = `${status} ${reason}\n`;
  socket.end(`HTTP/1.1 ${status} ${reason.split(':')[0]}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

function splice(a: Duplex, b: Duplex): void {
  a.pipe(b);
  b.pipe(a);
  const close = () => { a.destroy(); b.destroy(); };
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
  if (!isAllowedHost(config.allowHosts, host, port)) {
    refuse(socket, 403, `host ${host}:${port} is not in SIDECACHE_ALLOW_HOSTS`);
    return;
  }
  if (config.tlsPorts.includes(port)) {
    // TLS inside: we cannot read it, so it is tunnelled as bytes and never cached.
    const upstream = netConnect({ host: host.replace(/^\[|\]$/g, ''), port });
    upstream.once('connect', () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      splice(socket, upstream);
    });
    upstream.once('error', (err) => {
      logger.warn({ host, port, err: err.message }, 'CONNECT tunnel failed');
      refuse(socket, 502, `cannot reach ${host}:${port}`);
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

/** Upgrade requests (WebSocket) are passed through to the origin uncached. */
export function handleUpgrade(recv: Receiver, logger: Logger, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  socket.on('error', () => socket.destroy());
  const target = recv.target(req);
  if (isRefusal(target)) {
    refuse(socket, target.status, target.reason);
    return;
  }
  const u = new URL(target.origin);
  const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  const hostname = u.hostname.replace(/^\[|\]$/g, '');
  const upstream = u.protocol === 'https:'
    ? tlsConnect({ host: hostname, port, servername: hostname })
    : netConnect({ host: hostname, port });
  upstream.once(u.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
    let text = `${req.method} ${target.path} HTTP/1.1\r\nhost: ${u.host}\r\n`;
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      // Connection and Upgrade are exactly what this hop must carry on.
      if (name === 'host' || (HOP_BY_HOP.has(name) && name !== 'connection' && name !== 'upgrade')) continue;
      text += `${raw[i]}: ${raw[i + 1]}\r\n`;
    }
    upstream.write(`${text}\r\n`);
    if (head.length > 0) upstream.write(head);
    splice(socket, upstream);
  });
  upstream.once('error', (err) => {
    logger.warn({ origin: target.origin, err: err.message }, 'upgrade to origin failed');
    refuse(socket, 502, 'origin unreachable');
  });
}
