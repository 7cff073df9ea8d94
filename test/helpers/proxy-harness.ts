// The request path in-process: a ProxyHandler over a real Cache, driven with plain request and
// response objects, a fake origin (the Origin seam) and a clock the test moves by hand.
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pino } from 'pino';
import type { Clock } from '../../src/core/clock.js';
import { loadConfig } from '../../src/core/config.js';
import { Metrics } from '../../src/core/metrics.js';
import type { Invalidation, LogPosition } from '../../src/core/types.js';
import { SingleNode } from '../../src/cluster/cluster.js';
import { Invalidator } from '../../src/cluster/invalidator.js';
import { Flights } from '../../src/proxy/flight.js';
import { ProxyHandler } from '../../src/proxy/handler.js';
import type { BodyControl, Origin, OriginRequest, OriginSink } from '../../src/proxy/origin.js';
import { NoPeers, type Router } from '../../src/proxy/route.js';
import type { Entry } from '../../src/store/types.js';
import { Cache } from '../../src/store/cache.js';

export class FakeClock implements Clock {
  constructor(public t = Date.UTC(2026, 0, 1)) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

export interface Reply {
  readonly status: number;
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
}

/** What the fake origin answers a request with: a reply, an error (no response), or either later. */
export type Answer = (r: OriginRequest, n: number) => Reply | Error | Promise<Reply | Error>;

/** An origin that counts what it is asked and answers as the test says, never synchronously. */
export class FakeOrigin implements Origin {
  readonly requests: OriginRequest[] = [];
  answer: Answer = () => ({ status: 200, body: 'ok' });

  dispatch(r: OriginRequest, sink: OriginSink): BodyControl {
    this.requests.push(r);
    let destroyed = false;
    const control: BodyControl = { pause() {}, resume() {}, destroy() { destroyed = true; } };
    void Promise.resolve()
      .then(() => this.answer(r, this.requests.length))
      .then((reply) => {
        if (destroyed) return;
        if (reply instanceof Error) {
          sink.onError(reply);
          return;
        }
        const body = Buffer.from(reply.body ?? '');
        sink.onHead(reply.status, { 'content-length': String(body.length), ...reply.headers }, control);
        if (body.length > 0 && !destroyed) sink.onData(body);
        if (!destroyed) sink.onEnd();
      });
    return control;
  }
}

export interface Answered {
  readonly status: number;
  /** Field names lower-case; repeated fields joined with ", ". */
  readonly headers: Record<string, string>;
  readonly body: string;
  /** The body as sent (bytes that are not UTF-8, such as gzip). */
  readonly bytes: Buffer;
}

/** A response object with what node:http's ServerResponse offers the handler. 'close' comes
 *  after 'finish', on a later turn, as node:http emits it. */
class FakeResponse extends EventEmitter {
  status = 0;
  raw: string[] = [];
  readonly chunks: Buffer[] = [];
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  shouldKeepAlive = true;

  writeHead(status: number, headers: readonly string[]): this {
    this.status = status;
    this.raw = [...headers];
    this.headersSent = true;
    return this;
  }

  write(chunk: Buffer | string): boolean {
    this.chunks.push(Buffer.from(chunk));
    return true;
  }

  end(chunk?: Buffer | string): this {
    if (chunk !== undefined) this.chunks.push(Buffer.from(chunk));
    this.writableEnded = true;
    this.writableFinished = true;
    this.emit('finish');
    setImmediate(() => this.emit('close'));
    return this;
  }

  destroy(): this {
    this.destroyed = true;
    this.emit('finish');
    setImmediate(() => this.emit('close'));
    return this;
  }

