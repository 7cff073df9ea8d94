// Invalidation by unsafe methods (RFC 9111 §4.4): a non-error response to POST, PUT,
// PATCH, DELETE invalidates the target URI and the same-origin Location and
// Content-Location URIs.

export const UNSAFE_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function invalidatesOnResponse(method: string, status: number): boolean {
  return UNSAFE_METHODS.has(method) && status >= 200 && status < 400;
}

/** Absolute URLs of Location / Content-Location resolved against the target, same origin only. */
export function relatedUris(target: URL, location: string | undefined, contentLocation: string | undefined): URL[] {
  const out: URL[] = [];
  for (const ref of [location, contentLocation]) {
    if (ref === undefined) continue;
    try {
      const u = new URL(ref, target);
      // §4.4: only when the host matches, to stop one origin purging another's entries.
      if (u.origin === target.origin) out.push(u);
    } catch {
      // an unparseable reference invalidates nothing
    }
  }
  return out;
}
