// The admin listener: POST /purge, POST /drain, GET /inspect (token), GET /metrics, /healthz,
// /readyz, /cluster, /cluster/members, /purges, and the status page (GET /, status-page.ts).
// Purges go through the log interface, so a cluster makes them cluster-wide unchanged.
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from '../core/config.js';
import { SidecacheError } from '../core/errors.js';
import type { InvalidationLog, Membership } from '../log/types.js';
import type { Metrics } from '../core/metrics.js';
import { BadRequest, parsePurgeBody } from './purge-body.js';
import { PurgeHistory, purgeRecord } from './purge-history.js';
import { serveStatusPage } from './status-page.js';

const MAX_BODY_BYTES = 64 * 1024;

export interface AdminDeps {
  readonly config: Config;
  readonly log: InvalidationLog & Pick<Membership, 'view'>;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** The proxy's key function over a key origin and a canonical target (proxy/key.ts). */
  readonly keyOf: (keyOrigin: string, target: string) => string;
  readonly ready: () => boolean;
  /** Extra state for GET /cluster. */
  readonly clusterState: () => object;
  /** GET /cluster/members: every member's status (admin/cluster-report.ts). */
  readonly members?: () => Promise<object>;
  /** GET /inspect?url=: where a URL is cached (admin/inspect.ts); throws BadRequest on a bad URL. */
  readonly inspect?: (url: string) => Promise<object>;
  /** POST /drain: leave the ring, keep serving by forwarding; resolves with what to answer. */
  readonly drain?: () => Promise<object>;
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
  readonly #purges = new PurgeHistory();

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
        case '/cluster/members':
          if (d.members === undefined) break;
          json(res, 200, await d.members());
          return;
        case '/purges':
          json(res, 200, { version: 1, from: d.config.nodeId, limit: this.#purges.limit, purges: this.#purges.recent() });
          return;
        case '/inspect': {
          if (d.inspect === undefined) break;
          this.#authorize(req);
          const url = new URLSearchParams((req.url ?? '').slice(path!.length + 1)).get('url') ?? '';
          json(res, 200, await d.inspect(url));
          return;
        }
      }
      if (serveStatusPage(path!, req.method, res)) return;
      json(res, 404, { error: `no such endpoint: ${path}` });
      return;
    }
    if (req.method === 'POST' && path === '/purge') {
      this.#authorize(req);
      const inval = parsePurgeBody(await readBody(req), d.config.upstream, d.keyOf);
      const started = Date.now();
      let seq: number;
      try {
        seq = await d.log.invalidate(inval);
      } catch (err) {
        throw new BadRequest(`purge not accepted: ${(err as Error).message}`, 503);
      }
      const acks = await d.log.waitApplied(seq, d.config.purgeTimeoutMs);
      d.metrics.purges.labels(inval.kind).inc();
      this.#purges.add(purgeRecord(inval, seq, started, Date.now() - started, acks));
      d.logger.info({ purge: inval, seq, ms: Date.now() - started, missing: acks.missing }, 'purge applied');
      json(res, 200, { seq, acknowledged: acks.acknowledged, missing: acks.missing });
      return;
    }
    if (req.method === 'POST' && path === '/drain' && d.drain !== undefined) {
      this.#authorize(req);
      req.resume();
      json(res, 200, await d.drain());
      return;
    }
    json(res, req.method === 'POST' ? 404 : 405, { error: `${req.method} ${path} is not an admin endpoint` });
  }

  #authorize(req: IncomingMessage): void {
    if (this.#token === undefined) {
      throw new BadRequest('admin writes and /inspect are disabled: set SIDECACHE_ADMIN_TOKEN to enable them', 403);
    }
    const auth = req.headers.authorization ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(auth);
    const given = m ? Buffer.from(m[1]!.trim()) : Buffer.alloc(0);
    if (given.length !== this.#token.length || !timingSafeEqual(given, this.#token)) {
      throw new BadRequest('missing or wrong bearer token', 401);
    }
  }
}
