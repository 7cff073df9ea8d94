// Write invalidations (RFC 9111 §4.4) on their way to the log. One the log cannot take now
// (NATS unreachable, no stream leader past the publish retries) waits here and is published
// when the log takes invalidations again; it is never dropped (DESIGN: invalidations are
// never dropped). The sidecar that saw the write has already removed the keys locally.
import type { Logger } from 'pino';
import { originPrefixOf } from '../proxy/write-invalidations.js';
import type { InvalidationLog } from '../log/types.js';
import type { Invalidation } from '../core/types.js';

/** Characters of queued keys before the queue coalesces (2 bytes each in memory). */
export const WRITE_QUEUE_MAX_CHARS = 1 << 20;
/** How often a waiting queue tries the log again. */
const RETRY_MS = 1_000;
/** How often a stopping sidecar tries the log again within its shutdown time. */
const SETTLE_RETRY_MS = 100;

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface WriteQueueOptions {
  readonly log: Pick<InvalidationLog, 'invalidate'>;
  readonly logger: Logger;
  /** Bound on the characters of queued keys and prefixes; default WRITE_QUEUE_MAX_CHARS. */
  readonly maxChars?: number;
  /** `n` queued write invalidations were folded into coarser ones to stay within the bound. */
  readonly onCoalesced?: (n: number) => void;
}

function charsOf(inval: Invalidation): number {
  switch (inval.kind) {
    case 'url': {
      let n = 0;
      for (const k of inval.keys) n += k.length;
      return n;
    }
    case 'prefix':
      return inval.prefix.length;
    case 'tags':
      return inval.tags.reduce((n, t) => n + t.length, 0);
    case 'all':
      return 0;
  }
}

export class WriteQueue {
  readonly #o: WriteQueueOptions;
  readonly #maxChars: number;
  #queue: Invalidation[] = [];
  #chars = 0;
  #flushing = false;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  /** First tries still on their way to the log: one that fails joins the queue. */
  readonly #trying = new Set<Promise<void>>();

  constructor(o: WriteQueueOptions) {
    this.#o = o;
    this.#maxChars = o.maxChars ?? WRITE_QUEUE_MAX_CHARS;
  }

  /** Invalidations waiting for the log. */
  get pending(): number {
    return this.#queue.length;
  }

  /** Log a write's invalidation; if the log cannot take it, queue it. */
  submit(inval: Invalidation): void {
    // Others are waiting: the log is failing, and this one would only spend its retries.
    if (this.#queue.length > 0 || this.#flushing) {
      this.#enqueue(inval);
      return;
    }
    const trying = this.#o.log.invalidate(inval).then(() => undefined, (err: unknown) => {
      // Kind and queue length, not the keys: they come from clients' paths, and a failing log
      // sees one of these per write.
      this.#o.logger.warn({ kind: inval.kind, pending: this.#queue.length + 1, err: (err as Error).message }, 'invalidation after a write could not reach the log; queued until it can');
      this.#enqueue(inval);
    }).finally(() => this.#trying.delete(trying));
    this.#trying.add(trying);
  }

  /** Stopping: what waits keeps trying the log until `deadline` (at least once), so that a
   *  sidecar stopped while NATS was briefly away does not take its writes' invalidations with
   *  it. Returns how many still wait; `close` reports them. */
  async settle(deadline: number): Promise<number> {
    const left = (): number => Math.max(0, deadline - Date.now());
    do {
      if (this.#trying.size > 0) await Promise.race([Promise.allSettled([...this.#trying]), delay(left())]);
      if (this.#queue.length > 0 && !this.#flushing) {
        if (this.#timer !== undefined) clearTimeout(this.#timer);
        this.#timer = undefined;
        this.#flushing = true;
        try {
          await this.#drain();
        } finally {
          this.#flushing = false;
        }
      }
      if (this.#queue.length === 0 && this.#trying.size === 0) break;
      await delay(Math.min(SETTLE_RETRY_MS, left()));
    } while (Date.now() < deadline);
    return this.#queue.length + this.#trying.size;
  }

  /** The log is reachable again: publish what waits now rather than at the next retry. */
  flush(): void {
    if (this.#closed || this.#flushing || this.#queue.length === 0) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#flushing = true;
    void this.#drain().finally(() => {
      this.#flushing = false;
      if (this.#queue.length > 0) this.#schedule();
    });
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#queue.length > 0) {
      this.#o.logger.error({ pending: this.#queue.length }, 'stopping with write invalidations the log never took: peers keep those entries until they expire');
    }
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0 && !this.#closed) {
      const inval = this.#queue[0]!;
      try {
        await this.#o.log.invalidate(inval);
      } catch (err) {
        this.#o.logger.debug({ err: (err as Error).message, pending: this.#queue.length }, 'queued write invalidations still cannot reach the log');
        return;
      }
      // Coalescing while we awaited may have replaced the queue: remove this one only if present.
      const at = this.#queue.indexOf(inval);
      if (at >= 0) {
        this.#queue.splice(at, 1);
        this.#chars -= charsOf(inval);
      }
      this.#o.logger.debug({ kind: inval.kind, pending: this.#queue.length }, 'queued write invalidation logged');
    }
  }

  #enqueue(inval: Invalidation): void {
    if (this.#closed) return;
    this.#queue.push(inval);
    this.#chars += charsOf(inval);
    if (this.#chars > this.#maxChars) this.#coalesce();
    if (!this.#flushing) this.#schedule();
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.flush();
    }, RETRY_MS);
    this.#timer.unref();
  }

  /** Past the bound: one soft invalidation of each origin replaces the queued ones (RFC 9111
   *  §4.4 allows marking responses invalid, to be revalidated before use, in place of removing
   *  them); if even those exceed the bound, one soft purge of everything. Coarser, never lost. */
  #coalesce(): void {
    const folded = this.#queue.length;
    const prefixes = new Set<string>();
    let everything = false;
    for (const inval of this.#queue) {
      if (inval.kind === 'all') everything = true;
      else if (inval.kind === 'prefix') prefixes.add(originPrefixOf(inval.prefix) ?? inval.prefix);
      else if (inval.kind === 'url') {
        for (const k of inval.keys) {
          const p = originPrefixOf(k);
          if (p === undefined) everything = true;
          else prefixes.add(p);
        }
      } else everything = true;
    }
    let queue: Invalidation[] = [...prefixes].map((prefix) => ({ kind: 'prefix', prefix, soft: true }));
    let chars = queue.reduce((n, i) => n + charsOf(i), 0);
    if (everything || chars > this.#maxChars) {
      queue = [{ kind: 'all', soft: true }];
      chars = 0;
    }
    this.#queue = queue;
    this.#chars = chars;
    this.#o.onCoalesced?.(folded);
    this.#o.logger.warn({ folded, into: queue.length }, 'write invalidation queue full: coalesced into coarser soft invalidations');
  }
}
