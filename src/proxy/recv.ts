// recv: check a request and decide where it goes (reverse: the upstream; forward: the
// absolute-form target or the CONNECT tunnel's host), refusing what we must not fetch.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Config, HostPattern } from '../core/config.js';
import { SidecacheError } from '../core/errors.js';
import type { Metrics } from '../core/metrics.js';
import { cacheStatus, sendError, type StatusContext } from './deliver.js';
import { canonicalTarget, originOf, parseAbsolute } from './key.js';

export interface Target {
  /** Where undici connects: "http://host:port". */
  readonly origin: string;
  /** Key prefix: scheme://host with the default port dropped, lower-cased. */
  readonly keyOrigin: string;
  /** Canonical origin-form target (key.ts): sent upstream and hashed into the key. */
  readonly path: string;
}

export interface Refusal {
  readonly status: number;
  readonly reason: string;
  /** Where the request ends or who it is for is in doubt: answer, then read nothing more
   *  from the connection (a request behind it could be one another hop saw differently). */
  readonly close?: true;
}

/** RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host, and to any
 *  request with more than one Host field line. node:http keeps only the first Host of
 *  several, so the raw fields are counted. */
function hostRefusal(req: IncomingMessage): Refusal | undefined {
  const raw = req.rawHeaders;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && (name === 'Host' || name === 'host' || name.toLowerCase() === 'host')) hosts++;
  }
  if (hosts > 1) return { status: 400, reason: 'more than one Host field', close: true };
  if (hosts === 0 && req.httpVersionMajor === 1 && req.httpVersionMinor === 1) return { status: 400, reason: 'an HTTP/1.1 request without Host', close: true };
  return undefined;
}

/** The tunnel a request arrived in (forward mode, CONNECT to a plain-HTTP port). */
export interface TunnelInfo {
  /** "host:port" of the CONNECT request, host lower-cased. */
  readonly hostPort: string;
  readonly host: string;
  readonly port: number;
}

const tunnels = new WeakMap<Socket, TunnelInfo>();

export function markTunnel(socket: Socket, info: TunnelInfo): void {
  tunnels.set(socket, info);
}

/**
 * Whether SIDECACHE_ALLOW_HOSTS lets us fetch host:port. An entry without a port means the
 * plain-HTTP port 80 and the TLS ports (for CONNECT), never every port: a host's other
 * ports are often its admin or internal services.
 */
export function isAllowedHost(patterns: readonly HostPattern[], tlsPorts: readonly number[], host: string, port: number): boolean {
  const h = host.toLowerCase();
  const defaultPort = port === 80 || tlsPorts.includes(port);
  for (const p of patterns) {
    if (p.port === undefined ? !defaultPort : p.port !== port) continue;
    if (p.suffix ? h.endsWith(p.host) && h.length > p.host.length : h === p.host) return true;
  }
  return false;
}

/** "host[:port]" -> [host, port] with the scheme's default port. */
export function splitHostPort(hostPort: string, defaultPort: number): [string, number] | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(hostPort);
  if (!m) return undefined;
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  return [m[1]!.toLowerCase(), port];
}

export class Receiver {
  readonly #config: Config;
  readonly #reverse: Target | undefined;
  readonly #basePath: string;

  constructor(config: Config) {
    this.#config = config;
    const up = config.upstream;
    this.#basePath = up === undefined || up.pathname === '/' ? '' : canonicalTarget(up.pathname).replace(/\/$/, '');
    this.#reverse = up === undefined ? undefined : { origin: up.origin, keyOrigin: originOf(up.protocol.slice(0, -1), up.host), path: '' };
  }

  get reverse(): boolean {
    return this.#reverse !== undefined;
  }

