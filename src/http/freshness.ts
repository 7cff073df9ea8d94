// Freshness (RFC 9111 §4.2) and the request directives that change it (§5.2.1), as pure
// functions of an entry's times and `now`. The policy numbers come from
// http-cache-semantics when the entry is stored; the hit path only compares numbers.
import { deltaSeconds, type Directives } from './cache-control.js';

/** Times of one stored response, all epoch-ms, fixed when it is stored or revalidated. */
export interface Freshness {
  /** When the response was received (its resident time starts here). */
  readonly storedAt: number;
  /** Age of the response when it was received, seconds (§4.2.3 corrected initial age). */
  readonly initialAgeSec: number;
  readonly freshUntil: number;
  /** RFC 5861 windows after freshUntil. */
  readonly staleWhileRevalidateUntil: number;
  readonly staleIfErrorUntil: number;
  /** must-revalidate, proxy-revalidate or s-maxage: never served stale (§4.2.4, §5.2.2). */
  readonly mustRevalidate: boolean;
  readonly hasValidators: boolean;
}

export const Verdict = {
  fresh: 'fresh',
  /** Serve now and revalidate in the background (stale-while-revalidate). */
  staleWhileRevalidate: 'swr',
  /** Revalidate before serving; may still serve it on an origin error (stale-if-error). */
  stale: 'stale',
} as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

/** Request directives that matter to a lookup, parsed only when the request has any. */
export interface RequestDirectives {
  readonly noCache: boolean;
  readonly noStore: boolean;
  readonly onlyIfCached: boolean;
  readonly maxAgeSec: number | undefined;
  readonly minFreshSec: number | undefined;
  /** Infinity for a bare max-stale. */
  readonly maxStaleSec: number | undefined;
}

export function requestDirectives(cc: Directives, pragma: string | undefined): RequestDirectives {
  const maxStale = cc.get('max-stale');
  return {
    // §5.4: Pragma: no-cache counts only when there is no Cache-Control.
    noCache: cc.has('no-cache') || (cc.size === 0 && pragma !== undefined && /(^|,)\s*no-cache\s*($|,)/i.test(pragma)),
    noStore: cc.has('no-store'),
    onlyIfCached: cc.has('only-if-cached'),
    maxAgeSec: deltaSeconds(cc, 'max-age'),
    minFreshSec: deltaSeconds(cc, 'min-fresh'),
    maxStaleSec: maxStale === undefined ? undefined : maxStale === '' ? Infinity : deltaSeconds(cc, 'max-stale'),
  };
}

/** Current age in seconds (§4.2.3): initial age plus resident time. */
export function ageSec(f: Freshness, now: number): number {
  return f.initialAgeSec + Math.max(0, now - f.storedAt) / 1000;
}

/** Freshness with no request directives: the hit path. */
export function verdictOf(f: Freshness, now: number): Verdict {
  if (now < f.freshUntil) return Verdict.fresh;
  if (!f.mustRevalidate && now < f.staleWhileRevalidateUntil) return Verdict.staleWhileRevalidate;
  return Verdict.stale;
}

/** Freshness under the client's Cache-Control (§5.2.1). */
export function verdictFor(f: Freshness, now: number, req: RequestDirectives): Verdict {
  if (req.noCache) return Verdict.stale;
  // Ages are fractional here; `>=` makes max-age=0 revalidate even within the first ms.
  if (req.maxAgeSec !== undefined && ageSec(f, now) >= req.maxAgeSec) return Verdict.stale;
  if (req.minFreshSec !== undefined && f.freshUntil - now < req.minFreshSec * 1000) return Verdict.stale;
  const v = verdictOf(f, now);
  if (v !== Verdict.fresh && req.maxStaleSec !== undefined && !f.mustRevalidate &&
      now - f.freshUntil <= req.maxStaleSec * 1000) {
    return Verdict.fresh;
  }
  return v;
}

/** stale-if-error (RFC 5861 §4): may this stale entry answer for a failed origin? */
export function canServeOnError(f: Freshness, now: number): boolean {
  return !f.mustRevalidate && now < f.staleIfErrorUntil;
}
