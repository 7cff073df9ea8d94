// Invalidation by unsafe methods (RFC 9111 §4.4): a non-error response to any method not
// known to be safe invalidates the target URI and the same-origin Location and
// Content-Location URIs.
import { resolveReference } from './uri.js';

/** The methods registered as safe (RFC 9110 §9.2.1 and the IANA method registry: WebDAV's
 *  PROPFIND and REPORT, SEARCH, QUERY). Any other method, POST and PUT as much as one nobody
 *  registered, is unsafe as far as a cache can tell (§4.4: "including methods whose safety is
 *  unknown"). */
export const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', 'REPORT', 'SEARCH', 'QUERY']);

/** RFC 9111 §4.4: a non-error status (2xx, 3xx) to an unsafe request invalidates. */
export function invalidatesOnResponse(method: string, status: number): boolean {
  return !SAFE_METHODS.has(method) && status >= 200 && status < 400;
}

/** Location / Content-Location resolved against the request at `keyOrigin` + `target`
 *  (canonical targets, RFC 3986 §5.2), same origin only. */
export function relatedTargets(
  keyOrigin: string, target: string, location: string | undefined, contentLocation: string | undefined,
): Array<{ keyOrigin: string; target: string }> {
  const out: Array<{ keyOrigin: string; target: string }> = [];
  for (const ref of [location, contentLocation]) {
    if (ref === undefined) continue;
    try {
      const r = resolveReference(keyOrigin, target, ref.trim());
      // §4.4: only when the host matches, to stop one origin purging another's entries.
      if (r !== undefined && r.keyOrigin === keyOrigin) out.push(r);
    } catch {
      // a malformed reference names nothing a client could fetch: nothing to invalidate
    }
  }
  return out;
}
