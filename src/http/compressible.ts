// Compression on store, as rules (proxy/compress.ts does the work): which responses this cache
// may keep a gzip form of, the fields of that form, and its entity-tags. The gzip form is a
// representation of our making (RFC 9110 §8.4): it gets its own strong ETag, the origin's
// opaque-tag with GZIP_TAG_SUFFIX (as Apache's mod_deflate does), so that strong comparison
// (If-Match, §13.1.1) still works for a client that holds it, once mapped back to the
// origin's tag on the way to the origin (originTags).
import { parseCacheControl } from './cache-control.js';
import { formTakesGzip } from './encoding.js';
import { rawGet } from './headers.js';

/** What this cache may compress, from configuration. */
export interface CompressRules {
  readonly compress: boolean;
  readonly compressMinBytes: number;
  readonly compressMaxBytes: number;
  readonly compressTypes: readonly string[];
}

/** Appended to the origin's opaque-tag for the gzip form: distinct enough that no origin's own
 *  tag is taken for ours (a plain `-gzip` is what mod_deflate itself appends). */
export const GZIP_TAG_SUFFIX = '-sc-gzip';

/** The gzip form's entity-tag for the origin's: `"v1"` -> `"v1-sc-gzip"`, `W/"v1"` -> `W/"v1-sc-gzip"`. */
export function gzipTagOf(etag: string): string {
  const t = etag.trim();
  return t.endsWith('"') ? `${t.slice(0, -1)}${GZIP_TAG_SUFFIX}"` : t;
}

/** Is this entity-tag one of our gzip forms' tags? */
export function isGzipTag(etag: string): boolean {
  return etag.trimEnd().endsWith(`${GZIP_TAG_SUFFIX}"`);
}

const SUFFIXED = new RegExp(`${GZIP_TAG_SUFFIX}"`, 'g');

/** A conditional field's value (If-Match, If-None-Match) as the origin must see it:
 *  each gzip form's tag replaced by the origin's own, which it made and can compare. */
export function originTags(value: string): string {
  return value.includes(GZIP_TAG_SUFFIX) ? value.replace(SUFFIXED, '"') : value;
}

/**
 * Must a Range go to the origin without this If-Range (and so not at all)? RFC 9110 §13.1.5:
 * If-Range names the representation the client holds part of, and the range holds only
 * against that one. Our gzip form's tag names a representation the origin never made: mapped
 * to the origin's tag it would fetch identity bytes for a client holding a gzip prefix. A date
 * (not an entity-tag) is weak when two forms share it (§8.8.2.2, §13.2.2): with compression
 * on the client may hold our gzip form of that date. In both cases the client gets the whole
 * representation, a 200, never a range of the other form's bytes.
 */
export function ifRangeNamesOtherForm(ifRange: string | readonly string[], compress: boolean): boolean {
  const v = typeof ifRange === 'string' ? ifRange : ifRange.join(', ');
  if (v.includes(`${GZIP_TAG_SUFFIX}"`)) return true;
  const t = v.trimStart();
  return compress && !t.startsWith('"') && !t.startsWith('W/');
}

