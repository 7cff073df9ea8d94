// The admin listener: POST /purge (token), GET /metrics, /healthz, /readyz, /cluster.
// Purges go through the log interface, so a cluster makes them cluster-wide unchanged.
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { SidecacheError } from '../errors.js';
import type { ClusterLog, Invalidation } from '../log/types.js';
import type { Metrics } from '../metrics.js';
import { canonicalTarget, originOf, parseAbsolute } from '../proxy/key.js';

const MAX_BODY_BYTES = 64 * 1024;
const MAX_ITEMS = 1000;

export interface AdminDeps {
  readonly config: Config;
  readonly log: ClusterLog;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** The proxy's key function over a key origin and a canonical target (proxy/key.ts). */
  readonly keyOf: (keyOrigin: string, target: string) => string;
  readonly ready: () => boolean;
  /** Extra state for GET /cluster. */
  readonly clusterState: () => object;
}

class BadRequest extends Error {
  readonly status: number;
  constructor(message: string, status = 400) {
    super(message);
    this.status = status;
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      if (size > MAX_BODY_BYTES) return;
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        // Not req.destroy(): that cuts the socket before the 413 is written, and clients
        // still sending see EPIPE. The rest is read and dropped (only an authorised caller
        // gets this far), so the client can finish sending and read the answer.
        chunks.length = 0;
        reject(new BadRequest(`body larger than ${MAX_BODY_BYTES} bytes`, 413));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export class AdminServer {
  readonly server: Server;
  readonly #d: AdminDeps;
  readonly #token: Buffer | undefined;

  constructor(d: AdminDeps) {
    this.#d = d;
    this.#token = d.config.adminToken === undefined ? undefined : Buffer.from(d.config.adminToken);
    this.server = createServer({ maxHeaderSize: 16 * 1024 }, (req, res) => {
      this.#route(req, res).catch((err: unknown) => {
        const status = err instanceof BadRequest ? err.status : err instanceof SidecacheError && err.status !== undefined ? err.status : 500;
        if (status >= 500) d.logger.error({ err }, 'admin request failed');
        if (!res.headersSent) json(res, status, { error: (err as Error).message });
        else res.destroy();
      });
    });
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const d = this.#d;
    if (req.method === 'GET' || req.method === 'HEAD') {
      switch (path) {
        case '/metrics': {
          const text = await d.metrics.registry.metrics();
          res.writeHead(200, { 'content-type': d.metrics.registry.contentType, 'cache-control': 'no-store' });
          res.end(text);
          return;
        }
        case '/healthz':
          json(res, 200, { status: 'ok' });
          return;
        case '/readyz':
          if (d.ready()) json(res, 200, { status: 'ready', attached: d.log.attached });
          else json(res, 503, { status: 'not ready' });
          return;
        case '/cluster':
          json(res, 200, { view: d.log.view, appliedSeq: d.log.appliedSeq, attached: d.log.attached, ...d.clusterState() });
          return;
      }
      json(res, 404, { error: `no such endpoint: ${path}` });
      return;
    }
    if (req.method === 'POST' && path === '/purge') {
      this.#authorize(req);
      const inval = this.#parsePurge(await readBody(req));
      const started = Date.now();
      let seq: number;
      try {
        seq = await d.log.invalidate(inval);
      } catch (err) {
        throw new BadRequest(`purge not accepted: ${(err as Error).message}`, 503);
      }
      const acks = await d.log.waitApplied(seq, d.config.purgeTimeoutMs);
      d.metrics.purges.labels(inval.kind).inc();
      d.logger.info({ purge: inval, seq, ms: Date.now() - started, missing: acks.missing }, 'purge applied');
      json(res, 200, { seq, acknowledged: acks.acknowledged, missing: acks.missing });
      return;
    }
    json(res, req.method === 'POST' ? 404 : 405, { error: `${req.method} ${path} is not an admin endpoint` });
  }

