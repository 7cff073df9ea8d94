// Invalidation by unsafe methods (RFC 9111 §4.4): a non-error response to POST, PUT,
// PATCH, DELETE invalidates the target URI and the same-origin Location and
// Content-Location URIs.
import { resolveReference } from './uri.js';

export const UNSAFE_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function invalidatesOnResponse(method: string, status: number): boolean {
  return UNSAFE_METHODS.has(method) && status >= 200 && status < 400;
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
