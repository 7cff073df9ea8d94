// NatsLog members for the log-nats-*.test.ts files: each member records what its handlers
// were given, and every member a file started is closed at the end of the file.

import { pino } from 'pino';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { NatsLog, type NatsLogOptions } from '../../src/log/nats-log.js';
import type { FillRecord, LogHandlers } from '../../src/log/types.js';
import type { Invalidation, View } from '../../src/core/types.js';

const logger = pino({ level: process.env.SIDECACHE_TEST_LOG ?? 'silent' });

let clusterCounter = 0;
export function uniqueCluster(): string {
  return `t${process.pid}_${++clusterCounter}_${Math.random().toString(36).slice(2, 6)}`;
}

export type Event =
  | { type: 'inval'; seq: number; inval: Invalidation }
  | { type: 'gap'; reason: string; from: number; to: number }
  | { type: 'attached'; attached: boolean };

export interface Member {
  readonly log: NatsLog;
  readonly id: string;
  readonly events: Event[];
  readonly fills: { record: FillRecord; seq: number }[];
  readonly views: View[];
  invals(): { seq: number; inval: Invalidation }[];
  gaps(): { reason: string; from: number; to: number }[];
}

function memberOptions(cluster: string, id: string, over: Partial<NatsLogOptions>, servers: readonly string[]): NatsLogOptions {
  return {
    servers,
    cluster,
    self: { id, peerUrl: `http://127.0.0.1:1/${id}`, partitions: 256 },
    heartbeatIntervalMs: 200,
    heartbeatTtlMs: 30_000,
    invalMaxAgeMs: 60_000,
    fillsMaxBytes: 64 * 1024 * 1024,
    fillsMaxAgeMs: 60_000,
    fillMaxInFlight: 256,
    gapCheckIntervalMs: 500,
    logger: logger.child({ member: id }),
    ...over,
  };
}

/** startMember and admin for one test file, against `defaultServers` unless told otherwise. */
export function natsLogMembers(file: { teardown(fn: () => unknown): void }, defaultServers: readonly string[]) {
  const open: NatsLog[] = [];
  file.teardown(async () => {
    await Promise.all(open.map((l) => l.close()));
  });

  async function startMember(
    t: { teardown(fn: () => unknown): void },
    cluster: string,
    id: string,
    over: Partial<NatsLogOptions> = {},
    servers: readonly string[] = defaultServers,
  ): Promise<Member> {
    const events: Event[] = [];
    const fills: { record: FillRecord; seq: number }[] = [];
    const views: View[] = [];
    const handlers: LogHandlers = {
      invalidation: (seq, inval) => events.push({ type: 'inval', seq, inval }),
      fill: (record, seq) => fills.push({ record, seq }),
      horizon: () => undefined,
      gap: (reason, from, to) => events.push({ type: 'gap', reason, from, to }),
      view: (view) => views.push(view),
      attached: (attached) => events.push({ type: 'attached', attached }),
    };
    const log = new NatsLog(memberOptions(cluster, id, over, servers));
    open.push(log);
    t.teardown(() => log.close());
    await log.start(handlers);
    return {
      log,
      id,
      events,
      fills,
      views,
      invals: () => events.flatMap((e) => (e.type === 'inval' ? [{ seq: e.seq, inval: e.inval }] : [])),
      gaps: () => events.flatMap((e) => (e.type === 'gap' ? [{ reason: e.reason, from: e.from, to: e.to }] : [])),
    };
  }

  async function admin(t: { teardown(fn: () => unknown): void }, servers: readonly string[] = defaultServers): Promise<NatsConnection> {
    const nc = await connect({ servers: [...servers] });
    t.teardown(() => nc.close());
    return nc;
  }

  return { startMember, admin };
}

export async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
