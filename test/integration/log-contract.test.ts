// The InvalidationLog contract, run against every implementation: MemoryLog in-process, and
// NatsLog against a real nats-server (one single-node server per case, so that a case may stop
// it). What the cache relies on: each invalidation applied once, in seq order; appliedSeq,
// waitApplied and catchUp agree with what was applied; an unreachable log refuses appends.

import t, { type Test } from 'tap';
import { pino } from 'pino';
import { startNats } from '../../support/nats-server.js';
import { MemoryLog } from '../../src/log/memory-log.js';
import { NatsLog } from '../../src/log/nats-log.js';
import { SidecacheError } from '../../src/core/errors.js';
import type { InvalidationHandlers, InvalidationLog } from '../../src/log/types.js';
import type { Invalidation } from '../../src/core/types.js';


interface Subject {
  readonly log: InvalidationLog;
  /** The member id that acknowledges for this log. */
  readonly id: string;
  /** Make the log unreachable. Absent: an in-process log cannot be. */
  readonly cutOff?: () => Promise<void>;
}

interface Recorded {
  readonly applied: { seq: number; inval: Invalidation }[];
  readonly horizons: number[];
  readonly gaps: { from: number; to: number }[];
  readonly attached: boolean[];
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function started(log: InvalidationLog): Promise<Recorded> {
  const r: Recorded = { applied: [], horizons: [], gaps: [], attached: [] };
  const handlers: InvalidationHandlers = {
    invalidation: (seq, inval) => { r.applied.push({ seq, inval }); },
    horizon: (seq) => { r.horizons.push(seq); },
    gap: (_reason, from, to) => { r.gaps.push({ from, to }); },
    attached: (on) => { r.attached.push(on); },
  };
  await log.start(handlers);
  return r;
}

const INVALS: readonly Invalidation[] = [
  { kind: 'url', keys: ['GET http://app/a', 'GET http://app/b'] },
  { kind: 'prefix', prefix: 'GET http://app/p/' },
  { kind: 'tags', tags: ['t1', 't2'], soft: true },
  { kind: 'all' },
];

function invalidationLogContract(t: Test, name: string, make: (t: Test) => Promise<Subject>): void {
  t.test(`${name} - invalidations are applied once each, in increasing seq order, and appliedSeq follows`, async (t) => {
    const { log } = await make(t);
    const r = await started(log);
    t.equal(r.horizons.length, 1, 'horizon once, at start');
    t.equal(r.applied.length, 0, 'no invalidation before any was appended');
    const base = log.appliedSeq;
    t.equal(r.horizons[0], base, 'the horizon is where the log starts applying');
    const seqs: number[] = [];
    for (const inval of INVALS) seqs.push(await log.invalidate(inval));
    // Concurrent appends too: each gets its own seq, none is applied twice.
    seqs.push(...(await Promise.all(INVALS.map((inval) => log.invalidate(inval)))));
    const last = Math.max(...seqs);
    await waitFor('every append applied', () => log.appliedSeq >= last);
    t.equal(new Set(seqs).size, seqs.length, 'a seq per append');
    t.same([...seqs].sort((a, b) => a - b), Array.from({ length: seqs.length }, (_, i) => base + 1 + i), 'seqs are contiguous after the start');
    t.same(r.applied.map((a) => a.seq), [...seqs].sort((a, b) => a - b), 'handlers.invalidation once per seq, in increasing order');
    t.same(r.applied.slice(0, INVALS.length).map((a) => a.inval), INVALS, 'each as appended');
    t.equal(log.appliedSeq, last, 'appliedSeq is the last seq applied');
    t.same(r.gaps, [], 'no gap');
    t.equal(log.behindMs(), 0, 'nothing known and not applied');
  });

  t.test(`${name} - waitApplied resolves with this member acknowledged; catchUp resolves once applied`, async (t) => {
    const { log, id } = await make(t);
    await started(log);
    const seq = await log.invalidate({ kind: 'url', keys: ['GET http://app/x'] });
    const acks = await log.waitApplied(seq, 10_000);
    t.same(acks, { acknowledged: [id], missing: [] }, 'this member acknowledged, none missing');
    t.ok(log.appliedSeq >= seq, 'applied by then');
    const caughtUp = await log.catchUp();
    t.ok(caughtUp >= seq, `catchUp names the log's last seq (${caughtUp})`);
    t.ok(log.appliedSeq >= caughtUp, 'and has applied it');
  });

  t.test(`${name} - invalidate rejects with SC_ERR_LOG when the log is unreachable`, async (t) => {
    const { log, cutOff } = await make(t);
    const r = await started(log);
    t.ok(log.attached, 'attached after start');
    if (cutOff === undefined) {
      t.comment(`${name} is in-process: it cannot be unreachable`);
      t.same(r.attached, [true], 'attached(true) at start');
      return;
    }
    await log.invalidate({ kind: 'all' });
    await cutOff();
    await waitFor('detached', () => !log.attached);
    const err = await log.invalidate({ kind: 'all' }).then(() => undefined, (e: unknown) => e);
    t.ok(err instanceof SidecacheError, 'invalidate rejects');
    t.match(err, { code: 'SC_ERR_LOG' });
  });
}

const logger = pino({ level: process.env.SIDECACHE_TEST_LOG ?? 'silent' });
let counter = 0;

invalidationLogContract(t, 'MemoryLog', async () => ({ log: new MemoryLog('solo'), id: 'solo' }));

invalidationLogContract(t, 'NatsLog', async (t) => {
  const server = await startNats({ nodes: 1 });
  const id = `m${++counter}`;
  const log = new NatsLog({
    servers: server.urls,
    cluster: `contract_${process.pid}_${counter}`,
    self: { id, peerUrl: `http://127.0.0.1:1/${id}`, partitions: 16 },
    heartbeatIntervalMs: 200,
    heartbeatTtlMs: 30_000,
    invalMaxAgeMs: 60_000,
    fillsMaxBytes: 1024 * 1024,
    fillsMaxAgeMs: 60_000,
    fillMaxInFlight: 16,
    logger,
  });
  // The log first, so that its close need not wait on a stopped server.
  t.teardown(async () => {
    await log.close();
    await server.stop();
  });
  return { log, id, cutOff: () => server.stopNode(0) };
});
