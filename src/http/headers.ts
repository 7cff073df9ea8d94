// Header plumbing shared by both directions: hop-by-hop removal (RFC 9110 §7.6.1), Via,
// and the conversion of undici's header objects into Node's flat raw arrays.
import type { IncomingHttpHeaders } from 'node:http';

/** Hop-by-hop fields never forwarded in either direction. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding',
  'upgrade', 'proxy-authenticate', 'proxy-authorization',
]);

export const VIA = '1.1 sidecache';

/**
 * Fields some frameworks read in place of the request line (X-Original-URL and X-Rewrite-URL
 * for the path, the X-HTTP-Method family for the method). The cache keys the request line,
 * so with these the origin could answer another resource or method than the key says, and
 * that answer would be stored and served under it. Never sent upstream.
 */
export const REQUEST_LINE_OVERRIDES: ReadonlySet<string> = new Set([
  'x-original-url', 'x-rewrite-url', 'x-http-method-override', 'x-http-method', 'x-method-override',
]);

/** Names listed in a Connection header are hop-by-hop too (RFC 9110 §7.6.1). */
export function connectionTokens(value: string | string[] | undefined): ReadonlySet<string> | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value.join(',') : value;
  const set = new Set<string>();
  for (const t of text.split(',')) {
    const name = t.trim().toLowerCase();
    if (name !== '') set.add(name);
  }
  return set;
}

export type HeaderObject = Record<string, string | string[] | undefined>;

/**
 * Response headers from the origin -> flat [name, value, ...] for writeHead, without
 * hop-by-hop fields and without the names in `drop` (Age, tag headers, ...).
 */
export function toRawHeaders(headers: HeaderObject, drop: ReadonlySet<string>): string[] {
  const extra = connectionTokens(headers.connection);
  const raw: string[] = [];
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || drop.has(name) || (extra !== undefined && extra.has(name))) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) raw.push(name, v);
    else raw.push(name, value);
  }
  return raw;
}

/** Is request field `name` forwarded upstream as it came? Not when hop-by-hop or listed in
 *  Connection (RFC 9110 §7.6.1), Host (the client's is not ours to pass), a request-line
 *  override, or Expect (answered by node:http at this hop, and undici refuses it), nor when
 *  in `drop` (ours). */
function isForwarded(name: string, listed: ReadonlySet<string> | undefined, drop: ReadonlySet<string> | undefined): boolean {
  return !HOP_BY_HOP.has(name) && name !== 'host' && name !== 'expect' && !REQUEST_LINE_OVERRIDES.has(name) &&
    (listed === undefined || !listed.has(name)) && (drop === undefined || !drop.has(name));
}

function viaOf(headers: IncomingHttpHeaders): string {
  return headers.via === undefined ? VIA : `${headers.via}, ${VIA}`;
}

function forwardedForOf(headers: IncomingHttpHeaders, clientIp: string): string {
  const xff = headers['x-forwarded-for'];
  return xff === undefined ? clientIp : `${Array.isArray(xff) ? xff.join(', ') : xff}, ${clientIp}`;
}

/** Request headers to send upstream: hop-by-hop and request-line overrides removed, Via and X-Forwarded-For added. */
export function upstreamRequestHeaders(
  headers: IncomingHttpHeaders,
  clientIp: string | undefined,
  drop?: ReadonlySet<string>,
): Record<string, string | string[]> {
  const listed = connectionTokens(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    if (!isForwarded(name, listed, drop)) continue;
    const value = headers[name];
    if (value !== undefined) out[name] = value;
  }
  out.via = viaOf(headers);
  if (clientIp !== undefined) out['x-forwarded-for'] = forwardedForOf(headers, clientIp);
  return out;
}

/**
 * The value of one request field as upstreamRequestHeaders would send it (undefined: not
 * sent), without building the whole head: a request's secondary key (RFC 9111 §4.1) is made
 * of what the origin receives, and a hit must match it without the cost of a fetch's head.
 */
export function upstreamValue(
  headers: IncomingHttpHeaders,
  name: string,
  clientIp: string | undefined,
  drop?: ReadonlySet<string>,
): string | string[] | undefined {
  if (name === 'via') return viaOf(headers);
  if (name === 'x-forwarded-for' && clientIp !== undefined) return forwardedForOf(headers, clientIp);
  const value = headers[name];
  // Connection is parsed only for a field that is there to be removed.
  if (value === undefined || !isForwarded(name, connectionTokens(headers.connection), drop)) return undefined;
  return value;
}

/**
 * Response fields repeated on several lines, combined into one comma-separated value
 * (RFC 9110 §5.3), as http-cache-semantics and our parsers expect; Set-Cookie stays a list.
 * Returns the same object when nothing is repeated.
 */
export function combineFieldLines(headers: HeaderObject): HeaderObject {
  let out: HeaderObject | undefined;
  for (const name in headers) {
    const v = headers[name];
    if (!Array.isArray(v) || name === 'set-cookie') continue;
    out ??= { ...headers };
    out[name] = v.join(', ');
  }
  return out ?? headers;
}

/** Value of `name` in a flat raw header array (first occurrence), case-insensitive names. */
/** Raw header pairs without `name` (lower-case), as a new array the caller may extend. */
export function rawWithout(raw: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i] !== name) out.push(raw[i]!, raw[i + 1]!);
  return out;
}

export function rawGet(raw: readonly string[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) return raw[i + 1];
  return undefined;
}

/** Flat raw array -> header object as undici / http-cache-semantics expect. */
export function rawToObject(raw: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const prev = out[name];
    out[name] = prev === undefined ? raw[i + 1]! : `${prev}, ${raw[i + 1]}`;
  }
  return out;
}
