// Signed peer requests: HMAC-SHA256 with the cluster secret over the cluster, sender,
// epoch, timestamp, nonce, method and target. Replays within the clock window are refused
// by remembering nonces.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

export const PeerHeader = {
  cluster: 'x-sidecache-cluster',
  from: 'x-sidecache-from',
  epoch: 'x-sidecache-epoch',
  ts: 'x-sidecache-ts',
  nonce: 'x-sidecache-nonce',
  signature: 'x-sidecache-signature',
} as const;

/** Largest clock difference accepted between two sidecars. */
export const MAX_SKEW_MS = 30_000;

export interface PeerIdentity {
  readonly cluster: string;
  readonly from: string;
  readonly epoch: number;
}

function mac(secret: string, parts: readonly string[]): Buffer {
  return createHmac('sha256', secret).update(parts.join('\n')).digest();
}

// A nonce must never repeat; it need not be unpredictable (the signature covers it). A random
// prefix per process and a counter: randomBytes() per request cost ~8 µs on the forwarding path.
const NONCE_PREFIX = randomBytes(9).toString('base64url');
let nonceCounter = 0;

export function signRequest(secret: string, id: PeerIdentity, method: string, target: string, now = Date.now()): Record<string, string> {
  const ts = String(now);
  const nonce = `${NONCE_PREFIX}${(nonceCounter++).toString(36)}`;
  const sig = mac(secret, [id.cluster, id.from, String(id.epoch), ts, nonce, method, target]).toString('base64url');
  return {
    [PeerHeader.cluster]: id.cluster,
    [PeerHeader.from]: id.from,
    [PeerHeader.epoch]: String(id.epoch),
    [PeerHeader.ts]: ts,
    [PeerHeader.nonce]: nonce,
    [PeerHeader.signature]: sig,
  };
}

/**
 * Why a peer request was refused: a fixed set, so that metric labels and log lines stay
 * bounded whatever an unauthenticated sender puts in its headers.
 */
export const PeerRefusal = {
  missing: 'missing',
  wrongCluster: 'wrong-cluster',
  stale: 'stale',
  badSignature: 'bad-signature',
  replay: 'replay',
} as const;
export type PeerRefusal = (typeof PeerRefusal)[keyof typeof PeerRefusal];

export type Verdict =
  | { readonly ok: true; readonly identity: PeerIdentity }
  | { readonly ok: false; readonly status: 401 | 403; readonly code: PeerRefusal; readonly reason: string };

function one(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? undefined : v;
}

export class PeerVerifier {
  /** Nonces remembered now: the requests of the last 2 x MAX_SKEW_MS or so (memory grows with the peer request rate). */
  get remembered(): number {
    return this.#seen.size;
  }

  readonly #secret: string;
  readonly #cluster: string;
  /** nonce -> expiry, in arrival order: swept from the front on every request. */
  readonly #seen = new Map<string, number>();

  constructor(secret: string, cluster: string) {
    this.#secret = secret;
    this.#cluster = cluster;
  }

  verify(headers: IncomingHttpHeaders, method: string, target: string, now = Date.now()): Verdict {
    const sig = one(headers, PeerHeader.signature);
    const cluster = one(headers, PeerHeader.cluster);
    const from = one(headers, PeerHeader.from);
    const epoch = one(headers, PeerHeader.epoch);
    const ts = one(headers, PeerHeader.ts);
    const nonce = one(headers, PeerHeader.nonce);
    if (sig === undefined || cluster === undefined || from === undefined || epoch === undefined || ts === undefined || nonce === undefined) {
      return { ok: false, status: 401, code: PeerRefusal.missing, reason: 'unsigned peer request' };
    }
    // The claimed name is not echoed: nothing unauthenticated goes into labels or logs.
    if (cluster !== this.#cluster) return { ok: false, status: 403, code: PeerRefusal.wrongCluster, reason: 'peer request for another cluster' };
    const t = Number(ts);
    if (!Number.isFinite(t) || Math.abs(now - t) > MAX_SKEW_MS) return { ok: false, status: 401, code: PeerRefusal.stale, reason: 'peer request timestamp outside the window' };
    const expected = mac(this.#secret, [cluster, from, epoch, ts, nonce, method, target]);
    const given = Buffer.from(sig, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return { ok: false, status: 401, code: PeerRefusal.badSignature, reason: 'bad peer signature' };
    }
    // Forget nonces whose requests can no longer pass the timestamp check. Arrival order is
    // nearly expiry order, so stopping at the first live one makes this O(1) per request; a
    // full scan once the map was large cost O(requests in the window) per request.
    for (const [n, exp] of this.#seen) {
      if (exp >= now) break;
      this.#seen.delete(n);
    }
    if (this.#seen.has(nonce)) return { ok: false, status: 401, code: PeerRefusal.replay, reason: 'replayed peer request' };
    // Kept for twice the window: a wall clock stepped back by up to MAX_SKEW_MS must not
    // reopen the window of a forgotten nonce.
    this.#seen.set(nonce, t + 2 * MAX_SKEW_MS);
    return { ok: true, identity: { cluster, from, epoch: Number(epoch) } };
  }
}
