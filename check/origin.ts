// The checker's origin: a small versioned store on a loopback port. Every body names its key,
// its version, the origin response it came from and (for keys that Vary) its variant, so a
// client can tell exactly which fetch a cached answer came from. Every response is recorded in
// the history. The keys cover what the cluster's promises depend on: validators (ETag and
// Last-Modified), short max-age, stale-while-revalidate and stale-if-error, Vary, Surrogate-Key
// tags, slow answers and failing ones. POST and PUT bump a key's version.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { serveLoopback } from '../support/origin.js';
import type { History, OriginResponse } from './history.js';
import { Rng } from './prng.js';

export const GROUPS = ['a', 'b', 'c'] as const;
export const KEYS_PER_GROUP = 8;
export const LANGS = ['en', 'de', 'fr'] as const;

/** How the origin answers one key. */
export interface KeyProfile {
  readonly maxAgeSec: number;
  readonly swrSec?: number;
  readonly staleIfErrorSec?: number;
  readonly vary: boolean;
  /** Without an ETag: revalidation by Last-Modified only. */
  readonly etag: boolean;
  /** Milliseconds the answer may be held back (uniform in [0, slowMs]). */
  readonly slowMs: number;
  /** Share of GETs answered 503. */
  readonly failRate: number;
  readonly tags: readonly string[];
}

/** The profile of `/k/<group>/<i>`: fixed by the index, so a history reads the same every run. */
function profileOf(group: string, i: number): KeyProfile {
  const base = { vary: false, etag: true, slowMs: 0, failRate: 0, tags: [`g-${group}`, `t-${i % 3}`] };
  switch (i) {
    case 0: return { ...base, maxAgeSec: 2, swrSec: 20 };
    case 1: return { ...base, maxAgeSec: 3 };
    case 2: return { ...base, maxAgeSec: 4, vary: true };
    case 3: return { ...base, maxAgeSec: 20 };
    case 4: return { ...base, maxAgeSec: 4, swrSec: 10, slowMs: 1500 };
    case 5: return { ...base, maxAgeSec: 3, staleIfErrorSec: 10, failRate: 0.25 };
    case 6: return { ...base, maxAgeSec: 30, etag: false };
    default: return { ...base, maxAgeSec: 6, swrSec: 10, vary: true };
  }
}

export const KEYS: readonly string[] = GROUPS.flatMap((g) => Array.from({ length: KEYS_PER_GROUP }, (_, i) => `/k/${g}/${i}`));
const PROFILES = new Map(KEYS.map((k) => {
  const [, , g, i] = k.split('/');
  return [k, profileOf(g!, Number(i))];
}));

export function profile(key: string): KeyProfile | undefined {
  return PROFILES.get(key);
}

/** Keys a purge body names (tags and prefixes resolved with the fixed profiles). */
export function keysOfPurge(body: { url?: string[]; prefix?: string; tags?: string[]; all?: true }): readonly string[] {
  if (body.all === true) return KEYS;
  if (body.url !== undefined) return body.url;
  if (body.prefix !== undefined) return KEYS.filter((k) => k.startsWith(body.prefix!));
  const tags = new Set(body.tags ?? []);
  return KEYS.filter((k) => PROFILES.get(k)!.tags.some((t) => tags.has(t)));
}

/** Last-Modified of a version: one second per version from a fixed date, so two versions never
 *  share a Last-Modified (HTTP dates have one-second resolution, RFC 9110 §5.6.7). */
const LM_BASE_MS = Date.UTC(2024, 0, 1);
export function lastModifiedOf(version: number): string {
  return new Date(LM_BASE_MS + version * 1000).toUTCString();
}
export function versionOfLastModified(date: string): number | undefined {
  const ms = Date.parse(date);
  return Number.isNaN(ms) ? undefined : Math.round((ms - LM_BASE_MS) / 1000);
}

export interface VersionedOrigin {
  readonly url: string;
  /** The key's version now. */
  version(key: string): number;
  /** An operator's edit: the next version of `key`, without telling any cache. */
  bump(key: string): number;
  close(): Promise<void>;
}

