// Reaching peers: one undici Pool per peer (keep-alive), signed requests, and a breaker per
// peer so that the first refused, reset or timed-out connection stops forwarding to it
// (DESIGN invariant 6) until a probe after the cool-down succeeds.
//
// A slow answer is not a dead peer. An owner that takes a forwarded miss to its origin
// answers `102 Processing` at once (RFC 2518 §10.1; undici hands it to onInfo): from then on
// the request has the origin's headers timeout plus the peer timeout, since the owner itself
// gives up on its origin after the former. Before that, the peer timeout bounds the connect
// and the wait for the 102 or the answer: a peer that cannot accept (refused, reset, or a
// process that no longer reads its sockets) opens the breaker within it.
//
// With SIDECACHE_PEER_TLS_* every peer is reached over HTTPS, its certificate checked
// against the cluster's CA and ours presented; a member that advertises a plain http URL is
// sent nothing (its misses go to the next owner or the origin, as for an unreachable peer).
import { Pool } from 'undici';
import { ErrorCode, SidecacheError } from '../core/errors.js';
import type { HeaderObject } from '../http/headers.js';
import type { Member } from '../core/types.js';
import type { OriginRequest, OriginResponse } from '../proxy/origin.js';
import type { InterimListener } from '../proxy/route.js';
import { describeTlsError, type PeerTls } from '../core/transport-security.js';
import { signRequest, type PeerIdentity } from './peer-auth.js';

const BREAKER_COOL_DOWN_MS = 2_000;
/** Largest answer to a member query (a status or an inspection: a few KiB). */
const QUERY_MAX_BYTES = 1024 * 1024;

interface Peer {
  readonly url: string;
  /** undefined: a plain http peer while we require TLS; nothing is sent to it. */
  readonly pool: Pool | undefined;
  /** Epoch-ms until which the breaker is open; 0: closed. */
  openUntil: number;
  /** Requests the peer accepted (102) and has not answered yet: it is alive and working. */
  accepted: number;
  /** Epoch-ms the peer last showed it is alive: a 102 or a response head. */
  heardAt: number;
}

export interface PeerClientOptions {
  readonly secret: string;
  readonly cluster: string;
  readonly self: string;
  /** Connect, and the wait for the peer to accept a request (its 102 or its answer). */
  readonly acceptTimeoutMs: number;
  /** Response head after the peer accepted: the origin's headers timeout plus acceptTimeoutMs. */
  readonly headersTimeoutMs: number;
  /** Between body chunks: the origin's body timeout plus acceptTimeoutMs. */
  readonly bodyTimeoutMs: number;
  readonly epoch: () => number;
  /** Reach peers over TLS only (https), verified against tls.ca, presenting tls.cert. */
  readonly tls?: PeerTls;
}

/** The peer did not accept the request in time (no 102, no answer). */
class NotAccepted extends Error {
  override readonly name = 'NotAccepted';
}

export class PeerClient {
  readonly #o: PeerClientOptions;
  readonly #peers = new Map<string, Peer>();

  constructor(o: PeerClientOptions) {
    this.#o = o;
  }

