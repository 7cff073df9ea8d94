// Interim responses across a peer hop (RFC 9110 §15.2): the origin's 103 Early Hints reach a
// client whose sidecar forwarded the miss to the key's owner, as they arrive and before the
// final answer; they are not stored, and add nothing to the final response or to a later hit.
import t from 'tap';
import { RawSocket } from '../helpers/raw-http.js';
import { startCluster } from '../../support/cluster.js';
import { startNats } from '../../support/nats-server.js';
import { startOrigin } from '../../support/origin.js';
import { ADMIN_TOKEN, type SidecarProcess } from '../../support/sidecar.js';

const nats = await startNats({ nodes: 1 });
t.teardown(() => nats.stop());
const origin = await startOrigin();
t.teardown(() => origin.close());

/** A path whose primary owner is `owner`, as the ring of `at` places it (GET /inspect, which fetches nothing). */
async function pathWithPrimary(at: SidecarProcess, owner: SidecarProcess, prefix: string): Promise<string> {
  for (let k = 0; k < 64; k++) {
    const path = `${prefix}${k}`;
    const r = await fetch(`${at.adminUrl}/inspect?url=${encodeURIComponent(`http://127.0.0.1:${new URL(origin.url).port}${path}`)}`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    const body = await r.json() as { owners?: string[] };
    if (body.owners?.[0] === owner.id) return path;
  }
  throw new Error(`no path under ${prefix} with primary ${owner.id} in 64 tries`);
}

t.test('interim - a 103 from the origin reaches the client through the owner, before the final answer, and is not stored', async (t) => {
  const { sidecars } = await startCluster(2, { natsUrls: nats.urls, upstream: origin.url });
  const [a, b] = sidecars as [SidecarProcess, SidecarProcess];
  t.teardown(() => Promise.all([a.stop(), b.stop()]));
  const path = await pathWithPrimary(a, b, '/interim/fwd/');
  let release: () => void = () => {};
  origin.route(path, (req, res, n) => {
    res.writeEarlyHints({ link: '</app.css>; rel=preload; as=style', 'x-hint': 'early' });
    release = () => {
      const body = `final #${n}`;
      res.writeHead(200, { 'cache-control': 'public, max-age=60', 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    req.resume();
  });
  const s = await RawSocket.open(Number(new URL(a.url).port));
  t.teardown(() => s.close());
  s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
  const hints = await s.readResponse();
  t.equal(hints.status, 103, 'Early Hints while the origin still holds the final answer');
  t.equal(hints.headers.link, '</app.css>; rel=preload; as=style');
  t.equal(hints.headers['x-hint'], 'early');
  release();
  const final = await s.readResponse();
  t.equal(final.status, 200);
  t.equal(final.body.toString(), 'final #1');
  t.match(final.headers['cache-status'] ?? '', new RegExp(`node="${b.id}".*fwd=uri-miss.*node="${a.id}"|fwd=uri-miss`), 'fetched by the owner, forwarded');
  t.equal(final.headers.link, undefined, 'the hints are not merged into the final response');
  t.equal(final.headers['x-hint'], undefined);
  s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
  const hit = await s.readResponse();
  t.equal(hit.status, 200, 'the next request starts with its final response');
  t.equal(hit.headers.link, undefined, 'nothing of the 103 was stored');
  t.equal(origin.count(path), 1, 'one origin request');
});