  #authorize(req: IncomingMessage): void {
    if (this.#token === undefined) {
      throw new BadRequest('admin writes are disabled: set SIDECACHE_ADMIN_TOKEN to enable them', 403);
    }
    const auth = req.headers.authorization ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(auth);
    const given = m ? Buffer.from(m[1]!.trim()) : Buffer.alloc(0);
    if (given.length !== this.#token.length || !timingSafeEqual(given, this.#token)) {
      throw new BadRequest('missing or wrong bearer token', 401);
    }
  }

  /** A purge body -> an Invalidation of primary keys, or a 400 saying what is wrong. */
  #parsePurge(text: string): Invalidation {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new BadRequest('body is not JSON: expected {"url"}, {"prefix"}, {"tags"} or {"all": true}');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new BadRequest('expected a JSON object');
    const b = body as Record<string, unknown>;
    const kinds = ['url', 'prefix', 'tags', 'all'].filter((k) => b[k] !== undefined);
    if (kinds.length !== 1) throw new BadRequest('expected exactly one of "url", "prefix", "tags", "all"');
    const unknown = Object.keys(b).filter((k) => !['url', 'prefix', 'tags', 'all', 'soft'].includes(k));
    if (unknown.length > 0) throw new BadRequest(`unknown field ${unknown.map((k) => `"${k}"`).join(', ')}`);
    if (b.soft !== undefined && typeof b.soft !== 'boolean') throw new BadRequest('"soft" must be true or false');
    const soft = b.soft === true ? { soft: true } : {};
    if (b.url !== undefined) {
      const urls = Array.isArray(b.url) ? b.url : [b.url];
      if (urls.length === 0 || urls.length > MAX_ITEMS || !urls.every((u) => typeof u === 'string')) {
        throw new BadRequest(`"url" must be a URL string or a list of 1-${MAX_ITEMS} of them`);
      }
      const keys = (urls as string[]).map((u) => {
        const r = this.#resolve(u, '"url"');
        return this.#d.keyOf(r.keyOrigin, r.target);
      });
      return { kind: 'url', keys: [...new Set(keys)], ...soft };
    }
    if (b.prefix !== undefined) {
      if (typeof b.prefix !== 'string' || b.prefix === '') throw new BadRequest('"prefix" must be a non-empty string');
      // A prefix is matched on the key's text: its target is canonical as keys' are (a partial
      // percent-encoding at its end is a 400), but a partial query is not sorted or filtered.
      const r = this.#resolve(b.prefix, '"prefix"');
      return { kind: 'prefix', prefix: r.keyOrigin + r.target, ...soft };
    }
    if (b.tags !== undefined) {
      const tags = typeof b.tags === 'string' ? [b.tags] : b.tags;
      if (!Array.isArray(tags) || tags.length === 0 || tags.length > MAX_ITEMS || !tags.every((t) => typeof t === 'string' && t !== '' && t.length <= 256)) {
        throw new BadRequest(`"tags" must be a list of 1-${MAX_ITEMS} non-empty strings`);
      }
      return { kind: 'tags', tags: [...new Set(tags as string[])], ...soft };
    }
    if (b.all !== true) throw new BadRequest('"all" must be true');
    return { kind: 'all', ...soft };
  }

  /** Absolute URL, or in reverse mode a path on the upstream: its key origin and canonical
   *  target, split and normalised exactly as a request for it would be (proxy/recv.ts). */
  #resolve(value: string, field: string): { keyOrigin: string; target: string } {
    const up = this.#d.config.upstream;
    const upKeyOrigin = up === undefined ? '' : originOf(up.protocol.slice(0, -1), up.host);
    const base = up === undefined || up.pathname === '/' ? '' : canonicalTarget(up.pathname).replace(/\/$/, '');
    try {
      if (value.startsWith('/')) {
        if (up === undefined) throw new BadRequest(`${field}: a path needs reverse mode; in forward mode give an absolute URL`);
        return { keyOrigin: upKeyOrigin, target: base + canonicalTarget(value) };
      }
      const a = parseAbsolute(value);
      if (a === undefined) throw new BadRequest(`${field}: expected an http(s) URL`);
      // Reverse mode keys are the upstream's: a URL of the sidecar itself names the same path there.
      if (up !== undefined && a.keyOrigin !== upKeyOrigin) return { keyOrigin: upKeyOrigin, target: base + a.target };
      return a;
    } catch (err) {
      if (!(err instanceof SidecacheError)) throw err;
      throw new BadRequest(`${field}: ${err.message}; expected an absolute http(s) URL or a path starting with /, got "${value.slice(0, 200)}"`);
    }
  }
}
