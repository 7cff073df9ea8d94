// Compression on store across a cluster of real processes: a gzip-accepting client gets gzip
// from a sidecar that does not own the key (its request carries its Accept-Encoding's normal
// form to the owner) and from a replica (which makes its own gzip form of the origin's bytes a
// fill carries); Range requests still get the origin's bytes.
import { request } from 'node:http';
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import { clusterInfo, startCluster } from '../../support/cluster.js';
import { startNats } from '../../support/nats-server.js';
import { startOrigin } from '../../support/origin.js';
import { waitFor } from '../../support/sidecar.js';

const BODY = Buffer.from(Array.from({ length: 400 }, (_, i) => `<li>item ${i}: a line that compresses</li>\n`).join(''));

const nats = await startNats({ nodes: 1 });
t.teardown(() => nats.stop());
const origin = await startOrigin({
  '/z/*': (req, res) => {
    const base = { 'content-type': 'text/html', 'cache-control': 'public, max-age=60', etag: '"z1"' };
    const m = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers.range ?? ''));
    if (m !== null) {
      res.writeHead(206, { ...base, 'content-range': `bytes ${m[1]}-${m[2]}/${BODY.length}` });
      res.end(BODY.subarray(Number(m[1]), Number(m[2]) + 1));
      return;
    }
    res.writeHead(200, { ...base, 'content-length': BODY.length });
    res.end(BODY);
  },
});
t.teardown(() => origin.close());

interface Got { code: number; headers: Record<string, string | string[] | undefined>; body: Buffer; hops: number }

function get(url: string, headers: Record<string, string> = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({
        code: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks),
        hops: String(res.headers['cache-status'] ?? '').split(', sidecache').length,
      }));
    });
    req.on('error', reject);
    req.end();
  });
}

const GZIP = { 'accept-encoding': 'gzip, deflate' };

t.test('cluster compress - a non-owner\'s gzip client gets the owner\'s gzip form, a Range the origin\'s bytes', async (t) => {
  const { sidecars } = await startCluster(2, { natsUrls: nats.urls, upstream: origin.url, env: { SIDECACHE_COMPRESS: 'true', SIDECACHE_REPLICAS: '1' } });
  t.teardown(() => Promise.all(sidecars.map((s) => s.stop())));
  const [asked, owner] = sidecars as [typeof sidecars[0], typeof sidecars[0]];
  // A key the other sidecar owns: its first answer at `asked` names two sidecars.
  let path = '';
  for (let k = 0; k < 64 && path === ''; k++) if ((await get(`${asked.url}/z/fwd-${k}`)).hops === 2) path = `/z/fwd-${k}`;
  t.not(path, '', 'a key forwarded to its owner');
  await waitFor(async () => (await get(`${owner.url}${path}`, GZIP)).headers['content-encoding'] === 'gzip', 10_000, 'the owner\'s gzip form');

  const gz = await get(`${asked.url}${path}`, GZIP);
  t.equal(gz.hops, 2, 'forwarded to the owner');
  t.equal(gz.headers['content-encoding'], 'gzip', 'which answered with its gzip form');
  t.equal(Number(gz.headers['content-length']), gz.body.length);
  t.same(gunzipSync(gz.body), BODY, 'that decodes to the origin\'s bytes');
  t.equal(gz.headers.etag, '"z1-sc-gzip"');
  t.match(gz.headers.vary, /Accept-Encoding/);
  const again = await get(`${asked.url}${path}`, GZIP);
  t.equal(again.hops, 1, 'then a hit on the hot copy');
  t.equal(again.headers['content-encoding'], 'gzip');
  t.same(gunzipSync(again.body), BODY);

  const plain = await get(`${asked.url}${path}`);
  t.equal(plain.headers['content-encoding'], undefined);
  t.same(plain.body, BODY, 'a client without gzip: the origin\'s bytes');
  const range = await get(`${asked.url}${path}`, { ...GZIP, range: 'bytes=10-19' });
  t.equal(range.code, 206);
  t.equal(range.headers['content-encoding'], undefined);
  t.same(range.body, BODY.subarray(10, 20), 'a Range of a gzip client: the origin\'s bytes');
  const ownerRange = await get(`${owner.url}${path}`, { ...GZIP, range: 'bytes=10-19' });
  t.match(String(ownerRange.headers['cache-status']), /^sidecache; hit/);
  t.same(ownerRange.body, BODY.subarray(10, 20), 'at the owner too, from its stored copy');
});

t.test('cluster compress - a replica makes its own gzip form of the fill', async (t) => {
  const { sidecars } = await startCluster(2, { natsUrls: nats.urls, upstream: origin.url, env: { SIDECACHE_COMPRESS: 'true' } });
  t.teardown(() => Promise.all(sidecars.map((s) => s.stop())));
  const [primary, replica] = sidecars as [typeof sidecars[0], typeof sidecars[0]];
  // A key `primary` is the primary of (it fetched it itself): the other one is its replica.
  let path = '';
  let probed = 0;
  for (let k = 0; k < 64 && path === ''; k++, probed++) if ((await get(`${primary.url}/z/fill-${k}`)).hops === 1) path = `/z/fill-${k}`;
  t.not(path, '', 'a key the first sidecar fetched itself');
  const before = origin.count(path);
  // Asked before the fill is there, it would forward and keep the owner's answer as a hot copy.
  // With two members each holds every key: the keys probed before `path` are the replica's own
  // (it fetched them for the forwarded requests), so it holds all of them once the fill is in.
  await waitFor(async () => (await clusterInfo(replica)).entries === probed, 10_000, 'the fill at the replica');
  await waitFor(async () => {
    const r = await get(`${replica.url}${path}`, GZIP);
    return r.hops === 1 && r.headers['content-encoding'] === 'gzip' && /detail="replica"/.test(String(r.headers['cache-status']));
  }, 10_000, 'the replica serving its own gzip form');
  const gz = await get(`${replica.url}${path}`, GZIP);
  t.match(String(gz.headers['cache-status']), /^sidecache; hit; .*detail="replica"/, 'a hit on the replica\'s copy, from the fill');
  t.same(gunzipSync(gz.body), BODY);
  t.equal(origin.count(path), before, 'from the fill: no origin fetch');
});
