// WriteInvalidations: what a successful unsafe request publishes (RFC 9111 §4.4), within a
// rate. Each write is one message on INVAL that every sidecar applies and remembers, so a
// flood of writes would be a flood of log traffic and history. Past `ratePerSec` (a token
// bucket with one second of burst), writes coalesce: their keys become soft invalidations of
// the keys' parent paths, published together every `flushIntervalMs`; past `maxPrefixes`
// distinct parents in one interval, of their origins. §4.4 allows marking stored responses as
// needing validation instead of removing them, which is what a soft invalidation does; the
// writing sidecar still removes the exact keys from its own cache at once.
import type { Invalidation } from '../core/types.js';

export interface WriteInvalidationOptions {
  /** Write invalidations published as they are per second, before writes coalesce. */
  readonly ratePerSec: number;
  /** How long coalesced writes wait for others before their invalidations are published. */
  readonly flushIntervalMs: number;
  /** Distinct parent paths published per interval; more coarsen to their origins. */
  readonly maxPrefixes: number;
  /** Publishes one invalidation (the caller logs a failure). */
  readonly publish: (inval: Invalidation) => void;
  /** Writes whose invalidation was coalesced. */
  readonly onCoalesced?: (writes: number) => void;
  readonly now?: () => number;
}

/** "scheme://host[:port]/" of a key (proxy/key.ts), or undefined when it has no such form. */
export function originPrefixOf(key: string): string | undefined {
  const scheme = key.indexOf('://');
  if (scheme === -1) return undefined;
  let end = scheme + 3;
  while (end < key.length && key[end] !== '/' && key[end] !== '?') end++;
  return `${key.slice(0, end)}/`;
}

/** The key's parent path with its origin, up to and including the last "/" before any query. */
export function parentPrefixOf(key: string): string | undefined {
  const origin = originPrefixOf(key);
  if (origin === undefined) return undefined;
  const q = key.indexOf('?', origin.length - 1);
  const path = q === -1 ? key : key.slice(0, q);
  return path.length < origin.length ? origin : path.slice(0, path.lastIndexOf('/') + 1);
}

export class WriteInvalidations {
  readonly #o: WriteInvalidationOptions;
  readonly #now: () => number;
  #tokens: number;
  #refilledAt: number;
  readonly #pending = new Set<string>();
  #pendingWrites = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: WriteInvalidationOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    this.#tokens = opts.ratePerSec;
    this.#refilledAt = this.#now();
  }

  /** The keys one write invalidates. */
  add(keys: readonly string[]): void {
    const now = this.#now();
    const rate = this.#o.ratePerSec;
    this.#tokens = Math.min(rate, this.#tokens + ((now - this.#refilledAt) * rate) / 1000);
    this.#refilledAt = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      this.#o.publish({ kind: 'url', keys: [...keys] });
      return;
    }
    const coarse: string[] = [];
    for (const k of keys) {
      const p = parentPrefixOf(k);
      // A key of no known form cannot be coarsened: it goes out as it is.
      if (p === undefined) this.#o.publish({ kind: 'url', keys: [k] });
      else coarse.push(p);
    }
    if (coarse.length === 0) return;
    for (const p of coarse) this.#pending.add(p);
    this.#pendingWrites++;
    this.#timer ??= setTimeout(() => this.flush(), this.#o.flushIntervalMs).unref();
  }

  /** Publishes what is pending now. */
  flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.size === 0) return;
    let prefixes = [...this.#pending];
    this.#pending.clear();
    if (prefixes.length > this.#o.maxPrefixes) prefixes = [...new Set(prefixes.map((p) => originPrefixOf(p)!))];
    for (const prefix of prefixes) this.#o.publish({ kind: 'prefix', prefix, soft: true });
    this.#o.onCoalesced?.(this.#pendingWrites);
    this.#pendingWrites = 0;
  }
}
