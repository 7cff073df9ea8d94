// Secondary keys (RFC 9111 §4.1): the request header values a stored response varies on.
import type { IncomingHttpHeaders } from 'node:http';

/** Lower-cased, sorted field names of a Vary value; null when the response has no Vary. */
export function varyNames(vary: string | string[] | undefined): readonly string[] | null {
  if (vary === undefined) return null;
  const text = Array.isArray(vary) ? vary.join(',') : vary;
  const names = [...new Set(text.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== ''))].sort();
  return names.length === 0 ? null : names;
}

/** The values of those fields in a request, normalised (§4.1: whitespace, combined lines). */
export function varyValues(names: readonly string[], headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): string[] {
  const out: string[] = new Array(names.length);
  for (let i = 0; i < names.length; i++) {
    const v = headers[names[i]!];
    out[i] = v === undefined ? '' : (Array.isArray(v) ? v.join(', ') : v).replace(/\s*,\s*/g, ', ').trim();
  }
  return out;
}

export function varyMatches(names: readonly string[], values: readonly string[], headers: IncomingHttpHeaders): boolean {
  for (let i = 0; i < names.length; i++) {
    const v = headers[names[i]!];
    const norm = v === undefined ? '' : (Array.isArray(v) ? v.join(', ') : v).replace(/\s*,\s*/g, ', ').trim();
    if (norm !== values[i]) return false;
  }
  return true;
}
