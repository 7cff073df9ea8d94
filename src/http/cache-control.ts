// Cache-Control parsing (RFC 9111 §5.2): directive names lower-cased, quoted values unquoted.

export type Directives = ReadonlyMap<string, string>;

const EMPTY: Directives = new Map();

export function parseCacheControl(value: string | string[] | undefined): Directives {
  if (value === undefined || value === '') return EMPTY;
  const text = Array.isArray(value) ? value.join(',') : value;
  const out = new Map<string, string>();
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    const name = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (name === '') continue;
    let v = eq === -1 ? '' : part.slice(eq + 1).trim();
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    // RFC 9111 §4.2.1: with a duplicated directive, the first wins.
    if (!out.has(name)) out.set(name, v);
  }
  return out;
}

/** Delta-seconds value (§1.2.2): non-negative integer, or undefined when absent/invalid. */
export function deltaSeconds(d: Directives, name: string): number | undefined {
  const v = d.get(name);
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  return Math.min(Number(v), 2 ** 31);
}
