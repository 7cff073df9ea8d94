// The primary cache key: scheme://host[:port]/path?query, with the host lower-cased, the
// default port dropped and percent-encoding normalised; GET and HEAD share it.
import type { Config } from '../config.js';

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/** RFC 3986 §6.2.2: upper-case percent-encodings, decode the unreserved ones. */
export function normalizePercent(path: string): string {
  if (path.indexOf('%') === -1) return path;
  return path.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => {
    const ch = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
  });
}

export interface KeyOptions {
  readonly querySort: boolean;
  readonly queryDrop: ReadonlySet<string>;
}

export function keyOptions(config: Config): KeyOptions {
  return { querySort: config.querySort, queryDrop: new Set(config.queryDrop) };
}

/** Normalises an origin-form target ("/path?query"). */
export function normalizeTarget(target: string, opts: KeyOptions): string {
  const q = target.indexOf('?');
  if (q === -1) return normalizePercent(target);
  const path = normalizePercent(target.slice(0, q));
  let query = target.slice(q + 1);
  if (opts.querySort || opts.queryDrop.size > 0) {
    let params = query.split('&').filter((p) => p !== '');
    if (opts.queryDrop.size > 0) {
      params = params.filter((p) => {
        const eq = p.indexOf('=');
        return !opts.queryDrop.has(decodeURIComponentSafe(eq === -1 ? p : p.slice(0, eq)));
      });
    }
    if (opts.querySort) params.sort();
    query = params.join('&');
    if (query === '') return path;
  }
  return `${path}?${normalizePercent(query)}`;
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** "http://host" with the host lower-cased and the default port dropped. */
export function originOf(scheme: string, hostPort: string): string {
  const host = hostPort.toLowerCase();
  if (scheme === 'http' && host.endsWith(':80')) return `http://${host.slice(0, -3)}`;
  if (scheme === 'https' && host.endsWith(':443')) return `https://${host.slice(0, -4)}`;
  return `${scheme}://${host}`;
}

/** Key of an absolute URL (purge API, Location headers). */
export function keyOfUrl(url: URL, opts: KeyOptions): string {
  return originOf(url.protocol.slice(0, -1), url.host) + normalizeTarget(url.pathname + url.search, opts);
}

/** FNV-1a 32-bit: cheap and stable across processes; partitions and fill subjects. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function partitionOf(key: string, partitions: number): number {
  return hash32(key) % partitions;
}
