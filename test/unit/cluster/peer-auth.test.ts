import t from 'tap';
import { PeerVerifier, signRequest } from '../../../src/cluster/peer-auth.js';

const SECRET = 'unit-secret-0123456789';
const id = { cluster: 'c1', from: 'n1', epoch: 4 };
const now = 1_700_000_000_000;

t.test('peer auth - a signed request verifies once, with its identity', async (t) => {
  const v = new PeerVerifier(SECRET, 'c1');
  const h = signRequest(SECRET, id, 'GET', '/a?b', now);
  const first = v.verify(h, 'GET', '/a?b', now + 10);
  t.same(first, { ok: true, identity: id });
  t.match(v.verify(h, 'GET', '/a?b', now + 20), { ok: false, status: 401, reason: /replayed/ });
});

t.test('peer auth - every change to what was signed is refused', async (t) => {
  const v = new PeerVerifier(SECRET, 'c1');
  const h = signRequest(SECRET, id, 'GET', '/a', now);
  t.match(v.verify(h, 'GET', '/b', now), { ok: false, status: 401 }, 'another target');
  t.match(v.verify(h, 'HEAD', '/a', now), { ok: false, status: 401 }, 'another method');
  t.match(v.verify({ ...h, 'x-sidecache-epoch': '5' }, 'GET', '/a', now), { ok: false, status: 401 }, 'another epoch');
  t.match(v.verify({ ...h, 'x-sidecache-from': 'n2' }, 'GET', '/a', now), { ok: false, status: 401 }, 'another sender');
  t.match(v.verify(signRequest('other-secret-0123456789', id, 'GET', '/a', now), 'GET', '/a', now), { ok: false, status: 401 }, 'another secret');
  t.match(v.verify({}, 'GET', '/a', now), { ok: false, status: 401, reason: /unsigned/ });
  t.match(v.verify(signRequest(SECRET, { ...id, cluster: 'c2' }, 'GET', '/a', now), 'GET', '/a', now), { ok: false, status: 403 });
  t.match(v.verify(signRequest(SECRET, id, 'GET', '/a', now - 60_000), 'GET', '/a', now), { ok: false, status: 401, reason: /window/ });
});

t.test('peer auth - nonces are forgotten once their window has passed, and replays stay refused until then', async (t) => {
  const v = new PeerVerifier(SECRET, 'c1');
  const early = signRequest(SECRET, id, 'GET', '/k', now);
  t.ok(v.verify(early, 'GET', '/k', now).ok);
  // 20,000 requests spread over the next 20 s: all remembered (their window is still open).
  let refused = 0;
  for (let i = 1; i <= 20_000; i++) {
    const at = now + i;
    if (!v.verify(signRequest(SECRET, id, 'GET', `/k${i}`, at), 'GET', `/k${i}`, at).ok) refused++;
  }
  t.equal(refused, 0);
  t.equal(v.remembered, 20_001);
  t.match(v.verify(early, 'GET', '/k', now + 29_000), { ok: false, reason: /replayed/ }, 'a replay inside the window is refused');
  // A request at +45 s sweeps what has expired; then the clock steps back 30 s: the early
  // request's timestamp is inside the window again, and its nonce must still be remembered.
  t.ok(v.verify(signRequest(SECRET, id, 'GET', '/at45', now + 45_000), 'GET', '/at45', now + 45_000).ok);
  t.match(v.verify(early, 'GET', '/k', now + 15_000), { ok: false, reason: /replayed/ }, 'a replay after the clock stepped back is refused');
  // Twice the window later (a clock stepped back stays covered) the first ones are swept out.
  const later = now + 60_000 + 10_001;
  t.ok(v.verify(signRequest(SECRET, id, 'GET', '/late', later), 'GET', '/late', later).ok);
  t.equal(v.remembered, 10_002, "swept: the 10,001 older than twice the window are gone");
  t.match(v.verify(early, 'GET', '/k', later), { ok: false, reason: /window/ }, 'the forgotten request is refused by its timestamp');
});

t.test('peer auth - every refusal has a code from a fixed set, whatever the sender claims', async (t) => {
  const v = new PeerVerifier(SECRET, 'c1');
  const h = signRequest(SECRET, id, 'GET', '/a', now);
  const codes = [
    v.verify({}, 'GET', '/a', now),
    v.verify(signRequest(SECRET, { ...id, cluster: `forged-${'z'.repeat(500)}` }, 'GET', '/a', now), 'GET', '/a', now),
    v.verify(signRequest(SECRET, id, 'GET', '/a', now - 60_000), 'GET', '/a', now),
    v.verify(signRequest('other-secret-0123456789', id, 'GET', '/a', now), 'GET', '/a', now),
    v.verify(h, 'GET', '/a', now),
    v.verify(h, 'GET', '/a', now),
  ].map((r) => (r.ok ? 'ok' : r.code));
  t.same(codes, ['missing', 'wrong-cluster', 'stale', 'bad-signature', 'ok', 'replay']);
  const other = v.verify(signRequest(SECRET, { ...id, cluster: 'forged-name' }, 'GET', '/a', now), 'GET', '/a', now);
  t.notOk(!other.ok && other.reason.includes('forged-name'), 'the claimed cluster is not echoed in the reason');
});
