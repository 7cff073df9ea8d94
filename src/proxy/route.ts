// route: on a miss, who should fetch? This sidecar from the origin, or the key's owners
// (peers, in order). The Router is the seam between the data path and the cluster:
// `NoPeers` (standalone, or ring off) always answers "here".
import type { Logger } from 'pino';
import type { Metrics } from '../core/metrics.js';
import type { HeaderObject } from '../http/headers.js';
import type { Origin, OriginRequest, OriginResponse, OriginSink } from './origin.js';

/** An interim (1xx) response as it arrives. */
export type InterimListener = (status: number, headers: HeaderObject) => void;

export interface Router {
  /** Peers to ask for `key`, in order (primary first); undefined: this sidecar fetches. Called on a miss only. */
  peersFor(key: string): readonly string[] | undefined;
  /** A signed request to a peer. Rejects with SC_ERR_PEER when the peer cannot answer.
   *  `onInfo` hears the origin's interim responses the peer passes on (103 Early Hints). */
  forward(peer: string, r: OriginRequest, onInfo?: InterimListener): Promise<OriginResponse>;
  /** Epoch of the view in use, carried in Cache-Status and in peer requests. */
  readonly epoch: number;
}

export const NoPeers: Router = {
  peersFor: () => undefined,
  forward: () => Promise.reject(new Error('no peers')),
  epoch: 0,
};

/** Local: the origin itself is asked; its answer goes to `sink`. */
export function fromOrigin(origin: Origin, metrics: Metrics, r: OriginRequest, sink: OriginSink): void {
  metrics.originRequests.inc();
  origin.dispatch(r, sink);
}

/** Peers: the owners in order, until one answers; its answer goes to `sink`. False when none
 *  answered (the caller then fetches from the origin itself). */
export async function fromPeers(
  router: Router, metrics: Metrics, logger: Logger, peers: readonly string[], r: OriginRequest, sink: OriginSink,
): Promise<boolean> {
  for (const peer of peers) {
    let up: OriginResponse;
    try {
      metrics.peerRequests.inc();
      up = await router.forward(peer, r, (status, headers) => sink.onInfo?.(status, headers));
    } catch (err) {
      metrics.peerErrors.labels(peer).inc();
      logger.warn({ peer, err: (err as Error).message }, 'peer unreachable, trying the next owner');
      continue;
    }
    feedSink(up, sink);
    return true;
  }
  return false;
}

/** A peer's response (a Readable) fed into a sink like an origin fetch. */
function feedSink(up: OriginResponse, sink: OriginSink): void {
  const body = up.body;
  sink.onHead(up.status, up.headers, body);
  body.on('data', (c: Buffer) => sink.onData(c));
  body.on('end', () => sink.onEnd());
  body.on('error', (err) => sink.onError(err));
}