/** Is a media type (a Content-Type value) in the list: exact, or `type/*`? */
export function isCompressibleType(contentType: string | undefined, types: readonly string[]): boolean {
  if (contentType === undefined) return false;
  const semi = contentType.indexOf(';');
  const mt = (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  const slash = mt.indexOf('/');
  if (slash <= 0) return false;
  return types.includes(mt) || types.includes(`${mt.slice(0, slash)}/*`);
}

/**
 * May this cache keep a gzip form of a response with these raw fields? A 200 (not a part: no
 * Content-Range) with no content coding of its own (§8.4), of a listed type, without
 * `no-transform` (RFC 9110 §7.7, RFC 9111 §5.2.2.6: a proxy must not transform it), and a body
 * between the configured bounds: `bodyBytes` when known, else the Content-Length when sent
 * (a body without one is checked again when complete).
 */
export function mayCompress(status: number, raw: readonly string[], rules: CompressRules, bodyBytes?: number): boolean {
  if (!rules.compress || status !== 200 || rawGet(raw, 'content-range') !== undefined) return false;
  const ce = rawGet(raw, 'content-encoding');
  if (ce !== undefined && ce.trim().toLowerCase() !== 'identity') return false;
  if (!isCompressibleType(rawGet(raw, 'content-type'), rules.compressTypes)) return false;
  const cl = rawGet(raw, 'content-length');
  const size = bodyBytes ?? (cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined);
  if (size !== undefined && (size < rules.compressMinBytes || size > rules.compressMaxBytes)) return false;
  const cc: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'cache-control') cc.push(raw[i + 1]!);
  return !forbidsTransform(cc);
}

/** Does a Cache-Control value (a request's or a response's) carry no-transform (RFC 9111
 *  §5.2.1.6, §5.2.2.6)? Parsed as every other directive is, quoted strings included. */
export function forbidsTransform(cacheControl: string | string[] | undefined): boolean {
  return parseCacheControl(cacheControl).has('no-transform');
}

/** Does a variant keyed by these Vary names and values serve clients that may take gzip? One
 *  keyed by an Accept-Encoding normal form without gzip never would: no gzip form is kept for it. */
export function variantTakesGzip(varyNames: readonly string[] | null, varyValues: readonly string[]): boolean {
  const i = varyNames === null ? -1 : varyNames.indexOf('accept-encoding');
  return i === -1 || formTakesGzip(varyValues[i]);
}

function namesCoding(vary: string): boolean {
  for (const n of vary.split(',')) {
    const name = n.trim().toLowerCase();
    if (name === 'accept-encoding' || name === '*') return true;
  }
  return false;
}

/** Do raw response fields name Accept-Encoding (or `*`) in Vary? */
export function variesOnCoding(raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'vary' && namesCoding(raw[i + 1]!)) return true;
  return false;
}

/** Raw fields with Accept-Encoding in Vary (RFC 9110 §12.5.5): every response of an object this
 *  cache may serve in two codings says so, so that caches and browsers after it keep them apart. */
export function withVaryAcceptEncoding(raw: readonly string[]): string[] {
  const out = [...raw];
  if (variesOnCoding(out)) return out;
  for (let i = 0; i < out.length; i += 2) {
    if (out[i]!.toLowerCase() === 'vary') {
      out[i + 1] = out[i + 1]!.trim() === '' ? 'Accept-Encoding' : `${out[i + 1]!}, Accept-Encoding`;
      return out;
    }
  }
  out.push('vary', 'Accept-Encoding');
  return out;
}

/** Fields that describe the identity bytes (RFC 9530 Repr-Digest and Content-Digest, RFC 3230
 *  Digest, Content-MD5): wrong for the gzip form, left out of it. */
const DIGESTS: ReadonlySet<string> = new Set(['repr-digest', 'content-digest', 'digest', 'content-md5']);

/** The gzip form's fields, from the identity form's (with Content-Length): Content-Encoding
 *  gzip, the gzip body's length, its own ETag, no digests of the identity bytes, and no
 *  Accept-Ranges: a Range is always answered from the origin's bytes, never from this form
 *  (RFC 9110 §14.3), so a client must not be told it can resume this form by ranges. */
export function gzipHeaders(identity: readonly string[], gzipBytes: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < identity.length; i += 2) {
    const name = identity[i]!.toLowerCase();
    if (name === 'content-length' || name === 'content-encoding' || name === 'accept-ranges' || DIGESTS.has(name)) continue;
    out.push(identity[i]!, name === 'etag' ? gzipTagOf(identity[i + 1]!) : identity[i + 1]!);
  }
  out.push('content-encoding', 'gzip', 'content-length', String(gzipBytes));
  return out;
}