  /** Target of a request, or why it is refused. Synchronous and allocation-light for reverse mode. */
  target(req: IncomingMessage): Target | Refusal {
    const url = req.url ?? '';
    if (url.length > this.#config.maxUrlBytes) return { status: 414, reason: `request target longer than ${this.#config.maxUrlBytes} bytes` };
    // Every method node:http parses is passed on, known here or not (RFC 9110 §9.1: a proxy
    // forwards the methods it does not implement); only GET and HEAD are looked up.
    const badHost = hostRefusal(req);
    if (badHost !== undefined) return badHost;
    const rev = this.#reverse;
    if (rev !== undefined) {
      if (url.charCodeAt(0) === 47 /* / */) {
        // Canonical before the base path is put in front: dot segments stay below it.
        const path = canonical(url);
        return typeof path === 'string' ? { origin: rev.origin, keyOrigin: rev.keyOrigin, path: this.#basePath + path } : path;
      }
      return this.#absolute(url, true);
    }
    const tunnel = tunnels.get(req.socket);
    if (tunnel !== undefined) {
      if (url.charCodeAt(0) !== 47) return this.#absolute(url, false, tunnel);
      const host = req.headers.host;
      const hp = host === undefined ? undefined : splitHostPort(host, 80);
      if (hp === undefined || hp[0] !== tunnel.host || hp[1] !== tunnel.port) {
        return { status: 403, reason: `Host "${host ?? ''}" does not match the tunnel to ${tunnel.hostPort}` };
      }
      const path = canonical(url);
      return typeof path === 'string' ? { origin: `http://${tunnel.hostPort}`, keyOrigin: originOf('http', tunnel.hostPort), path } : path;
    }
    if (url.charCodeAt(0) === 47) {
      return { status: 400, reason: 'this is a forward proxy: expected an absolute-form request (http://host/path)' };
    }
    return this.#absolute(url, false);
  }

  #absolute(raw: string, reverse: boolean, tunnel?: TunnelInfo): Target | Refusal {
    let u: ReturnType<typeof parseAbsolute>;
    try {
      u = parseAbsolute(raw);
    } catch (err) {
      return { status: 400, reason: `malformed request target: ${(err as Error).message}` };
    }
    if (u === undefined) return { status: 400, reason: 'unsupported scheme: expected http or https' };
    if (reverse) {
      const rev = this.#reverse!;
      return { origin: rev.origin, keyOrigin: rev.keyOrigin, path: this.#basePath + u.target };
    }
    const { hostname: host, port } = u;
    if (tunnel !== undefined && (host !== tunnel.host || port !== tunnel.port)) {
      return { status: 403, reason: `target ${host}:${port} does not match the tunnel to ${tunnel.hostPort}` };
    }
    if (!isAllowedHost(this.#config.allowHosts, this.#config.tlsPorts, host, port)) {
      return { status: 403, reason: `host ${host}:${port} is not in SIDECACHE_ALLOW_HOSTS` };
    }
    return { origin: `${u.protocol}//${host}:${port}`, keyOrigin: u.keyOrigin, path: u.target };
  }
}

/** The canonical target, or a 400 saying what is malformed. */
function canonical(url: string): string | Refusal {
  try {
    return canonicalTarget(url);
  } catch (err) {
    if (!(err instanceof SidecacheError)) throw err;
    return { status: 400, reason: `malformed request target: ${err.message}` };
  }
}

export function isRefusal(t: Target | Refusal): t is Refusal {
  return (t as Refusal).status !== undefined;
}

/** Answers a refused request, and keeps the connection usable or closes it as the refusal says. */
export function refuse(req: IncomingMessage, res: ServerResponse, refusal: Refusal, statusCtx: StatusContext, metrics: Metrics): void {
  metrics.clientErrors.labels(String(refusal.status)).inc();
  if (refusal.close === true) res.shouldKeepAlive = false;
  sendError(res, refusal.status, refusal.reason, cacheStatus(statusCtx, { fwd: 'request', detail: 'refused' }));
  // node:http goes on parsing what the client pipelined behind this request; ending our
  // side now makes every later request on the connection stop at the handler's first check.
  if (refusal.close === true) req.socket.end();
  // A refused request may carry a body: read and discard it so the connection stays usable.
  else if (!req.complete) req.resume();
}
