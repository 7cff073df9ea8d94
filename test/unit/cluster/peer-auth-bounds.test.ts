// The nonce map of peer authentication under a flood, on a fake clock: it holds at most the
// requests accepted in the last 3 x MAX_SKEW_MS (a timestamp may lead the clock by the skew,
// and a nonce is kept for twice the skew past its timestamp); refused requests add nothing.
import fc from 'fast-check';
import assert from 'node:assert/strict';
import t from 'tap';
import { MAX_SKEW_MS, PeerVerifier, signRequest } from '../../../src/cluster/peer-auth.js';

const SECRET = 'unit-secret-0123456789';
const id = { cluster: 'c1', from: 'n1', epoch: 4 };
const T0 = 1_700_000_000_000;

t.test('peer auth bounds - a flood of distinct nonces: the map never outgrows the requests of the window', async (t) => {
  const v = new PeerVerifier(SECRET, 'c1');
  const PER_SEC = 200;
  const SECONDS = 10 * 60;
  let peak = 0;
  for (let s = 0; s < SECONDS; s++) {
    for (let i = 0; i < PER_SEC; i++) {
      const now = T0 + s * 1000 + i * (1000 / PER_SEC);
      const r = v.verify(signRequest(SECRET, id, 'GET', `/k/${s}/${i}`, now), 'GET', `/k/${s}/${i}`, now);
      if (!r.ok) { t.fail(`refused at ${s}s: ${r.reason}`); return; }
    }
    peak = Math.max(peak, v.remembered);
  }
  const bound = PER_SEC * (2 * MAX_SKEW_MS / 1000 + 1);
  t.comment(`${PER_SEC * SECONDS} requests over ${SECONDS} s at ${PER_SEC}/s: at most ${peak} nonces held (bound ${bound})`);
  t.ok(peak <= bound, `peak ${peak} <= ${bound}`);
  t.ok(peak >= PER_SEC * 2 * MAX_SKEW_MS / 1000 - PER_SEC, 'replays inside the window stay detectable');
  // A quiet period: the next request sweeps everything whose window has passed.
  const later = T0 + SECONDS * 1000 + 3 * MAX_SKEW_MS;
  t.ok(v.verify(signRequest(SECRET, id, 'GET', '/late', later), 'GET', '/late', later).ok);
  t.equal(v.remembered, 1, 'after a quiet window only the last nonce is held');
});

t.test('peer auth bounds - timestamps anywhere in the window, out of order: held nonces are those accepted in the last 3 x skew', async () => {
  fc.assert(fc.property(
    fc.array(fc.record({ step: fc.nat({ max: 2000 }), lead: fc.integer({ min: -MAX_SKEW_MS, max: MAX_SKEW_MS }) }), { minLength: 1, maxLength: 400 }),
    (reqs) => {
      const v = new PeerVerifier(SECRET, 'c1');
      let now = T0;
      const accepted: number[] = [];
      for (const [i, r] of reqs.entries()) {
        now += r.step;
        const h = signRequest(SECRET, id, 'GET', `/r/${i}`, now + r.lead);
        if (v.verify(h, 'GET', `/r/${i}`, now).ok) accepted.push(now);
        const recent = accepted.filter((at) => at > now - 3 * MAX_SKEW_MS).length;
        assert.ok(v.remembered <= recent, `${v.remembered} held, ${recent} accepted in the last 3 x skew`);
      }
    },
  ), { numRuns: 300 });
});

t.test('peer auth bounds - unsigned, wrongly signed, stale and replayed requests add no nonce', async (t) => {
  const v = new PeerVerifier(SECRET, 'c1');
  const good = signRequest(SECRET, id, 'GET', '/a', T0);
  t.ok(v.verify(good, 'GET', '/a', T0).ok);
  for (let i = 0; i < 10_000; i++) {
    const forged = { ...signRequest('not-the-secret-0123456', id, 'GET', '/a', T0), 'x-sidecache-nonce': `forged-${i}` };
    v.verify(forged, 'GET', '/a', T0);
    v.verify({ ...good, 'x-sidecache-nonce': `other-${i}` }, 'GET', '/a', T0);
    v.verify(signRequest(SECRET, id, 'GET', '/a', T0 - 2 * MAX_SKEW_MS), 'GET', '/a', T0);
    v.verify(good, 'GET', '/a', T0);
  }
  t.equal(v.remembered, 1, 'only the one accepted request is remembered');
});
