// RFC 3986 for cache keys: the canonical form of a request target, absolute URLs split
// without the WHATWG parser's re-encoding, and reference resolution (§5.2). proxy/key.ts
// builds every key from these; nothing else may turn a URL into a key.
//
// The canonical target (RFC 3986 §6.2.2, syntax-based normalisation):
// - a percent-encoded unreserved character is decoded (%7E -> ~), other encodings get
//   upper-case hex (%2f -> %2F); reserved characters keep their spelling, encoded or not,
//   since §2.2 makes "/" and "%2F", "'" and "%27" different URIs;
// - a character outside what §3.3 / §3.4 allow in a path or query ("{", "`", '"', "<", ...,
//   and UTF-8 bytes of non-ASCII) is percent-encoded: its raw and encoded forms are one URI;
// - dot segments are removed (§5.2.4), "%2E" counting as "." once decoded; "/a/../b" is
//   "/b" and cannot climb above the root (nor above a reverse-mode upstream's base path);
// - a "%" not followed by two hex digits makes the target malformed (a 400);
// - a fragment is dropped; an empty path is "/".
// The sidecar forwards the canonical target to the origin, not the client's spelling: the
// key then names exactly what the origin was asked for, so no two spellings that an origin
// might answer differently can share an entry.
import { ErrorCode, SidecacheError } from '../core/errors.js';

/** Bits of ALLOWED: a path or a query component. */
const IN_PATH = 1;
const IN_QUERY = 2;

/** Per ASCII code: may it appear raw in a path (pchar / "/") or a query (also "?")? */
const ALLOWED = new Uint8Array(128);
const UNRESERVED = new Uint8Array(128);
{
  const mark = (chars: string, table: Uint8Array, v: number): void => { for (const c of chars) table[c.charCodeAt(0)] = v; };
  const unreserved = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~';
  mark(unreserved, UNRESERVED, 1);
  mark(`${unreserved}!$&'()*+,;=:@/`, ALLOWED, IN_PATH | IN_QUERY);
  mark('?', ALLOWED, IN_QUERY);
}
const HEX = '0123456789ABCDEF';

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** What the parsers below throw (SC_ERR_BAD_REQUEST, status 400). */
function malformed(message: string): SidecacheError {
  return new SidecacheError(ErrorCode.badRequest, message, { status: 400 });
}

/** True when `s[from, to)` needs no rewriting for `allow` (the common case: one scan, no allocation). */
function isCanonicalPart(s: string, from: number, to: number, allow: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || (ALLOWED[c]! & allow) === 0) return false;
  }
  return true;
}

/** Percent-encoding of `s[from, to)` normalised for `allow`. */
function canonicalPart(s: string, from: number, to: number, allow: number): string {
  if (isCanonicalPart(s, from, to, allow)) return s.slice(from, to);
  let out = '';
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c === 37 /* % */) {
      const hi = i + 2 < to ? hexValue(s.charCodeAt(i + 1)) : -1;
      const lo = hi === -1 ? -1 : hexValue(s.charCodeAt(i + 2));
      if (lo === -1) throw malformed(`malformed percent-encoding "${s.slice(i, Math.min(i + 3, to))}" in the target`);
      const byte = hi * 16 + lo;
      out += byte < 128 && UNRESERVED[byte] === 1 ? String.fromCharCode(byte) : `%${HEX[hi]}${HEX[lo]}`;
      i += 2;
    } else if (c < 128) {
      out += (ALLOWED[c]! & allow) !== 0 ? s[i] : `%${HEX[c >> 4]}${HEX[c & 15]}`;
    } else {
      // A run of non-ASCII (only from purge bodies and headers: Node refuses it in a request
      // line) as UTF-8, the way a client encodes it; a lone surrogate becomes U+FFFD.
      let j = i + 1;
      while (j < to && s.charCodeAt(j) >= 128) j++;
      for (const b of Buffer.from(s.slice(i, j), 'utf8')) out += `%${HEX[b >> 4]}${HEX[b & 15]}`;
      i = j - 1;
    }
  }
  return out;
}

/** RFC 3986 §5.2.4 for a path that starts with "/". */
export function removeDotSegments(path: string): string {
  const segs = path.split('/');
  const out: string[] = [];
  const last = segs.length - 1;
  for (let i = 1; i <= last; i++) {
    const s = segs[i]!;
    if (s === '.' || s === '..') {
      if (s === '..') out.pop();
      // "/a/b/.." is "/a/": a trailing dot segment leaves the directory.
      if (i === last) out.push('');
      continue;
    }
    out.push(s);
  }
  return `/${out.join('/')}`;
}

/** Does the path hold a "." or ".." segment? */
function hasDotSegment(path: string): boolean {
  for (let i = path.indexOf('/.'); i !== -1; i = path.indexOf('/.', i + 1)) {
    // "/." then "/" or the end, or "/.." then "/" or the end.
    const a = i + 2 < path.length ? path.charCodeAt(i + 2) : 47;
    if (a === 47) return true;
    if (a === 46 && (i + 3 >= path.length || path.charCodeAt(i + 3) === 47)) return true;
  }
  return false;
}

/** A target with nothing to rewrite: only characters allowed raw in its path and query, no
 *  "%" and no "#". One native regex test on the hot path instead of a scan in JavaScript. */
