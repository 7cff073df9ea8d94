// Write invalidations that the log cannot take at once, on real processes: a sidecar cut off
// from NATS keeps a POST's invalidation and logs it once NATS is back, so the other members
// stop serving the written URI; a FILLS purge after a purge-all that fails is tried again.
import t from 'tap';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { clusterEnv, clusterInfo, uniqueCluster, waitForRing } from '../../support/cluster.js';
import { startNats } from '../../support/nats-server.js';
import { startOrigin } from '../../support/origin.js';
import { startTcpGate } from '../../support/tcp-gate.js';
import { purge, startSidecar, waitFor, type SidecarProcess } from '../../support/sidecar.js';
import { logNames } from '../../src/log/subjects.js';

const nats = await startNats({ nodes: 1 });
t.teardown(() => nats.stop());
const natsPort = Number(new URL(nats.urls[0]!).port);

let version = 1;
const origin = await startOrigin({
  '/w/*': (req, res) => {
    if (req.method === 'POST') {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('written');
      return;
    }
    res.writeHead(200, { 'cache-control': 'public, max-age=300', 'content-type': 'text/plain' });
    res.end(`${req.url} v${version}`);
  },
});
t.teardown(() => origin.close());

async function bodyAt(sc: SidecarProcess, path: string): Promise<string> {
  return (await fetch(sc.url + path)).text();
}

async function metric(sc: SidecarProcess, name: string): Promise<number> {
  const text = await (await fetch(`${sc.adminUrl}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

t.test('writes - an invalidation the log could not take is kept and reaches the other members once NATS is back', async (t) => {
  const gate = await startTcpGate(natsPort);
  t.teardown(() => gate.close());
  const cluster = uniqueCluster('w');
  const writer = await startSidecar({ env: clusterEnv({ natsUrls: [gate.url('nats')], upstream: origin.url }, cluster) });
  const other = await startSidecar({ env: clusterEnv({ natsUrls: nats.urls, upstream: origin.url }, cluster) });
  t.teardown(() => Promise.all([writer.kill(), other.kill()]));
  await waitForRing([writer, other], 2);
  const old = version;
  t.equal(await bodyAt(other, '/w/a'), `/w/a v${old}`);
  t.equal(await bodyAt(writer, '/w/a'), `/w/a v${old}`);
  await waitFor(async () => (await clusterInfo(other)).entries >= 1, 10_000, 'the other member to hold /w/a');

  // The writer's link to NATS stops moving bytes: its publishes time out.
  gate.hold();
  version++;
  const post = await fetch(`${writer.url}/w/a`, { method: 'POST', body: 'x' });
  t.equal(post.status, 200);
  await post.text();
  await waitFor(() => /invalidation after a write could not reach the log/.test(writer.output()), 30_000, 'the writer to give up publishing');
  t.equal(await bodyAt(other, '/w/a'), `/w/a v${old}`, 'the other member has not heard of the write');
  // What the held link carried is lost (as a network that dropped it), then NATS is back.
  gate.cut();
  gate.release();
  await waitFor(async () => (await bodyAt(other, '/w/a')) === `/w/a v${version}`, 30_000, 'the other member to drop /w/a');
  t.pass('the write invalidation reached the other member');
  await waitFor(async () => (await metric(writer, 'sidecache_write_invalidations_pending')) === 0, 10_000, 'the queue to empty');
});

t.test('purge-all - a FILLS purge that fails is tried again until FILLS holds none of the purged fills', async (t) => {
  const gate = await startTcpGate(natsPort);
  t.teardown(() => gate.close());
  const cluster = uniqueCluster('w');
  const fillsStream = logNames(cluster).fillsStream;
  const a = await startSidecar({ env: clusterEnv({ natsUrls: [gate.url('nats')], upstream: origin.url }, cluster) });
  t.teardown(() => a.kill());
  const nc = await connect({ servers: [...nats.urls] });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  t.equal(await bodyAt(a, '/w/p'), `/w/p v${version}`);
  await waitFor(async () => (await jsm.streams.info(fillsStream)).state.messages === 1, 10_000, 'the fill in FILLS');
  // The purge of FILLS never reaches the server: its request is lost with the connection.
  const lost = gate.holdWhenSent(`$JS.API.STREAM.PURGE.${fillsStream}`);
  const purged = purge(a, { all: true });
  await lost;
  gate.cut();
  gate.release();
  const r = await purged;
  t.equal(r.status, 200, 'the purge-all itself was logged and applied');
  await waitFor(async () => (await jsm.streams.info(fillsStream)).state.messages === 0, 30_000, 'FILLS to be emptied');
  t.pass('FILLS emptied after the failed purge');
});
