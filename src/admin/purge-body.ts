// The body of POST /purge -> one Invalidation of primary keys, or a 4xx saying what is
// wrong. Pure: the upstream and the key function come in as arguments.
import { SidecacheError } from '../core/errors.js';
import type { Invalidation } from '../core/types.js';
import { canonicalTarget, originOf, parseAbsolute } from '../proxy/key.js';

/** Most URLs or tags in one purge. */
export const MAX_PURGE_ITEMS = 1000;
/** Longest tag accepted (Surrogate-Key entries are short names). */
export const MAX_TAG_CHARS = 256;

/** An admin request refused with a 4xx (or the status given). */
export class BadRequest extends Error {
  readonly status: number;
  constructor(message: string, status = 400) {
    super(message);
    this.status = status;
  }
}

export type KeyFunction = (keyOrigin: string, target: string) => string;

/** A purge body -> an Invalidation of primary keys; throws BadRequest (400) and nothing else. */
export function parsePurgeBody(text: string, upstream: URL | undefined, keyOf: KeyFunction): Invalidation {
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
  if (unknown.length > 0) throw new BadRequest(`unknown field ${unknown.map((k) => `"${k.slice(0, 64)}"`).join(', ').slice(0, 512)}`);
  if (b.soft !== undefined && typeof b.soft !== 'boolean') throw new BadRequest('"soft" must be true or false');
  const soft = b.soft === true ? { soft: true } : {};
  if (b.url !== undefined) {
    const urls = Array.isArray(b.url) ? b.url : [b.url];
    if (urls.length === 0 || urls.length > MAX_PURGE_ITEMS || !urls.every((u) => typeof u === 'string')) {
      throw new BadRequest(`"url" must be a URL string or a list of 1-${MAX_PURGE_ITEMS} of them`);
    }
    const keys = (urls as string[]).map((u) => {
      const r = resolvePurgeTarget(u, '"url"', upstream);
      return keyOf(r.keyOrigin, r.target);
    });
    return { kind: 'url', keys: [...new Set(keys)], ...soft };
  }
  if (b.prefix !== undefined) {
    if (typeof b.prefix !== 'string' || b.prefix === '') throw new BadRequest('"prefix" must be a non-empty string');
    // A prefix is matched on the key's text: its target is canonical as keys' are (a partial
    // percent-encoding at its end is a 400), but a partial query is not sorted or filtered.
    const r = resolvePurgeTarget(b.prefix, '"prefix"', upstream);
    return { kind: 'prefix', prefix: r.keyOrigin + r.target, ...soft };
  }
  if (b.tags !== undefined) {
    const tags = typeof b.tags === 'string' ? [b.tags] : b.tags;
    if (!Array.isArray(tags) || tags.length === 0 || tags.length > MAX_PURGE_ITEMS ||
        !tags.every((t) => typeof t === 'string' && t !== '' && t.length <= MAX_TAG_CHARS)) {
      throw new BadRequest(`"tags" must be a list of 1-${MAX_PURGE_ITEMS} non-empty strings of at most ${MAX_TAG_CHARS} characters`);
    }
    return { kind: 'tags', tags: [...new Set(tags as string[])], ...soft };
  }
  if (b.all !== true) throw new BadRequest('"all" must be true');
  return { kind: 'all', ...soft };
}

/** Absolute URL, or in reverse mode a path on the upstream: its key origin and canonical
 *  target, split and normalised exactly as a request for it would be (proxy/recv.ts). */
export function resolvePurgeTarget(value: string, field: string, up: URL | undefined): { keyOrigin: string; target: string } {
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
