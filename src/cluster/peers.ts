// Reaching peers: one undici Pool per peer (keep-alive), signed requests, and a breaker per
// peer so that the first refused, reset or timed-out connection stops forwarding to it
// (DESIGN invariant 6) until a probe after the cool-down succeeds.
import { Pool } from 'undici';
import { ErrorCode, SidecacheError } from '../errors.js';
import type { HeaderObject } from '../http/headers.js';
import type { Member } from '../log/types.js';
import type { OriginRequest, OriginResponse } from '../proxy/origin.js';
import { signRequest, type PeerIdentity } from './peer-auth.js';

const BREAKER_COOL_DOWN_MS = 2_000;

interface Peer {
  readonly url: string;
  readonly pool: Pool;
  /** Epoch-ms until which the breaker is open; 0: closed. */
  openUntil: number;
}

export interface PeerClientOptions {
  readonly secret: string;
  readonly cluster: string;
  readonly self: string;
  readonly timeoutMs: number;
  readonly epoch: () => number;
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
      if (cur !== undefined) void cur.pool.close();
      this.#peers.set(m.id, {
        url: m.peerUrl,
        pool: new Pool(m.peerUrl, { connections: 64, keepAliveTimeout: 10_000, connect: { timeout: this.#o.timeoutMs } }),
        openUntil: 0,
      });
    }
    for (const [id, p] of this.#peers) {
      if (!keep.has(id)) {
        void p.pool.destroy();
        this.#peers.delete(id);
      }
    }
  }

  /** Is the breaker of this peer closed (or due for a probe)? */
  isAvailable(id: string, now = Date.now()): boolean {
    const p = this.#peers.get(id);
    return p !== undefined && p.openUntil <= now;
  }

  async forward(id: string, r: OriginRequest): Promise<OriginResponse> {
    const p = this.#peers.get(id);
    if (p === undefined) throw new SidecacheError(ErrorCode.peer, `peer ${id} is not in the view`, { peer: id, status: 502 });
    const identity: PeerIdentity = { cluster: this.#o.cluster, from: this.#o.self, epoch: this.#o.epoch() };
    const headers = { ...r.headers, ...signRequest(this.#o.secret, identity, r.method, r.path) };
    try {
      const res = await p.pool.request({
        path: r.path,
        method: r.method as 'GET',
        headers,
        signal: r.signal,
        headersTimeout: this.#o.timeoutMs,
        bodyTimeout: this.#o.timeoutMs,
      });
      if (res.statusCode === 401 || res.statusCode === 403 || res.statusCode === 421) {
        // The peer refused us (secret or cluster mismatch, or it is draining): next owner.
        res.body.resume();
        throw new SidecacheError(ErrorCode.peer, `peer ${id} refused the request (${res.statusCode})`, { peer: id, status: 502 });
      }
      p.openUntil = 0;
      return { status: res.statusCode, headers: res.headers as HeaderObject, body: res.body };
    } catch (err) {
      if (err instanceof SidecacheError) throw err;
      p.openUntil = Date.now() + BREAKER_COOL_DOWN_MS;
      throw new SidecacheError(ErrorCode.peer, `peer ${id} unreachable: ${(err as Error).message}`, { cause: err, peer: id, status: 502 });
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.#peers.values()].map((p) => p.pool.destroy()));
    this.#peers.clear();
  }
}
