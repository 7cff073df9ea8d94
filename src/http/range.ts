// Range requests (RFC 9110 §14) answered from a stored full response: one satisfiable
// byte range gets 206; several ranges or an unreadable header get the full 200
// (a server may ignore Range); an unsatisfiable one gets 416.

export type RangeAnswer =
  | { readonly kind: 'full' }
  | { readonly kind: 'partial'; readonly start: number; readonly end: number }
  | { readonly kind: 'unsatisfiable' };

export function parseRange(header: string, size: number): RangeAnswer {
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return { kind: 'full' };
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return { kind: 'unsatisfiable' };
    // An empty body has no byte to send: answer in full rather than "bytes 0--1/0".
    if (size === 0) return { kind: 'full' };
    return { kind: 'partial', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  // §14.1.1: last-pos below first-pos makes the header invalid, whatever the size: it is
  // ignored (§14.2), before first-pos is compared with the size.
  if (m[2] !== '' && Number(m[2]) < start) return { kind: 'full' };
  if (start >= size) return { kind: 'unsatisfiable' };
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  return { kind: 'partial', start, end };
}

export interface ContentRange {
  readonly start: number;
  readonly end: number;
  /** The complete length of the representation. */
  readonly length: number;
}

/** RFC 9110 §14.4: `Content-Range: bytes first-last/complete-length` of a single-part 206, when
 *  the complete length is known and the range lies inside it; undefined for anything else
 *  (an unsatisfied-range form, an unknown complete length, another unit, a list, last before first). */
export function parseContentRange(value: string | string[] | undefined): ContentRange | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^\s*bytes\s+(\d{1,15})-(\d{1,15})\/(\d{1,15})\s*$/i.exec(value);
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  const length = Number(m[3]);
  if (end < start || end >= length) return undefined;
  return { start, end, length };
}

/** Is an entity tag strong (RFC 9110 §8.8.3: no `W/` prefix) and well formed (quoted)? */
export function isStrongETag(etag: string | undefined): etag is string {
  if (etag === undefined) return false;
  const t = etag.trim();
  return t.length >= 2 && t.startsWith('"') && t.endsWith('"');
}

/**
 * RFC 9110 §13.1.5: may a Range be answered from the stored representation with these
 * validators? Without If-Range, yes. An entity tag in If-Range holds when it is strong and
 * equal to the stored strong ETag (strong comparison, §8.8.3.2); a date holds when it equals
 * the stored Last-Modified exactly (the only exact match we can vouch for). When it does not
 * hold, the Range is ignored: the whole representation is the answer.
 */
export function ifRangeHolds(ifRange: string | string[] | undefined, etag: string | undefined, lastModified: string | undefined): boolean {
  if (ifRange === undefined) return true;
  if (typeof ifRange !== 'string') return false;
  const v = ifRange.trim();
  if (v.startsWith('"') || v.startsWith('W/')) return isStrongETag(v) && isStrongETag(etag) && etag.trim() === v;
  return lastModified !== undefined && lastModified.trim() === v;
}
