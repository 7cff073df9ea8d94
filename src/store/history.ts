// InvalHistory: the recent invalidations a late fill is checked against (DESIGN invariant 2,
// no resurrection), by key, tag and prefix, with the seq of the last one of each. Its memory is
// charged in bytes; forgetting a record raises the floor to the record's seq, so a fill fenced
// before it is refused (a refetch) rather than let through (a resurrection).
import type { Entry } from './types.js';

/** Bytes charged per record besides its characters: the Map slot, the string's header, the seq. */
export const HISTORY_RECORD_OVERHEAD_BYTES = 64;
/** Prefix records are checked one by one against a fill: at most this many are kept. */
export const PREFIX_HISTORY_MAX = 10_000;

/** What a record costs: strings may hold two bytes per character. */
export function historyRecordBytes(name: string): number {
  return HISTORY_RECORD_OVERHEAD_BYTES + name.length * 2;
}

export class InvalHistory {
  /** Insertion order is seq order: invalidations are recorded in stream-sequence order and a
   *  name seen again is moved to the end. */
  readonly #urls = new Map<string, number>();
  readonly #tags = new Map<string, number>();
  /** Ascending seq. */
  #prefixes: Array<{ readonly prefix: string; readonly seq: number }> = [];
  #bytes = 0;
  /** Fences below this cannot be proven clean: a record that could concern them was forgotten. */
  #floor: number;
  /** Records forgotten to stay within the byte bound. */
  forgotten = 0;

  constructor(floor = 0) {
    this.#floor = floor;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get floor(): number {
    return this.#floor;
  }

  rememberUrl(key: string, seq: number): void {
    this.#remember(this.#urls, key, seq);
  }

  rememberTag(tag: string, seq: number): void {
    this.#remember(this.#tags, tag, seq);
  }

  rememberPrefix(prefix: string, seq: number): void {
    this.#prefixes.push({ prefix, seq });
    this.#bytes += historyRecordBytes(prefix);
    while (this.#prefixes.length > PREFIX_HISTORY_MAX) this.#forgetPrefix();
  }

  #remember(map: Map<string, number>, name: string, seq: number): void {
    if (map.delete(name)) this.#bytes -= historyRecordBytes(name);
    map.set(name, seq);
    this.#bytes += historyRecordBytes(name);
  }

  /** Seq of the oldest record; Infinity when there is none. */
  oldestSeq(): number {
    let oldest = Infinity;
    for (const map of [this.#urls, this.#tags]) {
      const first = map.values().next();
      if (first.done !== true && first.value < oldest) oldest = first.value;
    }
    const p = this.#prefixes[0];
    if (p !== undefined && p.seq < oldest) oldest = p.seq;
    return oldest;
  }

  /** Forgets the oldest record and raises the floor to its seq: fills fenced before it are
   *  refused from now on, exactly the ones it could have refused. */
  forgetOldest(): void {
    const oldest = this.oldestSeq();
    if (oldest === Infinity) return;
    for (const map of [this.#urls, this.#tags]) {
      const first = map.entries().next();
      if (first.done !== true && first.value[1] === oldest) {
        map.delete(first.value[0]);
        this.#forgot(first.value[0], oldest);
        return;
      }
    }
    this.#forgetPrefix();
  }

  #forgetPrefix(): void {
    const p = this.#prefixes.shift();
    if (p !== undefined) this.#forgot(p.prefix, p.seq);
  }

  #forgot(name: string, seq: number): void {
    this.#bytes -= historyRecordBytes(name);
    this.forgotten++;
    if (seq > this.#floor) this.#floor = seq;
  }

  /** Did an invalidation after `entry.fence` match it, or can that not be ruled out? */
  matchesSince(entry: Pick<Entry, 'key' | 'tags' | 'fence'>): boolean {
    const fence = entry.fence;
    if (fence < this.#floor) return true;
    if ((this.#urls.get(entry.key) ?? 0) > fence) return true;
    for (const t of entry.tags) if ((this.#tags.get(t) ?? 0) > fence) return true;
    // Newest first: fills are fenced recently, so the scan stops after the recent prefixes.
    for (let i = this.#prefixes.length - 1; i >= 0; i--) {
      const p = this.#prefixes[i]!;
      if (p.seq <= fence) break;
      if (entry.key.startsWith(p.prefix)) return true;
    }
    return false;
  }

  /** Invalidations up to `floor` are unknown here (the log began after them): fences below it
   *  cannot be proven clean. Never lowers the floor. */
  raiseFloor(floor: number): void {
    if (floor > this.#floor) this.#floor = floor;
  }

  /** Forgets everything; fences below `floor` cannot be proven clean. */
  clear(floor: number): void {
    this.#urls.clear();
    this.#tags.clear();
    this.#prefixes = [];
    this.#bytes = 0;
    this.#floor = floor;
  }
}
