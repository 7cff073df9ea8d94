// May a response be stored, and for how long (RFC 9111 §3, §4.2)? http-cache-semantics
// decides §3 and the freshness lifetime; the rules it leaves open are here.
import CachePolicy from 'http-cache-semantics';
import { deltaSeconds, parseCacheControl } from './cache-control.js';
import type { Freshness } from './freshness.js';
import { connectionTokens, HOP_BY_HOP } from './headers.js';

export type PolicyRequest = CachePolicy.Request;
export type PolicyResponse = CachePolicy.Response;

export const POLICY_OPTIONS: CachePolicy.Options = { shared: true, cacheHeuristic: 0.1, immutableMinTimeToLive: 24 * 3600 * 1000 };

/** How long a stale entry with validators is kept for conditional revalidation. */
export const REVALIDATION_KEEP_MS = 24 * 3600 * 1000;

export type Admission =
  | { readonly storable: true; readonly freshness: Freshness; readonly keepUntil: number }
  | { readonly storable: false; readonly reason: string };

/** Freshness of a response a policy was just built for (or revalidated) at `now`. */
export function freshnessOf(policy: CachePolicy, headers: PolicyResponse['headers'], now: number, defaultTtlMs: number): Freshness {
  const cc = parseCacheControl(headers['cache-control']);
  const initialAgeSec = policy.age();
  // http-cache-semantics makes proxy-revalidate "never fresh" in a shared cache; RFC 9111
  // §5.2.2.8 only forbids serving it stale (mustRevalidate below), so use its lifetime.
  const lifetimeSec = cc.has('proxy-revalidate') && !cc.has('no-cache') && policy.storable()
    ? deltaSeconds(cc, 's-maxage') ?? deltaSeconds(cc, 'max-age') ?? policy.maxAge()
    : policy.maxAge();
  let freshMs = Math.max(0, (lifetimeSec - initialAgeSec) * 1000);
  const explicit = cc.has('max-age') || cc.has('s-maxage') || headers.expires !== undefined;
  if (freshMs === 0 && !explicit && !cc.has('no-cache') && defaultTtlMs > 0 && headers['last-modified'] === undefined) {
    freshMs = defaultTtlMs;
  }
  const freshUntil = now + Math.round(freshMs);
  return {
    storedAt: now,
    initialAgeSec,
    freshUntil,
    staleWhileRevalidateUntil: freshUntil + (deltaSeconds(cc, 'stale-while-revalidate') ?? 0) * 1000,
    staleIfErrorUntil: freshUntil + (deltaSeconds(cc, 'stale-if-error') ?? 0) * 1000,
    mustRevalidate: cc.has('must-revalidate') || cc.has('proxy-revalidate') || cc.has('s-maxage') || cc.has('no-cache'),
    hasValidators: headers.etag !== undefined || headers['last-modified'] !== undefined,
  };
}

export function keepUntilOf(f: Freshness): number {
  const stale = Math.max(f.freshUntil, f.staleWhileRevalidateUntil, f.staleIfErrorUntil);
  return f.hasValidators ? Math.max(stale, f.freshUntil + REVALIDATION_KEEP_MS) : stale;
}

export function admit(policy: CachePolicy, res: PolicyResponse, now: number, defaultTtlMs: number): Admission {
  if (!policy.storable()) return { storable: false, reason: 'not storable' };
  // 206 and other partial forms: we answer ranges from full responses only.
  if (res.status === 206) return { storable: false, reason: 'partial content' };
  // Never replay one client's cookie to another: responses that set cookies are not stored.
  if (res.headers['set-cookie'] !== undefined) return { storable: false, reason: 'set-cookie' };
  // RFC 9111 §4.1: a Vary with "*" anywhere in its list never matches a later request.
  const vary = res.headers.vary;
  if (vary !== undefined && (Array.isArray(vary) ? vary.join(',') : vary).split(',').some((v) => v.trim() === '*')) {
    return { storable: false, reason: 'vary *' };
  }
  const freshness = freshnessOf(policy, res.headers, now, defaultTtlMs);
  if (freshness.freshUntil <= now && !freshness.hasValidators && freshness.staleIfErrorUntil <= now) {
    return { storable: false, reason: 'no freshness and no validators' };
  }
  return { storable: true, freshness, keepUntil: keepUntilOf(freshness) };
}

/** Fields that describe the stored body: a 304 never changes them (RFC 9111 §3.2). */
const KEPT_ON_UPDATE: ReadonlySet<string> = new Set(['content-length', 'content-encoding', 'transfer-encoding', 'content-range']);

/**
 * The stored response updated by a 304 (RFC 9111 §4.3.4): its fields replace the stored
 * ones and fields it adds are added (§3.2). http-cache-semantics replaces only the fields
 * the stored response already had, so a 304 adding, say, Cache-Control would be lost.
 */
export function revalidatedPolicy(policy: CachePolicy, req: PolicyRequest, res: PolicyResponse): { policy: CachePolicy; modified: boolean } {
  const r = policy.revalidatedPolicy(req, res);
  if (r.modified || !r.matches) return r;
  const headers = { ...r.policy.toObject().resh };
  const listed = connectionTokens(res.headers.connection);
  let added = false;
  for (const name in res.headers) {
    if (name in headers || KEPT_ON_UPDATE.has(name) || HOP_BY_HOP.has(name) || listed?.has(name)) continue;
    headers[name] = res.headers[name];
    added = true;
  }
  if (!added) return { policy: r.policy, modified: false };
  return { policy: new CachePolicy(req, { status: policy.toObject().st, headers }, POLICY_OPTIONS), modified: false };
}

export { CachePolicy };
