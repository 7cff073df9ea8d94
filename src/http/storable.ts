// May a response be stored, and for how long (RFC 9111 §3, §4.2)? http-cache-semantics
// decides §3 and the freshness lifetime; the rules it leaves open are here.
import CachePolicy from 'http-cache-semantics';
import { deltaSeconds, formatCacheControl, parseCacheControl } from './cache-control.js';
import type { Freshness } from './freshness.js';
import { connectionTokens, HOP_BY_HOP } from './headers.js';
import { formatHttpDate, parseHttpDate } from './http-date.js';

export type PolicyRequest = CachePolicy.Request;
export type PolicyResponse = CachePolicy.Response;

export const POLICY_OPTIONS: CachePolicy.Options = { shared: true, cacheHeuristic: 0.1, immutableMinTimeToLive: 24 * 3600 * 1000 };

/** How long a stale entry with validators is kept for conditional revalidation. */
export const REVALIDATION_KEEP_MS = 24 * 3600 * 1000;

export type Admission =
  | { readonly storable: true; readonly freshness: Freshness; readonly keepUntil: number }
  | { readonly storable: false; readonly reason: string };

/** The greatest delta-seconds (RFC 9111 §1.2.2): larger values, and overflows, are this. */
const MAX_DELTA_SECONDS = 2 ** 31;

/** RFC 9111 §1.2.2 delta-seconds: digits only. */
const DELTA_SECONDS = /^\d+$/;

/**
 * Cache-Control as http-cache-semantics must read it. Its parser compares names case-sensitively
 * and keeps the last duplicate, so `Private` or `NO-STORE` would be stored by this shared cache
 * (§5.2: names are case-insensitive; §5.2.2.7): it gets the canonical spelling, read as
 * parseCacheControl reads it. It takes the leading digits of `max-age=60abc` or `max-age=1.5`,
 * where §4.2.1 has a cache treat invalid freshness information as stale: such a max-age or
 * s-maxage becomes 0, and one past 2^31 becomes 2^31 (§1.2.2).
 */
function policyCacheControl(value: string | string[]): string {
  const d = parseCacheControl(value);
  let fixed: Map<string, string> | undefined;
  for (const name of ['max-age', 's-maxage']) {
    const v = d.get(name);
    if (v === undefined) continue;
    const n = DELTA_SECONDS.test(v) ? String(Math.min(Number(v), MAX_DELTA_SECONDS)) : '0';
    if (n === v) continue;
    fixed ??= new Map(d);
    fixed.set(name, n);
  }
  return formatCacheControl(fixed ?? d);
}

/** The last Date and Expires values found already in IMF-fixdate: an origin's Date changes once a
 *  second, so most responses skip a parse and a format (2-3 % of a miss's CPU in a profile). A
 *  value in that form means the same at any `now`, so remembering it is exact. */
const lastCanonical = { date: '', expires: '' };

/** The fields of a response whose syntax http-cache-semantics does not check, as RFC 9111 reads
 *  them: Expires, Date and Last-Modified as HTTP-dates (RFC 9110 §5.6.7, where Date.parse would
 *  take `2:00:00` or `10-Jan-2099` for a time), Age as delta-seconds. */
function policyHeaders(headers: PolicyResponse['headers'], now: number): PolicyResponse['headers'] {
  let out: PolicyResponse['headers'] | undefined;
  const set = (name: string, value: string | undefined) => {
    out ??= { ...headers };
    if (value === undefined) delete out[name];
    else out[name] = value;
  };
  const cc = headers['cache-control'];
  if (cc !== undefined) {
    const v = policyCacheControl(cc);
    if (v !== cc) set('cache-control', v);
  }
  const expires = headers.expires;
  if (typeof expires === 'string' && expires !== lastCanonical.expires) {
    // §5.3: a value that is not an HTTP-date (`0` included) means already expired.
    const v = formatHttpDate(parseHttpDate(expires, now) ?? 0);
    if (v === expires) lastCanonical.expires = expires;
    else set('expires', v);
  }
  const date = headers.date;
  if (typeof date === 'string' && date !== lastCanonical.date) {
    // RFC 9110 §6.6.1: an invalid Date is as none, and the time the response was received stands in.
    const ms = parseHttpDate(date, now);
    const v = ms === undefined ? undefined : formatHttpDate(ms);
    if (v === date) lastCanonical.date = date;
    else set('date', v);
  }
  const lastModified = headers['last-modified'];
  // No heuristic from a Last-Modified that is not a date (§4.2.2); a valid one is left as sent,
  // since a 304 is matched to it by its spelling (isUpdateFor).
  if (typeof lastModified === 'string' && parseHttpDate(lastModified, now) === undefined) set('last-modified', undefined);
  const age = headers.age;
  if (typeof age === 'string') {
    // §5.1: a list, a sign, a fraction or any other non-integer is ignored.
    const v = DELTA_SECONDS.test(age) ? String(Math.min(Number(age), MAX_DELTA_SECONDS)) : undefined;
    if (v !== age) set('age', v);
  }
  return out ?? headers;
}

/** Status codes http-cache-semantics stores at all (its `understoodStatuses`). */
const LIBRARY_STATUSES: ReadonlySet<number> = new Set([200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501]);

/** A code http-cache-semantics stores with explicit freshness or `public` only, as §3 and
 *  §4.2.2 have every code that is not heuristically cacheable stored. */
const EXPLICIT_ONLY_STAND_IN = 307;

