// Collapsed requests and Vary: a flight is keyed by the primary key, so a request for one
// variant may find another variant's revalidation in flight. It must never be answered with
// that other variant. (Found by the cluster checker, seed 1 at 5.7 s: an `en` request got the
// `fr` body.)
import t from 'tap';
import { startOrigin } from '../../support/origin.js';
import { parseResponse, rawExchange } from '../helpers/raw-http.js';
import { startSidecar, waitFor } from '../../support/sidecar.js';

t.test('collapse - a request for one variant never gets another variant\'s revalidation', async (t) => {
  let release: () => void = () => {};
  const held = new Promise<void>((r) => { release = r; });
  const origin = await startOrigin({
    '/lang': (req, res) => {
      const lang = String(req.headers['accept-language'] ?? 'none');
      const etag = `"${lang}-1"`;
      const head = { 'cache-control': 'public, max-age=0', vary: 'accept-language', etag, 'content-type': 'text/plain' };
      if (req.headers['if-none-match'] === etag) {
        // Revalidations wait until the test has queued a request for the other variant.
        void held.then(() => { res.writeHead(304, head); res.end(); });
        return;
      }
      res.writeHead(200, head);
      res.end(`lang=${lang}`);
    },
  });
  t.teardown(() => origin.close());
  const sc = await startSidecar({ env: { SIDECACHE_UPSTREAM: origin.url } });
  t.teardown(() => sc.stop());
  const get = async (lang: string) => (await fetch(`${sc.url}/lang`, { headers: { 'accept-language': lang } })).text();

  t.equal(await get('fr'), 'lang=fr');
  t.equal(await get('en'), 'lang=en');
  // Both stored, both stale at once (max-age=0, with validators): each read revalidates.
  const fr = get('fr');
  await waitFor(() => origin.requests.some((q) => q.headers['if-none-match'] === '"fr-1"'), 10_000, 'the fr revalidation at the origin');
  // The en request goes first on a connection, a probe pipelined behind it: node:http hands
  // the sidecar the en request before the probe, so once the origin sees the probe the en
  // request has joined the fr revalidation (or started its own fetch).
  const port = Number(new URL(sc.url).port);
  const en = rawExchange(port, 'GET /lang HTTP/1.1\r\nHost: x\r\nAccept-Language: en\r\n\r\nGET /probe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 15_000);
  await waitFor(() => origin.count('/probe') === 1, 10_000, 'the probe at the origin');
  release();
  t.equal(await fr, 'lang=fr');
  t.equal(parseResponse(await en).body.toString(), 'lang=en', 'the en request gets the en variant');
});
