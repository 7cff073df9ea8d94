// Accept-Encoding (RFC 9110 §12.5.3) reduced to the one content coding this cache asks the
// origin for and keys a `Vary: Accept-Encoding` response by: `br`, `gzip` or `identity`, the
// first of them the client accepts. Without it every spelling of a client's list ("gzip,
// deflate, br", "br;q=1.0, gzip;q=0.8", ...) would be a variant of its own.

export const Coding = { br: 'br', gzip: 'gzip', identity: 'identity' } as const;
export type Coding = (typeof Coding)[keyof typeof Coding];

/** Weights (q) a client gave the codings this cache can serve; undefined: not listed. */
export interface CodingWeights {
  br: number | undefined;
  gzip: number | undefined;
  identity: number | undefined;
  /** `*`: any coding not listed (§12.5.3). */
  star: number | undefined;
}

// token [ OWS ";" OWS "q=" qvalue ] (§12.5.3, §12.4.2; "Q" accepted as recipients should).
const ELEMENT = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+)(?:[ \t]*;[ \t]*[qQ]=(0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?))?$/;

/** The weights of a field value; null when it is malformed. Names are compared without case;
 *  a coding listed twice keeps its first weight; empty list elements are allowed (§5.6.1). */
export function parseAcceptEncoding(value: string): CodingWeights | null {
  const w: CodingWeights = { br: undefined, gzip: undefined, identity: undefined, star: undefined };
  for (const part of value.split(',')) {
    const el = part.trim();
    if (el === '') continue;
    const m = ELEMENT.exec(el);
    if (m === null) return null;
    const q = m[2] === undefined ? 1 : Number(m[2]);
    const name = m[1]!.toLowerCase();
    // §8.4.1.3: x-gzip is gzip.
    const coding = name === 'x-gzip' ? 'gzip' : name === '*' ? 'star' : name;
    if (coding === 'br' || coding === 'gzip' || coding === 'identity' || coding === 'star') w[coding] ??= q;
  }
  return w;
}

/** Does a client with these weights accept `coding` (§12.5.3)? q=0 excludes; `*` stands for
 *  every coding not listed; identity is acceptable unless excluded by name or by `*;q=0`. */
export function accepts(w: CodingWeights, coding: Coding): boolean {
  const q = w[coding];
  if (q !== undefined) return q > 0;
  if (w.star !== undefined) return w.star > 0;
  return coding === Coding.identity;
}

/** The normal form of a request's Accept-Encoding: br, else gzip, else identity, by what it
 *  accepts (q > 0, `*` included). Absent, empty (§12.5.3: no coding wanted), malformed, or
 *  accepting nothing we name: identity, the representation every origin can send. */
export function normaliseAcceptEncoding(value: string | string[] | undefined): Coding {
  if (value === undefined) return Coding.identity;
  if (typeof value !== 'string') return normaliseAcceptEncoding(value.join(', '));
  // Most clients of a sidecar send one spelling over and over: the last one is remembered.
  if (value === lastValue) return lastCoding;
  const w = parseAcceptEncoding(value);
  const coding = w === null ? Coding.identity : accepts(w, Coding.br) ? Coding.br : accepts(w, Coding.gzip) ? Coding.gzip : Coding.identity;
  lastValue = value;
  lastCoding = coding;
  return coding;
}

let lastValue: string | undefined;
let lastCoding: Coding = Coding.identity;