/**
 * RFC 9111 §3: a response with any final status may be stored when explicit freshness or `public`
 * allow it, 4xx and 5xx included; heuristic freshness is for the codes RFC 9110 §15.1 makes
 * heuristically cacheable or with `public` (§4.2.2). http-cache-semantics stores only the codes
 * it lists, so any other final code is shown to it as one of its codes without heuristic
 * caching, which then gets that rule. 206 and 304 are not responses to store as such (§3.3,
 * §4.3.4). The entry keeps its real status; the stand-in lives only in the policy.
 */
function policyStatus(status: number | undefined): number | undefined {
  if (status === undefined || LIBRARY_STATUSES.has(status) || status < 200 || status > 599 || status === 206 || status === 304) return status;
  return EXPLICIT_ONLY_STAND_IN;
}

/** The response as http-cache-semantics must see it (see policyCacheControl, policyHeaders and
 *  policyStatus); `now` only places the two-digit years of obsolete dates. */
export function policyResponse(res: PolicyResponse, now = Date.now()): PolicyResponse {
  const headers = policyHeaders(res.headers, now);
  const status = policyStatus(res.status);
  if (headers === res.headers && status === res.status) return res;
  return { ...res, status, headers };
}

/** A policy for a response just received at `now` (see policyResponse). */
export function newPolicy(req: PolicyRequest, res: PolicyResponse, now = Date.now()): CachePolicy {
  return new CachePolicy(req, policyResponse(res, now), POLICY_OPTIONS);
}

/** The age of a response as it arrives (§4.2.3): its Age field read as policyHeaders reads it
 *  (§5.1: anything but delta-seconds is ignored), and no resident time yet. policy.age() would
 *  add resident time by Date.now(), not by the `now` the caller decides freshness at. */
export function receivedAgeSec(headers: PolicyResponse['headers']): number {
  const age = headers.age;
  return typeof age === 'string' && DELTA_SECONDS.test(age) ? Math.min(Number(age), MAX_DELTA_SECONDS) : 0;
}

/** Freshness of a response a policy was just built for (or revalidated) at `now`. */
export function freshnessOf(policy: CachePolicy, headers: PolicyResponse['headers'], now: number, defaultTtlMs: number): Freshness {
  const cc = parseCacheControl(headers['cache-control']);
  const initialAgeSec = receivedAgeSec(headers);
  // http-cache-semantics makes proxy-revalidate "never fresh" in a shared cache; RFC 9111
  // §5.2.2.8 only forbids serving it stale (mustRevalidate below), so use its lifetime.
  const lifetimeSec = cc.has('proxy-revalidate') && !cc.has('no-cache') && policy.storable()
    ? deltaSeconds(cc, 's-maxage') ?? deltaSeconds(cc, 'max-age') ?? policy.maxAge()
    : policy.maxAge();
  let freshMs = Math.max(0, (lifetimeSec - initialAgeSec) * 1000);
  const explicit = cc.has('max-age') || cc.has('s-maxage') || headers.expires !== undefined;
  // SIDECACHE_DEFAULT_TTL is a heuristic (§4.2.2): only for what the policy may store without
  // explicit freshness (a heuristically cacheable code, or public), never for a policy that may
  // not store at all (a 304 to a request with Authorization).
  if (freshMs === 0 && !explicit && !cc.has('no-cache') && defaultTtlMs > 0 && headers['last-modified'] === undefined && policy.storable()) {
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

/** Final status codes registered with IANA (RFC 9110 §15 and the RFCs that added codes since):
 *  the codes whose caching rules this cache knows, as `must-understand` asks (§5.2.2.3). */
const KNOWN_STATUSES: ReadonlySet<number> = new Set([
  200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
  300, 301, 302, 303, 304, 305, 307, 308,
  400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451,
  500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
]);

export function admit(policy: CachePolicy, res: PolicyResponse, now: number, defaultTtlMs: number): Admission {
  if (!policy.storable()) return { storable: false, reason: 'not storable' };
  // §5.2.2.3: with must-understand, a status whose requirements the cache does not know is not stored.
  if (res.status !== undefined && !KNOWN_STATUSES.has(res.status) && parseCacheControl(res.headers['cache-control']).has('must-understand')) {
    return { storable: false, reason: 'must-understand' };
  }
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

/** Stands for a request's Authorization in a policy request: the policy only asks whether there
 *  is one (RFC 9111 §3.5), and the credential must not be held or published. */
const AUTHORIZATION_PRESENT = 'present';

/** The request a stored response's policy is built from: its secondary key (names, values as
 *  in Entry), and whether it carried Authorization, and nothing else. http-cache-semantics keeps
 *  the request head it is given for Vary matching and publishes it in toObject(); the client's
 *  other fields (cookies, API keys, a peer's signature) must neither be held nor leave in a fill.
 *  With `authorized`, its storable() applies §3.5: stored only with public, s-maxage or
 *  must-revalidate. Requests with `Cache-Control: no-store`, the other request field it reads,
 *  never get this far. */
export function policyRequestOf(path: string, names: readonly string[] | null, values: readonly string[], authorized = false): PolicyRequest {
  const headers: Record<string, string> = {};
  if (names !== null) for (let i = 0; i < names.length; i++) if (values[i] !== '') headers[names[i]!] = values[i]!;
  if (authorized && headers.authorization === undefined) headers.authorization = AUTHORIZATION_PRESENT;
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
export function revalidatedPolicy(
  policy: CachePolicy, req: PolicyRequest, res: PolicyResponse, now = Date.now(),
): { policy: CachePolicy; modified: boolean } {
  let update = policyResponse(res, now);
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