  writeProcessing(): void {}
  writeEarlyHints(): void {}
}

export interface Harness {
  readonly handler: ProxyHandler;
  readonly origin: FakeOrigin;
  readonly clock: FakeClock;
  readonly cache: Cache;
  readonly published: Invalidation[];
  /** The log position the handler reads: a test moves appliedSeq to fence later fetches. */
  readonly log: { incarnation: string; appliedSeq: number; readonly view: LogPosition['view'] };
  /** A GET (or `method`) through the handler, answered when its response ends. */
  get(path: string, headers?: Record<string, string>, method?: string): Promise<Answered>;
}

export interface HarnessOptions {
  /** The sidecar may not trust its cache (detached, lease lapsed, drained). */
  readonly mustRevalidateAll?: () => boolean;
  /** Who fetches a key (default: this sidecar, NoPeers). */
  readonly router?: Router;
  /** Told of every entry stored here as its owner (cluster replication). */
  readonly onStored?: (entry: Entry) => void;
}

export function harness(env: Record<string, string> = {}, opts: HarnessOptions = {}): Harness {
  const config = loadConfig({ SIDECACHE_UPSTREAM: 'http://origin.test', SIDECACHE_ADMIN_TOKEN: '', ...env });
  const clock = new FakeClock();
  const origin = new FakeOrigin();
  const cache = new Cache({ maxBytes: 16 * 1024 * 1024, hotMaxBytes: 1024 * 1024, clock });
  const metrics = new Metrics({
    bytes: () => cache.main.stats.bytes, entries: () => cache.main.stats.entries, hotBytes: () => 0, appliedSeq: () => 0,
    epoch: () => 0, members: () => 1, partitionsOwned: () => 0, attached: () => 1,
    fills: () => ({ published: 0, dropped: 0, undecodable: 0 }),
  });
  const published: Invalidation[] = [];
  const flights = new Flights();
  const log: Harness['log'] = { incarnation: '', appliedSeq: 0, view: { epoch: 0, members: [] } };
  const handler = new ProxyHandler({
    config,
    cache,
    origin,
    log,
    router: opts.router ?? NoPeers,
    metrics,
    logger: pino({ level: 'silent' }),
    writeQueue: { submit: (inval) => published.push(inval) },
    flights,
    invalidator: new Invalidator({ cache, flights, cluster: new SingleNode(config.partitions), metrics, logger: pino({ level: 'silent' }) }),
    ...(opts.mustRevalidateAll === undefined ? {} : { mustRevalidateAll: opts.mustRevalidateAll }),
    ...(opts.onStored === undefined ? {} : { onStored: opts.onStored }),
  });
  const get = (path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answered> => {
    const h: Record<string, string> = { host: 'sidecache.test', ...headers };
    const rawHeaders: string[] = [];
    for (const [k, v] of Object.entries(h)) rawHeaders.push(k, v);
    const req = Object.assign(new EventEmitter(), {
      url: path, method, headers: h, rawHeaders, httpVersion: '1.1', httpVersionMajor: 1, httpVersionMinor: 1, complete: true,
      socket: { remoteAddress: '127.0.0.1', writableEnded: false, end() {} },
      resume() {},
    }) as unknown as IncomingMessage;
    const res = new FakeResponse();
    const done = new Promise<Answered>((resolve) => {
      res.once('finish', () => {
        const out: Record<string, string> = {};
        for (let i = 0; i < res.raw.length; i += 2) {
          const name = res.raw[i]!.toLowerCase();
          out[name] = out[name] === undefined ? res.raw[i + 1]! : `${out[name]}, ${res.raw[i + 1]!}`;
        }
        const bytes = Buffer.concat(res.chunks);
        resolve({ status: res.status, headers: out, body: bytes.toString(), bytes });
      });
    });
    handler.handle(req, res as unknown as ServerResponse);
    return done;
  };
  return { handler, origin, clock, cache, published, log, get };
}

/** A promise and the function that resolves it: an origin answer the test releases by hand. */
export function gate<T>(): { promise: Promise<T>; open: (v: T) => void } {
  let open!: (v: T) => void;
  const promise = new Promise<T>((resolve) => { open = resolve; });
  return { promise, open };
}

/** Lets pending promise callbacks and immediates run (the fake origin answers on a later turn). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
