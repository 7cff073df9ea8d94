// Secondary keys (RFC 9111 §4.1): the request header values a stored response varies on.
// The values are those the origin received (headers.ts upstreamValue), never the client's
// raw fields: a field this hop removed did not select the response. Credentials are kept
// only as a keyed hash, so entries and the fills published to the log hold no secrets.
import { createHmac, randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/** Fields every stored response is keyed on, Vary or not, sorted: the ones frameworks read in
 *  place of the host, scheme, port or base path (Rack, Rails, Spring, ASP.NET, Symfony, Express
 *  with `trust proxy`, and RFC 7239 Forwarded) and reflect into links and redirects. An origin
 *  seldom says `Vary` for them, so an answer to one value must never be served to a request
 *  with another (cache poisoning), and they are forwarded as sent: a proxy in front of the
 *  sidecar that sets them still reaches the origin. The request-line overrides (X-Original-URL
 *  and kin) are not keyed but never forwarded (headers.ts REQUEST_LINE_OVERRIDES). */
export const IMPLICIT_VARY: readonly string[] = [
  'forwarded', 'x-forwarded-host', 'x-forwarded-port', 'x-forwarded-prefix', 'x-forwarded-proto', 'x-forwarded-scheme',
  'x-forwarded-server', 'x-forwarded-ssl', 'x-host', 'x-original-host',
];

/** Does a request carry any IMPLICIT_VARY field? Most do not: their variant key is then the one
 *  of a request without them, computed once (the hit path). Spelled out name by name: V8 makes
 *  each a constant-name load (under a nanosecond in all), where a loop over the list costs
 *  over 100 ns a hit. The unit test holds it to IMPLICIT_VARY. */
export function hasImplicitVaryField(h: IncomingHttpHeaders): boolean {
  return h.forwarded !== undefined || h['x-forwarded-host'] !== undefined || h['x-forwarded-port'] !== undefined ||
    h['x-forwarded-prefix'] !== undefined || h['x-forwarded-proto'] !== undefined || h['x-forwarded-scheme'] !== undefined ||
    h['x-forwarded-server'] !== undefined || h['x-forwarded-ssl'] !== undefined || h['x-host'] !== undefined ||
    h['x-original-host'] !== undefined;
}

/** Lower-cased, sorted field names of a Vary value; null when the response has no Vary. */
export function varyNames(vary: string | string[] | undefined): readonly string[] | null {
  if (vary === undefined) return null;
  const text = Array.isArray(vary) ? vary.join(',') : vary;
  const names = [...new Set(text.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== ''))].sort();
  return names.length === 0 ? null : names;
}

/** The names of a response's secondary key: its Vary plus IMPLICIT_VARY, sorted. */
export function secondaryKeyNames(vary: string | string[] | undefined): readonly string[] {
  const names = varyNames(vary);
  if (names === null) return IMPLICIT_VARY;
  return [...new Set([...names, ...IMPLICIT_VARY])].sort();
}

/** Fields whose values are credentials: Cookie, Authorization and API-key-like names. */
export function isCredentialField(name: string): boolean {
  return name === 'cookie' || name.includes('auth') || name.includes('api-key') || name.includes('apikey') ||
    name.includes('token') || name.includes('secret') || name.includes('session') || name.includes('password') ||
    name.startsWith('x-sidecache-');
}

/** One field of a request as sent upstream (undefined: not sent). */
export type FieldView<A> = (arg: A, name: string) => string | string[] | undefined;

/** A view of a plain header object (the head of a fetch, as sent). */
export const objectView: FieldView<IncomingHttpHeaders | Record<string, string | string[] | undefined>> = (h, name) => h[name];

/** §4.1: combined lines, whitespace around commas. Anything but a string or a list is absent:
 *  the origin names the fields, and a header object read by `__proto__` or `constructor`
 *  yields Object.prototype's members, not a field. */
function normalise(v: string | string[] | undefined): string {
  const text = typeof v === 'string' ? v : Array.isArray(v) ? v.join(', ') : '';
  return text.replace(/\s*,\s*/g, ', ').trim();
}

/** The key of credential hashes: derived from the cluster secret (every member computes the same
 *  values, so replicas match), or random for a standalone sidecar whose entries die with it. */
export function secondaryKeySecret(clusterSecret: string | undefined): Buffer {
  if (clusterSecret === undefined || clusterSecret === '') return randomBytes(32);
  // A key of its own, not the peer-signing secret itself.
  return createHmac('sha256', clusterSecret).update('sidecache secondary key v1').digest();
}

/** Prefix of the value of a Vary "*": random per process, then a counter. */
const UNMATCHABLE = `*${randomBytes(9).toString('base64url')}:`;
let unmatched = 0;

/** Computes and matches secondary keys; credentials as HMAC-SHA256 under `secret`. */
export class SecondaryKey {
  readonly #secret: Buffer;
  /** The last hash made: a lookup compares one request's credential with every variant of a
   *  key, and hashes it once. */
  #lastName = '';
  #lastValue = '';
  #lastHash = '';

  constructor(secret: Buffer) {
    this.#secret = secret;
  }

  /** Absent stays '' (absent never matches present); a credential becomes `hmac:<base64url>`;
   *  "*" a value no other computation returns, here or on a peer (§4.1: it never matches). */
  #value(name: string, v: string | string[] | undefined): string {
    if (name === '*') return `${UNMATCHABLE}${(unmatched++).toString(36)}`;
    const norm = normalise(v);
    if (norm === '' || !isCredentialField(name)) return norm;
    if (name === this.#lastName && norm === this.#lastValue) return this.#lastHash;
    const hash = `hmac:${createHmac('sha256', this.#secret).update(name).update('\n').update(norm).digest('base64url')}`;
    this.#lastName = name;
    this.#lastValue = norm;
    this.#lastHash = hash;
    return hash;
  }

  values<A>(names: readonly string[], view: FieldView<A>, arg: A): string[] {
    const out: string[] = new Array(names.length);
    for (let i = 0; i < names.length; i++) out[i] = this.#value(names[i]!, view(arg, names[i]!));
    return out;
  }

  /** Does a request select the stored response (§4.1)? Never when its Vary lists "*", whatever
   *  admitted it: a replica, hot copy or flight head is held to the rule too. */
  matches<A>(names: readonly string[], values: readonly string[], view: FieldView<A>, arg: A): boolean {
    if (names.includes('*')) return false;
    for (let i = 0; i < names.length; i++) {
      if (this.#value(names[i]!, view(arg, names[i]!)) !== values[i]) return false;
    }
    return true;
  }
}
