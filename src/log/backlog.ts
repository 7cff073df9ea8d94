// How long this sidecar has known that the INVAL stream holds invalidations it has not applied.
// A member attached to NATS whose INVAL deliveries stall (its consumer lost with a stream
// leader, a link that carries heartbeats but not the log) is as blind to purges as one cut off
// from NATS: past SIDECACHE_MAX_STALE_DETACHED it must stop trusting its cache the same way.
// Only seqs counted in the stream we follow are learnt (our own publishes, the stream's last
// seq): peers' acks may still count in the numbering of a stream that was reset.

/** Entries kept at most: a burst of learnt seqs merges into the newest, keeping its older time. */
const MAX_MARKS = 64;

export class Backlog {
  /** Seqs learnt and not yet applied, increasing, each with when it was first known. */
  readonly #marks: { seq: number; at: number }[] = [];

  /** The stream holds `seq`, as we learnt at `now`; `applied` is our cursor. */
  learn(seq: number, applied: number, now: number): void {
    if (seq <= applied) return;
    const last = this.#marks.at(-1);
    if (last !== undefined && last.seq >= seq) return;
    // Merged into the newest mark: behind since that mark's time, earlier than we learnt
    // `seq` (the conservative side: revalidation starts no later than it should).
    if (last !== undefined && this.#marks.length >= MAX_MARKS) last.seq = seq;
    else this.#marks.push({ seq, at: now });
  }

  /** Our cursor moved to `applied` (an invalidation, or past a gap). */
  applied(applied: number): void {
    let n = 0;
    while (n < this.#marks.length && this.#marks[n]!.seq <= applied) n++;
    if (n > 0) this.#marks.splice(0, n);
  }

  /** The stream was reset: what we learnt counts in the old numbering. */
  clear(): void {
    this.#marks.length = 0;
  }

  /** The highest seq learnt and not yet applied; 0: none. */
  get lastSeq(): number {
    return this.#marks.at(-1)?.seq ?? 0;
  }

  /** For how long (ms, at `now`) we have known of an invalidation we have not applied; 0: none. */
  behindMs(now: number): number {
    const first = this.#marks[0];
    return first === undefined ? 0 : Math.max(0, now - first.at);
  }
}
