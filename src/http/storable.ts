// May a response be stored, and for how long (RFC 9111 §3, §4.2)? http-cache-semantics
// decides §3 and the freshness lifetime; the rules it leaves open are here.
import CachePolicy from 'http-cache-semantics';
import { canonicalCacheControl, deltaSeconds, parseCacheControl } from './cache-control.js';
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

/** The response as http-cache-semantics must see it: its own Cache-Control parser compares
 *  names case-sensitively and keeps the last duplicate, so `Private` or `NO-STORE` would be
 *  stored by this shared cache (RFC 9111 §5.2: names are case-insensitive; §5.2.2.7). It is
 *  given the canonical spelling, read as parseCacheControl reads it. */
export function policyResponse(res: PolicyResponse): PolicyResponse {
  const cc = res.headers['cache-control'];
  if (cc === undefined) return res;
  const canonical = canonicalCacheControl(cc);
  if (canonical === cc) return res;
  return { ...res, headers: { ...res.headers, 'cache-control': canonical } };
}

/** A policy for a response just received (see policyResponse). */
export function newPolicy(req: PolicyRequest, res: PolicyResponse): CachePolicy {
  return new CachePolicy(req, policyResponse(res), POLICY_OPTIONS);
}

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

/** Fields this cache never stores (admit refuses a response carrying them), so an update never
 *  adds or replaces them either (§3.2: fields excepted from storage are excepted from updates). */
const NEVER_STORED: ReadonlySet<string> = new Set(['set-cookie']);

/** The request a stored response's policy is built from: its secondary key (names, values as
 *  in Entry) and nothing else. http-cache-semantics keeps the request head it is given for Vary
 *  matching and publishes it in toObject(); the client's other fields (cookies, API keys, a
 *  peer's signature) must neither be held nor leave in a fill. Requests with Authorization or
 *  `Cache-Control: no-store`, the request fields its storable() reads, never get this far. */
export function policyRequestOf(path: string, names: readonly string[] | null, values: readonly string[]): PolicyRequest {
  const headers: Record<string, string> = {};
  if (names !== null) for (let i = 0; i < names.length; i++) if (values[i] !== '') headers[names[i]!] = values[i]!;
  // HEAD is fetched as GET so the body can be stored for later GETs.
  return { method: 'GET', url: path, headers };
}

function isWeak(etag: string): boolean {
  return etag.trimStart().startsWith('W/');
}

function opaque(etag: string): string {
  const t = etag.trim();
  return t.startsWith('W/') ? t.slice(2) : t;
}

/**
 * RFC 9111 §4.3.4: is a 304 an update for the stored response with these validators? A strong
 * ETag must equal the stored one (strong comparison); a weak one match it weakly; without an
 * ETag, a Last-Modified must equal the stored one. Any other validator speaks of another
 * representation. A 304 with no validator at all is an update when it answered the validators
 * of this very response (`asked`; RFC 9110 §15.4.5 lets a server leave Last-Modified out, and
 * we revalidate one stored response at a time), or when the stored response has none either.
 */
export function isUpdateFor(
  stored: { readonly etag: string | undefined; readonly lastModified: string | undefined }, res: PolicyResponse, asked: boolean,
): boolean {
  const etag = res.headers.etag;
  if (typeof etag === 'string' && etag.trim() !== '') {
    if (stored.etag === undefined) return false;
    if (!isWeak(etag)) return !isWeak(stored.etag) && stored.etag.trim() === etag.trim();
    return opaque(stored.etag) === opaque(etag);
  }
  const lm = res.headers['last-modified'];
  if (typeof lm === 'string' && lm.trim() !== '') return stored.lastModified !== undefined && stored.lastModified.trim() === lm.trim();
  return asked || (stored.etag === undefined && stored.lastModified === undefined);
}

/**
 * The stored response updated by a 304 (RFC 9111 §4.3.4): its fields replace the stored
 * ones and fields it adds are added (§3.2). http-cache-semantics replaces only the fields
 * the stored response already had, so a 304 adding, say, Cache-Control would be lost.
 * Fields never stored (Set-Cookie) are neither: they are for the client the 304 answered.
 */
export function revalidatedPolicy(policy: CachePolicy, req: PolicyRequest, res: PolicyResponse): { policy: CachePolicy; modified: boolean } {
  let update = policyResponse(res);
  for (const name in res.headers) {
    if (!NEVER_STORED.has(name)) continue;
    const headers = { ...update.headers };
    for (const n of NEVER_STORED) delete headers[n];
    update = { ...update, headers };
    break;
  }
  const r = policy.revalidatedPolicy(req, update);
  if (r.modified || !r.matches) return r;
  const headers = { ...r.policy.toObject().resh };
  const listed = connectionTokens(update.headers.connection);
  let added = false;
  for (const name in update.headers) {
    if (name in headers || KEPT_ON_UPDATE.has(name) || HOP_BY_HOP.has(name) || listed?.has(name)) continue;
    headers[name] = update.headers[name];
    added = true;
  }
  if (!added) return { policy: r.policy, modified: false };
  return { policy: new CachePolicy(req, { status: policy.toObject().st, headers }, POLICY_OPTIONS), modified: false };
}

export { CachePolicy };
