// Reclaim: asks V8 for a full collection once the store has let go of enough body bytes.
// Bodies are ArrayBuffers outside the V8 heap, held by old-generation objects. V8 starts a full
// collection for such external memory only once it has grown by a fixed 64 MiB since the last
// one, so with a small budget the bodies the store evicted could outweigh the budget itself
// before anything frees them, and the malloc heap grown meanwhile stays grown. Releases come
// from fills that evict and from purges, never from hits: a hit-only load never collects here.
import v8 from 'node:v8';
import vm from 'node:vm';

type GcFunction = (options: { type: 'major'; execution: 'async' }) => unknown;

let gcFunction: GcFunction | null | undefined;

/** V8's gc() (its extension is only installed in contexts created while --expose-gc is set). */
function getGc(): GcFunction | null {
  if (gcFunction !== undefined) return gcFunction;
  const global = (globalThis as { gc?: unknown }).gc;
  if (typeof global === 'function') return (gcFunction = global as GcFunction);
  try {
    v8.setFlagsFromString('--expose-gc');
    const fn: unknown = vm.runInNewContext('gc');
    gcFunction = typeof fn === 'function' ? (fn as GcFunction) : null;
  } catch {
    gcFunction = null;
  } finally {
    v8.setFlagsFromString('--no-expose-gc');
  }
  return gcFunction;
}

/** Released bytes after which a collection is requested: 1/16 of the budget, within [1, 64] MiB
 *  (past 64 MiB V8's own external-memory trigger comes first). */
export function reclaimThreshold(budgetBytes: number): number {
  return Math.min(64 * 1024 * 1024, Math.max(1024 * 1024, Math.floor(budgetBytes / 16)));
}

export class Reclaimer {
  readonly #threshold: number;
  #released = 0;
  #pending = false;
  /** Collections requested so far. */
  requested = 0;

  constructor(budgetBytes: number) {
    this.#threshold = reclaimThreshold(budgetBytes);
  }

  /** The store dropped entries holding about `bytes`. */
  released(bytes: number): void {
    this.#released += bytes;
    if (this.#released < this.#threshold || this.#pending) return;
    const gc = getGc();
    if (gc === null) return;
    this.#released = 0;
    this.#pending = true;
    this.requested++;
    // Asynchronous: runs as a task of its own, not inside the request that evicted.
    Promise.resolve(gc({ type: 'major', execution: 'async' })).then(
      () => { this.#pending = false; },
      () => { this.#pending = false; },
    );
  }
}
