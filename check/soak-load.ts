// The soak's traffic: an origin with thousands of keys of 1-48 KiB (enough to overfill a small
// byte budget many times), and a client that issues a fixed mix of operations at a fixed rate
// to whichever sidecars are up: hits on a hot set, misses over the whole key space, HEAD and
// conditional GETs, unsafe writes (which bump the origin's version and invalidate the key
// cluster-wide), and purges of every kind through the admin API. Only counters are kept, so a
// 30-minute run holds no history. Every request has a timeout; the in-flight count is bounded.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Pool } from 'undici';
import { serveLoopback } from '../support/origin.js';
import { ADMIN_TOKEN } from '../support/sidecar.js';
import { Rng } from './prng.js';

/** Keys per group (a prefix `/s/G/` and a tag `gG`); the soak's key space is `groups` of them. */
export const PER_GROUP = 128;
/** Groups by default: 8,192 keys of 1-48 KiB, about 100 MiB at the origin. */
export const DEFAULT_GROUPS = 64;
/** The hot set: the first keys of the space, read with a skew (most reads on the first few). */
const HOT_KEYS = 400;
const LANGS = ['en', 'de', 'fr'] as const;
/** Marks an answer the origin made, so a 5xx of the origin's is told from one of a sidecar's. */
const ORIGIN_MARK = 'x-soak-origin';

export function keyOf(k: number): string {
  return `/s/${Math.floor(k / PER_GROUP)}/${k % PER_GROUP}`;
}

interface Profile {
  readonly size: number;
  readonly cacheControl: string;
  readonly vary: boolean;
  /** Share of GETs answered 503 (keys with stale-if-error). */
  readonly failRate: number;
  /** Milliseconds an answer may be held back. */
  readonly slowMs: number;
  readonly tags: string;
}

/** A key's fixed profile, a function of its index: the same in every run. */
function profileOf(k: number, bodyScale: number): Profile {
  const r = Rng.fork(k, 'soak-key');
  const size = Math.round(1024 * bodyScale * 48 ** r.next());
  const u = r.next();
  const base = { size, vary: false, failRate: 0, slowMs: r.chance(0.03) ? 400 : 0, tags: `g${Math.floor(k / PER_GROUP)} t${k % 97}` };
  if (u < 0.66) return { ...base, cacheControl: 'public, max-age=300' };
  if (u < 0.78) return { ...base, cacheControl: 'public, max-age=3' };
  if (u < 0.86) return { ...base, cacheControl: 'public, max-age=5, stale-while-revalidate=30' };
  if (u < 0.92) return { ...base, cacheControl: 'public, max-age=120', vary: true };
  if (u < 0.97) return { ...base, cacheControl: 'public, max-age=4, stale-if-error=60', failRate: 0.2 };
  if (u < 0.985) return { ...base, cacheControl: 'private, max-age=60' };
  return { ...base, cacheControl: 'no-store' };
}

export interface OriginStats {
  requests: number;
  notModified: number;
  failed: number;
  writes: number;
}

export interface SoakOrigin {
  readonly url: string;
  readonly stats: OriginStats;
  etagOf(key: string): string;
  close(): Promise<void>;
}

