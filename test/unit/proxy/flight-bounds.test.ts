// The single-flight table under any interleaving of starts, ends, abandons and
// invalidations: it never holds more than the fetches in flight (one per key at most), and
// it is empty once they are over.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import t from 'tap';
import { Flights, type Flight, type FlightHead } from '../../../src/proxy/flight.js';

const FENCE = { incarnation: '', seq: 0 };
const HEAD: FlightHead = { status: 200, headers: [], shareable: true, varyNames: null, varyValues: [], tags: [], initialAgeSec: 0, receivedAt: 0, fence: FENCE };
const body = () => ({ pause() {}, resume() {}, destroy() {} });

const op = fc.oneof(
  fc.record({ kind: fc.constant('start' as const), key: fc.nat({ max: 20 }), collapse: fc.boolean() }),
  fc.record({ kind: fc.constant('finish' as const), pick: fc.nat() }),
  // The body outgrew what may be stored and nobody is listening: the flight abandons itself.
  fc.record({ kind: fc.constant('abandon' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('invalidate' as const), key: fc.nat({ max: 20 }) }),
);

t.test('flight bounds - the table holds at most the flights in progress, one per key, and empties when they end', async () => {
  fc.assert(fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
    const table = new Flights();
    const live: Flight[] = [];
    for (const o of ops) {
      switch (o.kind) {
        case 'start': {
          const f = table.start(`k${o.key}`, FENCE, 0, o.collapse);
          f.setHead(HEAD, body());
          live.push(f);
          break;
        }
        case 'finish': {
          if (live.length === 0) break;
          const [f] = live.splice(o.pick % live.length, 1);
          f!.end();
          table.finish(f!);
          break;
        }
        case 'abandon': {
          if (live.length === 0) break;
          const [f] = live.splice(o.pick % live.length, 1);
          f!.chunk(Buffer.alloc(16), 8);
          assert.ok(f!.abandoned);
          break;
        }
        case 'invalidate':
          table.invalidate((f) => f.key === `k${o.key}`);
          break;
      }
      assert.ok(table.size <= live.length, `${table.size} in the table, ${live.length} in flight`);
      assert.ok(table.size <= new Set(live.map((f) => f.key)).size);
    }
    for (const f of live.splice(0)) { f.end(); table.finish(f); }
    assert.equal(table.size, 0, 'nothing left once every flight ended');
  }), { numRuns: 2000 });
});

t.test('flight bounds - 100,000 fetches of distinct keys, each ended or abandoned: the table ends empty', async (t) => {
  const table = new Flights();
  let peak = 0;
  const open: Flight[] = [];
  for (let i = 0; i < 100_000; i++) {
    const f = table.start(`http://origin.test/${i}`, FENCE, 0);
    f.setHead(HEAD, body());
    open.push(f);
    if (open.length >= 64) {
      for (const [j, g] of open.splice(0).entries()) {
        if (j % 2 === 0) { g.end(); table.finish(g); } else g.chunk(Buffer.alloc(16), 8);
      }
    }
    peak = Math.max(peak, table.size);
  }
  for (const g of open.splice(0)) { g.end(); table.finish(g); }
  t.ok(peak <= 64, `at most ${peak} in the table with at most 64 in flight`);
  t.equal(table.size, 0);
});