export async function startVersionedOrigin(history: History, seed: number): Promise<VersionedOrigin> {
  const rng = Rng.fork(seed, 'origin');
  const versions = new Map<string, number>(KEYS.map((k) => [k, 1]));
  const bump = (key: string, by: 'write' | 'operator'): number => {
    const v = versions.get(key)! + 1;
    versions.set(key, v);
    history.bumps.push({ key, at: history.now(), version: v, by });
    return v;
  };

  function answer(req: IncomingMessage, res: ServerResponse, rec: OriginResponse, p: KeyProfile): void {
    const key = rec.key;
    const v = versions.get(key)!;
    rec.version = v;
    const cc = ['public', `max-age=${p.maxAgeSec}`];
    if (p.swrSec !== undefined) cc.push(`stale-while-revalidate=${p.swrSec}`);
    if (p.staleIfErrorSec !== undefined) cc.push(`stale-if-error=${p.staleIfErrorSec}`);
    const validators: Record<string, string> = { 'last-modified': lastModifiedOf(v) };
    if (p.etag) validators.etag = `"${v}"`;
    const common: Record<string, string> = { 'cache-control': cc.join(', '), 'x-origin': '1', ...validators };
    if (p.vary) common.vary = 'Accept-Language';

    // RFC 9110 §13.2.2: If-None-Match is evaluated first; If-Modified-Since only without it.
    const inm = req.headers['if-none-match'];
    const ims = req.headers['if-modified-since'];
    let notModified = false;
    if (inm !== undefined) notModified = p.etag && inm.split(',').some((t) => t.trim().replace(/^W\//, '') === `"${v}"` || t.trim() === '*');
    else if (ims !== undefined) notModified = versionOfLastModified(ims) !== undefined && versionOfLastModified(ims)! >= v;
    if (notModified) {
      rec.status = 304;
      res.writeHead(304, common);
      res.end();
      return;
    }
    const lang = p.vary ? pickLang(req.headers['accept-language']) : '-';
    const body = `key=${key} v=${v} f=${rec.id} lang=${lang}\n`;
    rec.status = 200;
    res.writeHead(200, {
      ...common,
      'content-type': 'text/plain',
      'content-length': Buffer.byteLength(body),
      'surrogate-key': p.tags.join(' '),
      'x-version': String(v),
      'x-fetch': String(rec.id),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  const server = await serveLoopback((req, res) => {
    if ((req.url ?? '').includes('?')) {
      // A URL with a query is another resource, written only by the fault that floods INVAL
      // (each write is an invalidation in the log); it has no version and is not recorded.
      req.resume();
      res.writeHead(204, { 'x-origin': '1' }).end();
      return;
    }
    const key = req.url ?? '/';
    const rec: OriginResponse = {
      id: history.id(), key, method: req.method ?? '?', receivedAt: history.now(),
      conditional: req.headers['if-none-match'] !== undefined || req.headers['if-modified-since'] !== undefined,
      via: String(req.headers.via ?? ''),
    };
    history.origin.push(rec);
    res.once('finish', () => { rec.sentAt = history.now(); });
    const p = PROFILES.get(key);
    if (p === undefined) {
      rec.status = 404;
      res.writeHead(404, { 'content-type': 'text/plain', 'x-origin': '1' });
      res.end('no such key\n');
      return;
    }
    if (req.method === 'POST' || req.method === 'PUT') {
      // Drain the body (bounded by what the clients send: a few bytes), then write.
      req.resume();
      req.once('end', () => {
        const v = bump(key, 'write');
        rec.version = v;
        rec.status = req.method === 'POST' ? 200 : 204;
        if (rec.status === 204) res.writeHead(204, { 'x-origin': '1', 'x-version': String(v) }).end();
        else {
          const body = `key=${key} v=${v} written\n`;
          res.writeHead(200, { 'x-origin': '1', 'x-version': String(v), 'cache-control': 'no-store', 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
          res.end(body);
        }
      });
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      rec.status = 405;
      res.writeHead(405, { 'x-origin': '1' }).end();
      return;
    }
    if (p.failRate > 0 && rng.chance(p.failRate)) {
      rec.status = 503;
      res.writeHead(503, { 'x-origin': '1', 'cache-control': 'no-store', 'content-type': 'text/plain' });
      res.end('origin failing on purpose\n');
      return;
    }
    const delayMs = p.slowMs > 0 ? rng.int(p.slowMs) : 0;
    if (delayMs === 0) answer(req, res, rec, p);
    else setTimeout(() => { if (!res.destroyed) answer(req, res, rec, p); }, delayMs);
  }, 1000);
  return {
    url: server.url,
    version: (key) => versions.get(key)!,
    bump: (key) => bump(key, 'operator'),
    close: server.close,
  };
}

function pickLang(header: string | string[] | undefined): string {
  const h = Array.isArray(header) ? header.join(',') : header ?? '';
  return LANGS.find((l) => h.trim().startsWith(l)) ?? 'en';
}