/** `bodyScale` multiplies every body's size (1-48 KiB at 1): a large budget is filled sooner. */
export async function startSoakOrigin(seed: number, groups = DEFAULT_GROUPS, bodyScale = 1): Promise<SoakOrigin> {
  const rng = Rng.fork(seed, 'soak-origin');
  const KEY_COUNT = groups * PER_GROUP;
  const profiles = Array.from({ length: KEY_COUNT }, (_, k) => profileOf(k, bodyScale));
  const versions = new Uint32Array(KEY_COUNT).fill(1);
  const filler = Buffer.alloc(48 * 1024 * bodyScale + 1024, 'abcdefghijklmnopqrstuvwxyz0123456789\n');
  const stats: OriginStats = { requests: 0, notModified: 0, failed: 0, writes: 0 };
  const indexOf = (path: string): number => {
    const m = /^\/s\/(\d+)\/(\d+)$/.exec(path);
    if (m === null) return -1;
    const g = Number(m[1]);
    const i = Number(m[2]);
    return g < groups && i < PER_GROUP ? g * PER_GROUP + i : -1;
  };
  const etag = (k: number) => `"${k}-${versions[k]}"`;

  function answer(req: IncomingMessage, res: ServerResponse, k: number): void {
    const p = profiles[k]!;
    const method = req.method ?? 'GET';
    if (method === 'POST' || method === 'PUT' || method === 'DELETE') {
      stats.writes++;
      versions[k]! += 1;
      if (method === 'DELETE') res.writeHead(204, { [ORIGIN_MARK]: '1' }).end();
      else res.writeHead(200, { [ORIGIN_MARK]: '1', 'cache-control': 'no-store', 'content-length': 3 }).end('ok\n');
      return;
    }
    if (p.failRate > 0 && rng.chance(p.failRate)) {
      stats.failed++;
      res.writeHead(503, { [ORIGIN_MARK]: '1', 'content-length': 12 }).end('origin down\n');
      return;
    }
    const headers: Record<string, string | number> = {
      [ORIGIN_MARK]: '1', 'cache-control': p.cacheControl, etag: etag(k), 'surrogate-key': p.tags, 'content-type': 'text/plain',
    };
    if (p.vary) headers.vary = 'Accept-Language';
    if (req.headers['if-none-match'] === etag(k)) {
      stats.notModified++;
      res.writeHead(304, headers).end();
      return;
    }
    const head = Buffer.from(`key=${keyOf(k)} v=${versions[k]} lang=${p.vary ? String(req.headers['accept-language'] ?? '-') : '-'}\n`);
    headers['content-length'] = head.length + p.size;
    res.writeHead(200, headers);
    if (method === 'HEAD') { res.end(); return; }
    res.write(head);
    res.end(filler.subarray(0, p.size));
  }

  const server = await serveLoopback((req, res) => {
    stats.requests++;
    req.resume();
    const k = indexOf(req.url ?? '');
    if (k < 0) {
      res.writeHead(404, { [ORIGIN_MARK]: '1', 'content-length': 10 }).end('no such\n\n');
      return;
    }
    const slow = profiles[k]!.slowMs;
    if (slow > 0 && (req.method === 'GET' || req.method === 'HEAD')) setTimeout(() => answer(req, res, k), rng.int(slow));
    else req.once('end', () => answer(req, res, k));
  }, 10_000);
  return {
    url: server.url,
    stats,
    etagOf: (key: string) => { const k = indexOf(key); return k < 0 ? '' : etag(k); },
    close: server.close,
  };
}

/** A sidecar the load may send requests to. */
export interface LoadTarget {
  readonly id: string;
  readonly url: string;
  readonly adminUrl: string;
  /** Whether requests may be sent now; `changes` counts this target's starts and stops. */
  readonly state: 'up' | 'down' | 'leaving';
  readonly changes: number;
}

export const OP_KINDS = ['hit', 'miss', 'head', 'conditional', 'write', 'purge'] as const;
export type OpKind = (typeof OP_KINDS)[number];
/** The mix, in shares of all operations: at 150 ops/s about 2 purges and 9 writes a second. */
const MIX: Readonly<Record<OpKind, number>> = { hit: 56, miss: 26, head: 3, conditional: 7, write: 6.5, purge: 1.5 };
export const PURGE_KINDS = ['url', 'url-soft', 'prefix', 'tags', 'tags-soft', 'all'] as const;
type PurgeKind = (typeof PURGE_KINDS)[number];
/** Purge-all is not drawn: it empties every cache and sends a burst of misses to the origin, so
 *  it comes at the times the soak gives (the same place in every window it compares). */
const PURGE_MIX: Readonly<Record<Exclude<PurgeKind, 'all'>, number>> = { url: 38, 'url-soft': 16, prefix: 15, tags: 20, 'tags-soft': 10 };

export interface OpCounts {
  issued: number;
  ok: number;
  /** Error statuses the origin made (its 503s, passed through when no stale copy may serve). */
  originErrors: number;
  /** Sidecar-made error statuses (4xx and 5xx) and failed requests, at a member that stayed up throughout. */
  errors: number;
  /** The same, at a member that was stopped, killed or restarted during the request. */
  errorsAtChange: number;
}

