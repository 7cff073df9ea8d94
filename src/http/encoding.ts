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

/** Does a request's Accept-Encoding accept gzip (q > 0, by name, as x-gzip or by `*`)? Absent
 *  or malformed: no (§12.5.3 would allow any coding without the field; clients that send none
 *  are mostly tools that would print the bytes as they come). */
export function acceptsGzip(value: string | string[] | undefined): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'string') return acceptsGzip(value.join(', '));
  if (value === lastGzipValue) return lastGzip;
  const w = parseAcceptEncoding(value);
  const yes = w !== null && accepts(w, Coding.gzip);
  lastGzipValue = value;
  lastGzip = yes;
  return yes;
}

let lastGzipValue: string | undefined;
let lastGzip = false;

/** What this cache may compress on store, from configuration. */
export interface CompressRules {
  readonly compress: boolean;
  readonly compressMinBytes: number;
  readonly compressTypes: readonly string[];
}

/** Is a media type (a Content-Type value) in the list: exact, or `type/*`? */
export function isCompressibleType(contentType: string | string[] | undefined, types: readonly string[]): boolean {
  if (typeof contentType !== 'string') return false;
  const semi = contentType.indexOf(';');
  const mt = (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  const slash = mt.indexOf('/');
  if (slash <= 0) return false;
  const whole = `${mt.slice(0, slash)}/*`;
  return types.includes(mt) || types.includes(whole);
}

/** May a response whose head this is be stored gzip-compressed by this cache? A 200 with no
 *  content coding of its own (RFC 9110 §8.4), not a part (Content-Range), of a listed type, not
 *  known to be under the size floor, and without `no-transform` (RFC 9110 §7.7: a proxy must
 *  not transform such content). The size of a body without Content-Length is checked again
 *  when it is complete. */
export function mayCompress(status: number, headers: Record<string, string | string[] | undefined>, rules: CompressRules): boolean {
  if (!rules.compress || status !== 200 || headers['content-range'] !== undefined) return false;
  const ce = headers['content-encoding'];
  if (ce !== undefined && (typeof ce !== 'string' || ce.trim().toLowerCase() !== 'identity')) return false;
  if (!isCompressibleType(headers['content-type'], rules.compressTypes)) return false;
  const cl = headers['content-length'];
  if (typeof cl === 'string' && /^\d+$/.test(cl) && Number(cl) < rules.compressMinBytes) return false;
  const cc = headers['cache-control'];
  const ccText = Array.isArray(cc) ? cc.join(',') : cc ?? '';
  return !/(^|[\s,])no-transform\s*(,|$)/i.test(ccText);
}

/** Does a Vary value list Accept-Encoding (or `*`)? */
function variesOnCoding(vary: string): boolean {
  for (const n of vary.split(',')) {
    const name = n.trim().toLowerCase();
    if (name === 'accept-encoding' || name === '*') return true;
  }
  return false;
}

/** Raw response fields with Accept-Encoding in Vary: a response this cache may serve in more
 *  than one coding tells caches after it that the coding depends on the request (§12.5.5). */
export function withVaryAcceptEncoding(raw: readonly string[]): string[] {
  const out = [...raw];
  for (let i = 0; i < out.length; i += 2) {
    if (out[i]!.toLowerCase() === 'vary' && variesOnCoding(out[i + 1]!)) return out;
  }
  for (let i = 0; i < out.length; i += 2) {
    if (out[i]!.toLowerCase() === 'vary') {
      out[i + 1] = out[i + 1]!.trim() === '' ? 'Accept-Encoding' : `${out[i + 1]!}, Accept-Encoding`;
      return out;
    }
  }
  out.push('vary', 'Accept-Encoding');
  return out;
}

/** Fields that describe the bytes of the identity representation, wrong for the gzip one
 *  (RFC 9530 Repr-Digest and Content-Digest, RFC 3230 Digest, Content-MD5): left out of it. */
const DIGESTS: ReadonlySet<string> = new Set(['repr-digest', 'content-digest', 'digest', 'content-md5']);

/** The fields of the gzip representation of an identity response (`identity`: its fields, with
 *  Content-Length): Content-Encoding gzip, the gzip body's length, and a strong ETag made weak.
 *  Weak, not suffixed: the gzip bytes are ours, and two members (or two zlib versions) may
 *  compress the same bytes differently, while a strong validator promises the same bytes
 *  (RFC 9110 §8.8.1) to If-Range and to anyone combining ranges. A weak one promises what does
 *  hold, the same content, and still matches If-None-Match (weak comparison, §13.1.2), here or
 *  at the origin, which knows the unsuffixed tag. */
export function gzipHeaders(identity: readonly string[], gzipBytes: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < identity.length; i += 2) {
    const name = identity[i]!.toLowerCase();
    const value = identity[i + 1]!;
    if (name === 'content-length' || name === 'content-encoding' || DIGESTS.has(name)) continue;
    out.push(identity[i]!, name === 'etag' && !value.trimStart().startsWith('W/') ? `W/${value.trim()}` : value);
  }
  out.push('content-encoding', 'gzip', 'content-length', String(gzipBytes));
  return out;
}
