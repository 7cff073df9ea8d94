// The peer client with the peer port on TLS: a member that advertises a plain http URL is
// sent nothing; it is treated as unreachable (breaker open, the reason in the error).
import t from 'tap';
import { PeerClient } from '../../../src/cluster/peers.js';

const TLS = { ca: 'unused', cert: 'unused', key: 'unused', serverName: undefined };

t.test('peers - with TLS on, an http peer is never sent a request: its breaker opens and the error says why', async (t) => {
  const client = new PeerClient({
    secret: 's'.repeat(16), cluster: 'c', self: 'a', acceptTimeoutMs: 1_000, headersTimeoutMs: 1_000, bodyTimeoutMs: 1_000,
    epoch: () => 1, tls: TLS,
  });
  t.teardown(() => client.close());
  client.update([
    { id: 'a', peerUrl: 'https://127.0.0.1:1', state: 'active', partitions: 4 },
    { id: 'b', peerUrl: 'http://127.0.0.1:9', state: 'active', partitions: 4 },
  ]);
  t.equal(client.isAvailable('b'), true, 'known and not yet tried');
  await t.rejects(client.forward('b', { origin: 'http://o', path: '/x', method: 'GET', headers: {} }), /peer b advertises http:\/\/127\.0\.0\.1:9: not https, and the peer port is on TLS/);
  t.equal(client.isAvailable('b'), false, 'its breaker is open: the next owner is asked');
});
