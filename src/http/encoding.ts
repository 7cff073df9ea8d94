// Accept-Encoding (RFC 9110 §12.5.3) reduced to what this cache asks the origin for and keys a
// `Vary: Accept-Encoding` response by: which of `br` and `gzip` the client accepts
// (`br, gzip`, `br`, `gzip`, or `identity` for neither). Without it every spelling of a
// client's list ("gzip, deflate, br", "br;q=1.0, gzip;q=0.8", ...) would be a variant of its
// own. Both codings stay in the form when both are accepted: an origin that does only gzip
// still compresses for a browser, and every client of the form accepts what it answers.

export const Coding = { br: 'br', gzip: 'gzip', identity: 'identity' } as const;
export type Coding = (typeof Coding)[keyof typeof Coding];

/** The four normal forms of Accept-Encoding. */
export const AcceptForm = { brGzip: 'br, gzip', br: 'br', gzip: 'gzip', identity: 'identity' } as const;
export type AcceptForm = (typeof AcceptForm)[keyof typeof AcceptForm];

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

/** The normal form of a request's Accept-Encoding: which of br and gzip it accepts (q > 0, `*`
 *  included; weights beyond that are the origin's to weigh, not a reason for a variant).
 *  Absent, empty (§12.5.3: no coding wanted), malformed, or accepting neither: identity, the
 *  representation every origin can send. */
export function normaliseAcceptEncoding(value: string | string[] | undefined): AcceptForm {
  if (value === undefined) return AcceptForm.identity;
  if (typeof value !== 'string') return normaliseAcceptEncoding(value.join(', '));
  // Most clients of a sidecar send one spelling over and over: the last one is remembered.
  if (value === lastValue) return lastForm;
  const w = parseAcceptEncoding(value);
  const br = w !== null && accepts(w, Coding.br);
  const gzip = w !== null && accepts(w, Coding.gzip);
  const form = br ? (gzip ? AcceptForm.brGzip : AcceptForm.br) : gzip ? AcceptForm.gzip : AcceptForm.identity;
  lastValue = value;
  lastForm = form;
  return form;
}

let lastValue: string | undefined;
let lastForm: AcceptForm = AcceptForm.identity;

/** Does a normal form take gzip? */
export function formTakesGzip(form: string | undefined): boolean {
  return form === AcceptForm.gzip || form === AcceptForm.brGzip;
}

/** Does a request's Accept-Encoding accept gzip (q > 0, by name, as x-gzip or by `*`)? Absent
 *  or malformed: no. §12.5.3 lets a cache send any coding to a request without the field,
 *  but the clients that send none are mostly tools that print or save the bytes as they come. */
export function acceptsGzip(value: string | string[] | undefined): boolean {
  return formTakesGzip(normaliseAcceptEncoding(value));
}