export interface LoadStats {
  byKind: Record<OpKind, OpCounts>;
  purgesByKind: Record<PurgeKind, number>;
  /** Purges that returned 200 listing a member as missing. */
  purgesWithMissing: number;
  /** Operations not issued because too many were in flight. */
  skipped: number;
  /** Reads by their Cache-Status: each entry's hit or fwd=..., the owner's first ("hit > fwd=uri-miss"). */
  cacheStatus: Record<string, number>;
  /** The first few unexpected errors, for the summary. */
  errorSamples: string[];
}

export interface LoadOptions {
  readonly seed: number;
  readonly ratePerSec: number;
  readonly maxInFlight: number;
  readonly requestTimeoutMs: number;
  readonly origin: SoakOrigin;
  /** Groups of PER_GROUP keys: the origin's key space. */
  readonly groups: number;
  /** The sidecars now (a join adds one, a leave marks it). */
  readonly targets: () => readonly LoadTarget[];
  /** When to purge everything (Date.now() values); more with purgeAllAt(). */
  readonly purgeAllAt: readonly number[];
}

/** The client side: `run(untilMs)` issues operations at the fixed rate until then. */
export class Load {
  readonly stats: LoadStats;
  readonly #o: LoadOptions;
  readonly #rng: Rng;
  readonly #pools = new Map<string, Pool>();
  readonly #purgeAllAt: number[];
  #inFlight = 0;

  constructor(o: LoadOptions) {
    this.#o = o;
    this.#rng = Rng.fork(o.seed, 'soak-load');
    this.#purgeAllAt = [...o.purgeAllAt].sort((a, b) => a - b);
    const counts = (): OpCounts => ({ issued: 0, ok: 0, originErrors: 0, errors: 0, errorsAtChange: 0 });
    this.stats = {
      byKind: Object.fromEntries(OP_KINDS.map((k) => [k, counts()])) as Record<OpKind, OpCounts>,
      purgesByKind: Object.fromEntries(PURGE_KINDS.map((k) => [k, 0])) as Record<PurgeKind, number>,
      purgesWithMissing: 0, skipped: 0, cacheStatus: {}, errorSamples: [],
    };
  }

