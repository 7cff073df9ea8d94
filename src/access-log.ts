// The access log: one JSON line per sampled request, in the spirit of varnishncsa (method,
// target, status, Cache-Status outcome, bytes, time). Off by default; when off the listeners
// are not wrapped at all, so the hit path does no work for it.
import type { IncomingMessage, OutgoingHttpHeader, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Logger } from 'pino';

/** Longest target written: request targets may be up to SIDECACHE_MAX_URL_BYTES. */
export const MAX_LOGGED_TARGET = 1024;

/**
 * The target as logged: query values are left out (they carry tokens, session ids and signed
 * URLs' signatures), parameter names are kept; credentials in an absolute-form URL's authority
 * are dropped. `/a?token=x&q=1` -> `/a?token=&q=`.
 */
export function loggedTarget(url: string): string {
  let t = url;
  const scheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.exec(t);
  if (scheme !== null) {
    const start = scheme[0].length;
    let end = t.length;
    for (const c of ['/', '?', '#']) {
      const i = t.indexOf(c, start);
      if (i !== -1 && i < end) end = i;
    }
    const at = t.lastIndexOf('@', end);
    if (at >= start) t = t.slice(0, start) + t.slice(at + 1);
  }
  const hash = t.indexOf('#');
  if (hash !== -1) t = t.slice(0, hash);
  const q = t.indexOf('?');
  if (q !== -1) {
    const names = t.slice(q + 1).split('&').map((p) => {
      const eq = p.indexOf('=');
      return eq === -1 ? p : `${p.slice(0, eq)}=`;
    });
    t = `${t.slice(0, q)}?${names.join('&')}`;
  }
  return t.length > MAX_LOGGED_TARGET ? `${t.slice(0, MAX_LOGGED_TARGET)}...` : t;
}

/**
 * Our outcome from a Cache-Status field value (RFC 9211): the last member is ours (closest to
 * the user last), without the parameters that say where (node, epoch, seq) or how long (ttl):
 * `hit`, `fwd=uri-miss; fwd-status=200; stored`, `fwd=method; fwd-status=201`.
 */
export function cacheOutcome(value: string | undefined): string {
  if (value === undefined || value === '') return '-';
  const comma = value.lastIndexOf(', sidecache');
  const ours = comma === -1 ? value : value.slice(comma + 2);
  const out: string[] = [];
  for (const part of ours.split(';').slice(1)) {
    const p = part.trim();
    if (p === '' || p.startsWith('node=') || p.startsWith('epoch=') || p.startsWith('seq=') || p.startsWith('ttl=')) continue;
    out.push(p);
  }
  return out.length === 0 ? '-' : out.join('; ');
}

/** Cache-Status among writeHead's header arguments (a flat array, pairs or an object). */
function cacheStatusIn(headers: OutgoingHttpHeaders | OutgoingHttpHeader[] | undefined): string | undefined {
  if (headers === undefined || headers === null) return undefined;
  if (Array.isArray(headers)) {
    if (headers.length > 0 && Array.isArray(headers[0])) {
      for (const pair of headers as unknown as [string, string][]) if (String(pair[0]).toLowerCase() === 'cache-status') return String(pair[1]);
      return undefined;
    }
    for (let i = 0; i + 1 < headers.length; i += 2) if (String(headers[i]).toLowerCase() === 'cache-status') return String(headers[i + 1]);
    return undefined;
  }
  for (const name of Object.keys(headers)) if (name.toLowerCase() === 'cache-status') return String(headers[name]);
  return undefined;
}

function chunkBytes(chunk: unknown): number {
  if (typeof chunk === 'string') return Buffer.byteLength(chunk);
  if (chunk instanceof Uint8Array) return chunk.byteLength;
  return 0;
}

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

export class AccessLog {
  readonly #logger: Logger;
  readonly #sample: number;

  /** `sample`: fraction of requests logged, above 0. `logger`: where lines go; their level is
   *  info whatever the process log's level is (the operator asked for them). */
  constructor(logger: Logger, sample: number) {
    this.#logger = logger.child({}, { level: 'info' });
    this.#sample = sample;
  }

  /** A listener that logs (a sample of) the requests `listener` answers. `from`: which port. */
  wrap(listener: RequestListener, from: 'client' | 'peer'): RequestListener {
    return (req, res) => {
      if (this.#sample >= 1 || Math.random() < this.#sample) this.observe(req, res, from);
      listener(req, res);
    };
  }

  /** Logs this request when its response closes. Wraps writeHead, write and end of this one
   *  response to see the Cache-Status and count the body bytes sent. */
  observe(req: IncomingMessage, res: ServerResponse, from: 'client' | 'peer'): void {
    const startedAt = performance.now();
    // Read now: by the time the response closes, node:http may have detached the socket.
    const remote = req.socket?.remoteAddress;
    const method = req.method;
    const target = loggedTarget(req.url ?? '');
    let cacheStatus: string | undefined;
    let bytes = 0;
    const writeHead = res.writeHead;
    res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
      const headers = typeof args[1] === 'string' ? args[2] : args[1];
      cacheStatus = cacheStatusIn(headers as OutgoingHttpHeaders | OutgoingHttpHeader[] | undefined) ?? cacheStatus;
      return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
    } as typeof res.writeHead;
    const write = res.write;
    res.write = function (this: ServerResponse, ...args: unknown[]) {
      bytes += chunkBytes(args[0]);
      return (write as (...a: unknown[]) => boolean).apply(this, args);
    } as typeof res.write;
    const end = res.end;
    res.end = function (this: ServerResponse, ...args: unknown[]) {
      if (typeof args[0] !== 'function') bytes += chunkBytes(args[0]);
      return (end as (...a: unknown[]) => ServerResponse).apply(this, args);
    } as typeof res.end;
    res.once('close', () => {
      const status = res.headersSent ? res.statusCode : 0;
      cacheStatus ??= res.getHeader('cache-status') as string | undefined;
      this.#logger.info({
        from,
        remote,
        method,
        target,
        status,
        cache: cacheOutcome(cacheStatus),
        // A HEAD answer's body is never sent, whatever was handed to end().
        bytes: method === 'HEAD' || status === 304 || status === 204 ? 0 : bytes,
        ms: Math.round((performance.now() - startedAt) * 1000) / 1000,
        ...(res.writableFinished ? {} : { aborted: true }),
      }, 'access');
    });
  }
}
