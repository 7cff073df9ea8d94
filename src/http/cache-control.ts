// Cache-Control parsing (RFC 9111 §5.2): directive names lower-cased, quoted values unquoted.

export type Directives = ReadonlyMap<string, string>;

const EMPTY: Directives = new Map();

/**
 * `#cache-directive` (§5.2): `token [ "=" ( token / quoted-string ) ]`. A comma inside a
 * quoted-string (RFC 9110 §5.6.4) belongs to the value: `no-cache="a, max-age=9"` names
 * fields, it does not add a max-age. Quoted-pairs are unescaped. A quoted-string left open
 * runs to the end of the field.
 */
export function parseCacheControl(value: string | string[] | undefined): Directives {
  if (value === undefined || value === '') return EMPTY;
  const text = Array.isArray(value) ? value.join(',') : value;
  const out = new Map<string, string>();
  const n = text.length;
  let i = 0;
  while (i < n) {
    let j = i;
    while (j < n && text[j] !== ',' && text[j] !== '=') j++;
    const name = text.slice(i, j).trim().toLowerCase();
    let v = '';
    if (j < n && text[j] === '=') {
      j++;
      while (j < n && (text[j] === ' ' || text[j] === '\t')) j++;
      if (j < n && text[j] === '"') {
        j++;
        while (j < n && text[j] !== '"') {
          if (text[j] === '\\' && j + 1 < n) j++;
          v += text[j];
          j++;
        }
        j++;
        // Anything between the closing quote and the next comma is not part of the grammar.
        while (j < n && text[j] !== ',') j++;
      } else {
        const start = j;
        while (j < n && text[j] !== ',') j++;
        v = text.slice(start, j).trim();
      }
    }
    i = j + 1;
    if (name === '') continue;
    // RFC 9111 §4.2.1: with a duplicated directive, the first wins.
    if (!out.has(name)) out.set(name, v);
  }
  return out;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * One canonical spelling of a Cache-Control value: directive names lower-cased, the first of
 * a duplicate only (§4.2.1), values as tokens or quoted-strings. For parsers that compare
 * names case-sensitively or keep the last duplicate (http-cache-semantics), so that they read
 * the field as parseCacheControl does. undefined when the field is absent.
 */
export function canonicalCacheControl(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  return formatCacheControl(parseCacheControl(value));
}

/** A field value of parsed directives: values as tokens or quoted-strings (§5.2). */
export function formatCacheControl(d: Directives): string {
  const parts: string[] = [];
  for (const [name, v] of d) {
    parts.push(v === '' ? name : TOKEN.test(v) ? `${name}=${v}` : `${name}="${v.replace(/["\\]/g, (c) => `\\${c}`)}"`);
  }
  return parts.join(', ');
}

/** Delta-seconds value (§1.2.2): non-negative integer, or undefined when absent/invalid. */
export function deltaSeconds(d: Directives, name: string): number | undefined {
  const v = d.get(name);
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  return Math.min(Number(v), 2 ** 31);
}