  /** Issues operations every 20 ms, as many as the rate asks; resolves once those in flight are done. */
  async run(untilMs: number): Promise<void> {
    const began = performance.now();
    let issued = 0;
    const maxTicks = Math.ceil((untilMs - Date.now()) / 20) + 10;
    for (let tick = 0; tick < maxTicks && Date.now() < untilMs; tick++) {
      const due = Math.floor(((performance.now() - began) / 1000) * this.#o.ratePerSec);
      for (; issued < due; issued++) {
        if (this.#inFlight >= this.#o.maxInFlight) { this.stats.skipped++; continue; }
        this.#inFlight++;
        const all = this.#purgeAllAt.length > 0 && Date.now() >= this.#purgeAllAt[0]!;
        if (all) this.#purgeAllAt.shift();
        void this.#one(all).finally(() => { this.#inFlight--; });
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const deadline = Date.now() + this.#o.requestTimeoutMs + 5_000;
    while (this.#inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  }

  /** One more purge of everything, at `at` (a Date.now() value). */
  purgeAllAt(at: number): void {
    this.#purgeAllAt.push(at);
    this.#purgeAllAt.sort((a, b) => a - b);
  }

  /** A target's connections are dropped (it left for good). */
  async forget(target: LoadTarget): Promise<void> {
    for (const u of [target.url, target.adminUrl]) {
      const p = this.#pools.get(u);
      this.#pools.delete(u);
      await p?.destroy().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((p) => p.destroy().catch(() => undefined)));
    this.#pools.clear();
  }

  #pool(url: string, connections: number): Pool {
    let p = this.#pools.get(url);
    if (p === undefined) {
      p = new Pool(url, {
        connections, keepAliveTimeout: 30_000, keepAliveMaxTimeout: 30_000,
        headersTimeout: this.#o.requestTimeoutMs, bodyTimeout: this.#o.requestTimeoutMs,
      });
      this.#pools.set(url, p);
    }
    return p;
  }

  /** One operation drawn from the mix, or the purge-all that is due. */
  async #one(purgeAll: boolean): Promise<void> {
    const up = this.#o.targets().filter((t) => t.state === 'up');
    if (up.length === 0) { this.stats.skipped++; return; }
    const rng = this.#rng;
    const target = rng.pick(up);
    const kind = purgeAll ? 'purge' : rng.weighted(MIX);
    const c = this.stats.byKind[kind];
    c.issued++;
    const changesAtStart = target.changes;
    let status = 0;
    let fromOrigin = false;
    let failure = '';
    try {
      if (kind === 'purge') {
        ({ status } = await this.#purge(target, purgeAll ? 'all' : rng.weighted(PURGE_MIX)));
      } else {
        const hot = kind === 'miss' ? false : kind === 'write' ? rng.chance(0.5) : true;
        const k = hot ? Math.floor(HOT_KEYS * rng.next() ** 2) : rng.int(this.#o.groups * PER_GROUP);
        const path = keyOf(k);
        const headers: Record<string, string> = { 'accept-language': rng.pick(LANGS) };
        if (kind === 'conditional') headers['if-none-match'] = this.#o.origin.etagOf(path);
        const method = kind === 'head' ? 'HEAD' : kind === 'write' ? rng.pick(['POST', 'PUT', 'DELETE'] as const) : 'GET';
        const r = await this.#pool(target.url, 8).request({
          path, method, headers, body: method === 'POST' || method === 'PUT' ? 'x=1' : undefined,
          signal: AbortSignal.timeout(this.#o.requestTimeoutMs),
        });
        await r.body.dump({ limit: 1 << 20 });
        status = r.statusCode;
        fromOrigin = r.headers[ORIGIN_MARK] !== undefined;
        if (method === 'GET' || method === 'HEAD') {
          // Through a peer the owner's entry comes first, ours last: "hit > fwd=uri-miss" is a hit at the owner.
          const cs = String(r.headers['cache-status'] ?? '');
          const what = cs === '' ? 'none' : cs.split(',').map((e) => /;\s*(hit|fwd=[a-z-]+)/.exec(e)?.[1] ?? '?').join(' > ');
          this.stats.cacheStatus[what] = (this.stats.cacheStatus[what] ?? 0) + 1;
        }
      }
    } catch (err) {
      failure = (err as Error).message;
    }
    if (failure === '' && status !== 0 && (status < 400 || (status < 500 && fromOrigin))) { c.ok++; return; }
    if (failure === '' && fromOrigin) { c.originErrors++; return; }
    if (target.changes !== changesAtStart || target.state !== 'up') { c.errorsAtChange++; return; }
    c.errors++;
    if (this.stats.errorSamples.length < 10) this.stats.errorSamples.push(`${kind} at ${target.id}: ${failure || `status ${status}`}`);
  }

  async #purge(target: LoadTarget, kind: PurgeKind): Promise<{ status: number }> {
    const rng = this.#rng;
    this.stats.purgesByKind[kind]++;
    const soft = kind.endsWith('-soft') ? { soft: true } : {};
    const body = kind === 'all' ? { all: true }
      : kind === 'prefix' ? { prefix: `/s/${rng.int(this.#o.groups)}/` }
      : kind.startsWith('tags') ? { tags: [rng.chance(0.5) ? `g${rng.int(this.#o.groups)}` : `t${rng.int(97)}`], ...soft }
      : { url: [keyOf(rng.chance(0.5) ? rng.int(HOT_KEYS) : rng.int(this.#o.groups * PER_GROUP))], ...soft };
    const r = await this.#pool(target.adminUrl, 2).request({
      path: '/purge', method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body), signal: AbortSignal.timeout(this.#o.requestTimeoutMs),
    });
    const text = await r.body.text();
    if (r.statusCode === 200) {
      try {
        if (((JSON.parse(text) as { missing?: unknown[] }).missing ?? []).length > 0) this.stats.purgesWithMissing++;
      } catch { /* counted as ok: the purge returned 200 */ }
    }
    return { status: r.statusCode };
  }
}