const PLAIN_TARGET = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*(?:\?[A-Za-z0-9\-._~!$&'()*+,;=:@/?]*)?$/;

/**
 * The canonical form of an origin-form target ("/path?query", a fragment ignored); throws
 * SC_ERR_BAD_REQUEST. Idempotent. `raw` must start with "/" (or be empty: "/").
 */
export function canonicalTarget(raw: string): string {
  // The common case; a "/." anywhere (even in the query) takes the full path below.
  if (PLAIN_TARGET.test(raw) && raw.indexOf('/.') === -1) return raw;
  let end = raw.indexOf('#');
  if (end === -1) end = raw.length;
  let q = raw.indexOf('?');
  if (q === -1 || q > end) q = end;
  if (q !== 0 && raw.charCodeAt(0) !== 47 /* / */) throw malformed('expected a target starting with "/"');
  let path = q === 0 ? '/' : canonicalPart(raw, 0, q, IN_PATH);
  if (hasDotSegment(path)) path = removeDotSegments(path);
  if (q === end) return path;
  const query = canonicalPart(raw, q + 1, end, IN_QUERY);
  return `${path}?${query}`;
}

/** "http://host" with the host lower-cased and the default port dropped. */
export function originOf(scheme: string, hostPort: string): string {
  const host = hostPort.toLowerCase();
  if (scheme === 'http' && host.endsWith(':80')) return `http://${host.slice(0, -3)}`;
  if (scheme === 'https' && host.endsWith(':443')) return `https://${host.slice(0, -4)}`;
  return `${scheme}://${host}`;
}

/** An absolute http(s) URL split into what a request to it is made of. */
export interface AbsoluteTarget {
  /** "http:" or "https:" */
  readonly protocol: string;
  /** Lower-cased, IDNA-mapped host, without the port. */
  readonly hostname: string;
  readonly port: number;
  /** originOf(scheme, host:port). */
  readonly keyOrigin: string;
  /** Canonical origin-form target. */
  readonly target: string;
}

const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;
/** RFC 3986 §3.2 authority characters (userinfo@host:port, IP literals). */
const AUTHORITY = /^[A-Za-z0-9\-._~%!$&'()*+,;=:@[\]]*$/;

/**
 * Splits an absolute URL. The host and port come from the WHATWG parser (lower case, IDNA,
 * default port), the path and query from the text as written, since the WHATWG parser
 * re-encodes them its own way ("'" in a query, "{" in a path) and request keys are made from
 * what the client wrote. Throws SC_ERR_BAD_REQUEST; undefined for a scheme other than http(s).
 */
export function parseAbsolute(raw: string): AbsoluteTarget | undefined {
  const m = SCHEME.exec(raw);
  if (m === null) throw malformed('expected an absolute URL (scheme://host/path)');
  const scheme = m[0].slice(0, -1).toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') return undefined;
  if (raw.charCodeAt(m[0].length) !== 47 || raw.charCodeAt(m[0].length + 1) !== 47) throw malformed('expected an absolute URL (scheme://host/path)');
  const authStart = m[0].length + 2;
  let pathStart = authStart;
  while (pathStart < raw.length) {
    const c = raw.charCodeAt(pathStart);
    if (c === 47 || c === 63 || c === 35) break;
    pathStart++;
  }
  const authority = raw.slice(authStart, pathStart);
  // The WHATWG parser takes "\" for "/" in http URLs: refuse an authority it would cut elsewhere.
  if (authority === '' || !AUTHORITY.test(authority)) throw malformed(`malformed host "${authority.slice(0, 100)}"`);
  let u: URL;
  try {
    u = new URL(`${scheme}://${authority}/`);
  } catch {
    throw malformed(`malformed host "${authority.slice(0, 100)}"`);
  }
  const port = u.port === '' ? (scheme === 'https' ? 443 : 80) : Number(u.port);
  const rest = raw.slice(pathStart);
  return {
    protocol: u.protocol,
    hostname: u.hostname,
    port,
    keyOrigin: originOf(scheme, u.host),
    target: canonicalTarget(rest.charCodeAt(0) === 47 ? rest : `/${rest}`),
  };
}

/**
 * RFC 3986 §5.2: a URI reference (a Location or Content-Location value) resolved against the
 * request at `keyOrigin` + `target`; undefined when it is not http(s). Throws SC_ERR_BAD_REQUEST.
 */
export function resolveReference(keyOrigin: string, target: string, ref: string): { keyOrigin: string; target: string } | undefined {
  if (SCHEME.test(ref)) {
    const a = parseAbsolute(ref);
    return a === undefined ? undefined : { keyOrigin: a.keyOrigin, target: a.target };
  }
  if (ref.startsWith('//')) {
    const a = parseAbsolute(keyOrigin.slice(0, keyOrigin.indexOf(':') + 1) + ref);
    return a === undefined ? undefined : { keyOrigin: a.keyOrigin, target: a.target };
  }
  const q = target.indexOf('?');
  const basePath = q === -1 ? target : target.slice(0, q);
  let merged: string;
  if (ref === '' || ref.charCodeAt(0) === 35 /* # */) merged = target;
  else if (ref.charCodeAt(0) === 47 /* / */) merged = ref;
  else if (ref.charCodeAt(0) === 63 /* ? */) merged = basePath + ref;
  else merged = basePath.slice(0, basePath.lastIndexOf('/') + 1) + ref;
  return { keyOrigin, target: canonicalTarget(merged) };
}

