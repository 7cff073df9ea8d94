// Member queries on the peer port: signed POSTs under CONTROL_PREFIX that a member sends
// another to gather the cluster's status (GET /cluster/members) or to ask what it holds for a
// key (GET /inspect). The peer server verifies the signature before anything here runs.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CONTROL_PREFIX } from './member-status.js';

/** What a member answers about itself. */
export interface PeerControlDeps {
  readonly status: () => Promise<unknown>;
  /** What this member holds for a primary key, and why it last did not store it. */
  readonly inspect: (key: string) => unknown;
}

/** Longest key accepted in a query: keys are request targets, bounded by SIDECACHE_MAX_URL_BYTES. */
const MAX_KEY_CHARS = 64 * 1024;

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/** Paths of member queries (signed with the query string, which carries their parameters). */
export const ControlPath = {
  status: `${CONTROL_PREFIX}status`,
  inspect: (key: string) => `${CONTROL_PREFIX}inspect?key=${encodeURIComponent(key)}`,
} as const;

/** The peer server's handler for member queries; `req` is verified already. */
export function createPeerControl(d: PeerControlDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    req.resume();
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (path === ControlPath.status) {
      d.status().then((s) => json(res, 200, s), (err: unknown) => json(res, 500, { error: (err as Error).message }));
      return;
    }
    if (path === `${CONTROL_PREFIX}inspect`) {
      const key = new URLSearchParams(q === -1 ? '' : url.slice(q + 1)).get('key');
      if (key === null || key === '' || key.length > MAX_KEY_CHARS) {
        json(res, 400, { error: 'expected ?key=<primary key>' });
        return;
      }
      json(res, 200, d.inspect(key));
      return;
    }
    json(res, 404, { error: 'no such member query' });
  };
}
