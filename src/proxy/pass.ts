// pass: what is not looked up goes straight through (unsafe methods, requests with a body,
// no-store, a conditional range request on a miss), and a successful unsafe request invalidates the
// stored responses it names (RFC 9111 §4.4), here at once and through the log everywhere.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errors as undiciErrors } from 'undici';
import { SidecacheError } from '../core/errors.js';
import { ifRangeNamesOtherForm, originTags } from '../http/compressible.js';
import { toRawHeaders, upstreamRequestHeaders, VIA, type HeaderObject } from '../http/headers.js';
import { invalidatesOnResponse, relatedTargets } from '../http/invalidate.js';
import type { Pipeline } from './context.js';
import { cacheStatus, relayInterim, sendError } from './deliver.js';
import { keyOf } from './key.js';
import type { BodyControl, OriginSink } from './origin.js';
import type { Target } from './recv.js';

const PASS_DROP: ReadonlySet<string> = new Set([
  'x-sidecache-signature', 'x-sidecache-ts', 'x-sidecache-nonce', 'x-sidecache-from', 'x-sidecache-epoch', 'x-sidecache-cluster',
]);

const CONDITIONALS = ['if-match', 'if-none-match'] as const;

/** Does the request carry content (RFC 9112 §6.3: Transfer-Encoding, or a Content-Length above 0)? */
export function hasRequestBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  return (cl !== undefined && cl !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/** Straight through to the origin, invalidating on success (§4.4). */
export function pass(
  p: Pipeline, req: IncomingMessage, res: ServerResponse, target: Target, fwd: 'method' | 'request', detail?: string,
): void {
  const s = p.s;
  const method = req.method!;
  const headers = upstreamRequestHeaders(req.headers, req.socket.remoteAddress, PASS_DROP);
  // A client may hold the ETag of a gzip form of ours (a write's If-Match): the origin compares
  // its own tags, so it gets the tag it made (RFC 9110 §13.1). Not an If-Range: one naming our
  // gzip form (or a date, with compression on) holds only against that form, so the Range and
  // If-Range are dropped and the origin sends the whole object (ifRangeNamesOtherForm).
  const ifRange = headers['if-range'];
  if (typeof ifRange === 'string' && ifRangeNamesOtherForm(ifRange, s.config.compress)) {
    delete headers['if-range'];
    delete headers.range;
  }
  for (const name of CONDITIONALS) {
    const v = headers[name];
    if (typeof v === 'string') headers[name] = originTags(v);
    else if (Array.isArray(v)) headers[name] = v.map(originTags);
  }
  s.metrics.originRequests.inc();
  let upBody: BodyControl | undefined;
  const sink: OriginSink = {
    onInfo: (status, upHeaders) => relayInterim(req, res, status, upHeaders),
    onHead: (status, upHeaders, body) => {
      upBody = body;
      try {
        if (invalidatesOnResponse(method, status)) invalidateWrite(p, target, upHeaders);
        const raw = toRawHeaders(upHeaders, p.dropOnPass);
        raw.push('via', VIA, 'cache-status', cacheStatus(p.statusCtx, { fwd, fwdStatus: status, ...(detail === undefined ? {} : { detail }) }));
        res.writeHead(status, raw);
      } catch (err) {
        body.destroy();
        sink.onError(err);
        return;
      }
      res.on('drain', () => body.resume());
    },
    onData: (chunk) => {
      if (!res.write(chunk)) upBody!.pause();
    },
    onEnd: () => {
      res.end();
    },
    onError: (err) => {
      if (res.headersSent || res.destroyed) {
        // Mid-body: cut the connection, the only honest signal left. Or the client left
        // first (we aborted the origin request): not an origin error, nobody to answer.
        res.destroy();
        return;
      }
      s.metrics.originErrors.labels(err instanceof SidecacheError ? err.code : 'unknown').inc();
      const status = err instanceof SidecacheError && err.status !== undefined ? err.status : 502;
      sendError(res, status, (err as Error).message, cacheStatus(p.statusCtx, { fwd, detail: 'origin error' }));
    },
  };
  const call = s.origin.dispatch({ origin: target.origin, path: target.path, method, headers, body: hasRequestBody(req) ? req : null }, sink);
  // The client went away before the response was complete: stop the origin's too.
  res.once('close', () => { if (!res.writableFinished) call.destroy(new undiciErrors.RequestAbortedError()); });
}

/** RFC 9111 §4.4: the target URI and same-origin Location / Content-Location, cluster-wide. */
function invalidateWrite(p: Pipeline, target: Target, headers: HeaderObject): void {
  const loc = headers.location;
  const cloc = headers['content-location'];
  const related = relatedTargets(target.keyOrigin, target.path, typeof loc === 'string' ? loc : undefined, typeof cloc === 'string' ? cloc : undefined);
  const keys = [keyOf(target.keyOrigin, target.path, p.keyOpts)];
  for (const r of related) {
    const k = keyOf(r.keyOrigin, r.target, p.keyOpts);
    if (!keys.includes(k)) keys.push(k);
  }
  // Here at once (read-your-writes), then through the log for every sidecar.
  p.s.invalidator.keys(keys);
  p.writes.add(keys);
}
