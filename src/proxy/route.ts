// route: on a miss, who should fetch? The seam between the data path and the cluster:
// `NoPeers` (standalone, or ring off) always answers "here".
import type { OriginRequest, OriginResponse } from './origin.js';

export interface Router {
  /** Peers to ask for `key`, in order (primary first); undefined: this sidecar fetches. Called on a miss only. */
  peersFor(key: string): readonly string[] | undefined;
  /** A signed request to a peer. Rejects with SC_ERR_PEER when the peer cannot answer. */
  forward(peer: string, r: OriginRequest): Promise<OriginResponse>;
  /** Epoch of the view in use, carried in Cache-Status and in peer requests. */
  readonly epoch: number;
}

export const NoPeers: Router = {
  peersFor: () => undefined,
  forward: () => Promise.reject(new Error('no peers')),
  epoch: 0,
};
