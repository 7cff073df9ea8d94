// Requests to a standalone sidecar for the standalone-caching-*.test.ts files, and what its
// counting origin saw.
import { waitFor, type SidecarProcess } from '../../support/sidecar.js';
import type { TestOrigin } from '../../support/origin.js';

export function standaloneRequests(origin: TestOrigin, sc: SidecarProcess) {
  const get = (path: string, headers: Record<string, string> = {}, method = 'GET', signal?: AbortSignal) =>
    fetch(`${sc.url}${path}`, { method, headers, ...(signal === undefined ? {} : { signal }) });
  const text = async (path: string, headers: Record<string, string> = {}) => {
    const r = await get(path, headers);
    return { r, body: await r.text(), status: r.headers.get('cache-status') ?? '' };
  };
  /** The entry's real TTL runs out: a condition on the clock, for max-age=1 responses. */
  const passed = (since: number, ms: number) => waitFor(() => Date.now() >= since + ms, ms + 5_000, `${ms} ms to pass`);
  /** Requests the origin saw for a path, in order. */
  const seen = (path: string) => origin.requests.filter((r) => r.url === path);
  return { get, text, passed, seen };
}
