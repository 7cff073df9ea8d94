// The primary cache key: scheme://host[:port]/path?query. Requests, purges (url and prefix)
// and RFC 9111 §4.4 write invalidations (target, Location, Content-Location) all build it
// with keyOf() over a canonical target (http/uri.ts) and nothing else, so that every
// spelling of a URL names one key. GET and HEAD share it; Vary adds a secondary key.
import type { Config } from '../core/config.js';

export { canonicalTarget, originOf, parseAbsolute, resolveReference } from '../http/uri.js';

export interface KeyOptions {
  readonly querySort: boolean;
  readonly queryDrop: ReadonlySet<string>;
}

export function keyOptions(config: Config): KeyOptions {
  return { querySort: config.querySort, queryDrop: new Set(config.queryDrop) };
}

/** The key of a canonical target at `keyOrigin` (see originOf): the one key function. The
 *  query options change the key only, never what is forwarded. */
export function keyOf(keyOrigin: string, target: string, opts: KeyOptions): string {
  if (!opts.querySort && opts.queryDrop.size === 0) return keyOrigin + target;
  const q = target.indexOf('?');
  if (q === -1) return keyOrigin + target;
  let params = target.slice(q + 1).split('&').filter((p) => p !== '');
  if (opts.queryDrop.size > 0) {
    params = params.filter((p) => {
      const eq = p.indexOf('=');
      return !opts.queryDrop.has(decodeURIComponentSafe(eq === -1 ? p : p.slice(0, eq)));
    });
  }
  if (opts.querySort) params.sort();
  const query = params.join('&');
  return keyOrigin + (query === '' ? target.slice(0, q) : `${target.slice(0, q)}?${query}`);
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** FNV-1a 32-bit: cheap and stable across processes; hash placement and fill subjects. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