  /** Keeps one pool per member of the view; closes the pools of members that left. */
  update(members: readonly Member[]): void {
    const keep = new Set<string>();
    for (const m of members) {
      if (m.id === this.#o.self) continue;
      keep.add(m.id);
      const cur = this.#peers.get(m.id);
      if (cur !== undefined && cur.url === m.peerUrl) continue;
      if (cur !== undefined) void cur.pool?.close();
      this.#peers.set(m.id, {
        url: m.peerUrl,
        pool: this.#pool(m.peerUrl),
        openUntil: 0,
        accepted: 0,
        heardAt: 0,
      });
    }
    for (const [id, p] of this.#peers) {
      if (!keep.has(id)) {
        void p.pool?.destroy();
        this.#peers.delete(id);
      }
    }
  }

  #pool(url: string): Pool | undefined {
    const tls = this.#o.tls;
    // An idle connection is closed after 10 s. keepAliveMaxTimeout too: undici otherwise takes
    // the peer server's hint (Keep-Alive: timeout=65) over keepAliveTimeout, and a burst of
    // forwarded requests left up to 64 idle sockets per peer open for a minute (the soak).
    const idle = { keepAliveTimeout: 10_000, keepAliveMaxTimeout: 10_000 };
    if (tls === undefined) return new Pool(url, { connections: 64, ...idle, connect: { timeout: this.#o.acceptTimeoutMs } });
    if (!url.startsWith('https:')) return undefined;
    return new Pool(url, {
      connections: 64, ...idle,
      connect: {
        timeout: this.#o.acceptTimeoutMs, ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: true,
        ...(tls.serverName === undefined ? {} : { servername: tls.serverName }),
      },
    });
  }

  /** Is the breaker of this peer closed (or due for a probe)? */
  isAvailable(id: string, now = Date.now()): boolean {
    const p = this.#peers.get(id);
    return p !== undefined && p.openUntil <= now;
  }

  async forward(id: string, r: OriginRequest, onInfo?: InterimListener): Promise<OriginResponse> {
    const p = this.#peers.get(id);
    if (p === undefined) throw new SidecacheError(ErrorCode.peer, `peer ${id} is not in the view`, { peer: id, status: 502 });
    const pool = p.pool;
    if (pool === undefined) {
      // Like an unreachable peer: the breaker opens, the next owner is asked, the log says why.
      p.openUntil = Date.now() + BREAKER_COOL_DOWN_MS;
      throw new SidecacheError(ErrorCode.peer, `peer ${id} advertises ${p.url}: not https, and the peer port is on TLS`, { peer: id, status: 502 });
    }
    const identity: PeerIdentity = { cluster: this.#o.cluster, from: this.#o.self, epoch: this.#o.epoch() };
    const headers = { ...r.headers, ...signRequest(this.#o.secret, identity, r.method, r.path) };
    const acceptMs = this.#o.acceptTimeoutMs;
    const notAccepted = new AbortController();
    let accepted = false;
    const onTimer = (): void => {
      // Queued in the pool behind requests the peer accepted (every connection waits on a
      // slow origin), or it answered another request lately: alive and busy, not dead.
      const busy = p.accepted > 0 && pool.stats.queued > 0;
      if (busy || Date.now() - p.heardAt < acceptMs) timer = setTimeout(onTimer, acceptMs);
      else notAccepted.abort(new NotAccepted(`no answer and no 102 within ${acceptMs} ms`));
    };
    let timer = setTimeout(onTimer, acceptMs);
    const accept = (): void => {
      if (accepted) return;
      accepted = true;
      clearTimeout(timer);
      p.accepted++;
      p.heardAt = Date.now();
    };
    try {
      const res = await pool.request({
        path: r.path,
        method: r.method as 'GET',
        headers,
        signal: r.signal === undefined ? notAccepted.signal : AbortSignal.any([r.signal, notAccepted.signal]),
        headersTimeout: this.#o.headersTimeoutMs,
        bodyTimeout: this.#o.bodyTimeoutMs,
        onInfo: (info) => {
          // 102 is the peer's own "accepted"; a 103 is the origin's Early Hints, passed on by
          // the owner (so it took the request too): the client hears them as it would from
          // the origin, and they are never stored.
          if (info.statusCode === 102 || info.statusCode === 103) accept();
          if (info.statusCode === 103) onInfo?.(103, info.headers as HeaderObject);
        },
      });
      clearTimeout(timer);
      if (accepted) p.accepted--;
      p.heardAt = Date.now();
      if (res.statusCode === 401 || res.statusCode === 403 || res.statusCode === 421) {
        // The peer refused us (secret or cluster mismatch, or it is draining): next owner.
        res.body.resume();
        throw new SidecacheError(ErrorCode.peer, `peer ${id} refused the request (${res.statusCode})`, { peer: id, status: 502 });
      }
      p.openUntil = 0;
      return { status: res.statusCode, headers: res.headers as HeaderObject, body: res.body };
    } catch (err) {
      if (err instanceof SidecacheError) throw err;
      clearTimeout(timer);
      if (accepted) p.accepted--;
      if (r.signal?.aborted === true) {
        // Our own caller gave up: says nothing about the peer.
        throw new SidecacheError(ErrorCode.peer, `request to peer ${id} aborted`, { cause: err, peer: id, status: 502 });
      }
      // Refused, reset, not accepted in time, or accepted and then silent past the origin's
      // own timeout: the peer cannot serve; the next owner is asked.
      p.openUntil = Date.now() + BREAKER_COOL_DOWN_MS;
      const why = notAccepted.signal.aborted ? (notAccepted.signal.reason as Error).message : describeTlsError(err, { ca: 'SIDECACHE_PEER_TLS_CA', cert: 'SIDECACHE_PEER_TLS_CERT' });
      throw new SidecacheError(ErrorCode.peer, `peer ${id} unreachable: ${why}`, { cause: err, peer: id, status: 502 });
    }
  }

  /**
   * A member query (cluster/peer-control.ts): a signed POST of `path` (its parameters in the
   * query, which the signature covers) answered with JSON of at most maxBytes. Beside the
   * forwarding path: its failures say nothing to the breaker.
   */
  async query(id: string, path: string, timeoutMs: number, maxBytes = QUERY_MAX_BYTES): Promise<unknown> {
    const p = this.#peers.get(id);
    if (p === undefined) throw new SidecacheError(ErrorCode.peer, `peer ${id} is not in the view`, { peer: id });
    if (p.pool === undefined) throw new SidecacheError(ErrorCode.peer, `peer ${id} advertises ${p.url}, not https, while the peer port is on TLS`, { peer: id });
    const pool = p.pool;
    const identity: PeerIdentity = { cluster: this.#o.cluster, from: this.#o.self, epoch: this.#o.epoch() };
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      const res = await pool.request({
        path, method: 'POST', headers: signRequest(this.#o.secret, identity, 'POST', path), signal,
        headersTimeout: timeoutMs, bodyTimeout: timeoutMs,
      });
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const c of res.body as AsyncIterable<Buffer>) {
        size += c.length;
        if (size > maxBytes) {
          res.body.destroy();
          throw new Error(`answer larger than ${maxBytes} bytes`);
        }
        chunks.push(c);
      }
      const text = Buffer.concat(chunks).toString('utf8');
      if (res.statusCode !== 200) throw new Error(`answered ${res.statusCode}: ${text.slice(0, 200).trim()}`);
      return JSON.parse(text) as unknown;
    } catch (err) {
      const why = signal.aborted ? `no answer within ${timeoutMs} ms` : (err as Error).message;
      throw new SidecacheError(ErrorCode.peer, `peer ${id}: ${why}`, { cause: err, peer: id });
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.#peers.values()].map((p) => p.pool?.destroy()));
    this.#peers.clear();
  }
}
