// The soak's plan, from its options alone: the windows compared, how often a sample is taken,
// the timing of membership changes and when everything is purged. Pure, so the help text, the
// run and the tests agree.

export interface SoakOptions {
  durationMs: number;
  rate: number;
  seed: number;
  nats: 1 | 3;
  maxBytes: number;
  /** Groups of 128 keys at the origin (64: 8,192 keys, about 100 MiB). */
  groups: number;
  /** Multiplies every body's size (1-48 KiB at 1). */
  bodyScale: number;
  /** glibc's MALLOC_ARENA_MAX of every sidecar; 0: not set (the soak's own environment passes on). */
  mallocArenaMax: number;
  hotBytes: number;
  historyBytes: number;
  out: string | undefined;
  judge: string | undefined;
}

export interface Timing {
  /** Length of the first and the last window. */
  readonly windowMs: number;
  /** From the start of the traffic (or a member's restart) to its first window: a minute in runs
   *  with windows of a minute, a twelfth of a shorter run. */
  readonly warmMs: number;
  readonly sampleEveryMs: number;
  /** A joiner's stay before it leaves. */
  readonly holdMs: number;
  /** Quiet after a leave before the next change. */
  readonly settleMs: number;
  /** A killed member stays down this long before its restart. */
  readonly downMs: number;
}

/** Windows of a minute from a 4-minute run on, else a quarter of the run (15 s in a 1-minute run). */
export function timingOf(durationMs: number): Timing {
  const windowMs = Math.min(60_000, Math.round(durationMs / 4));
  return {
    windowMs,
    // Long enough in a long run for the caches to fill: a cold cache sends more misses to the
    // origin and the peers, and so holds more connections, than the steady state it is compared with.
    warmMs: windowMs >= 60_000 ? 60_000 : Math.min(10_000, Math.round(durationMs / 12)),
    sampleEveryMs: Math.max(1000, Math.min(5000, Math.round(windowMs / 12))),
    holdMs: windowMs >= 60_000 ? 30_000 : 3000,
    settleMs: Math.max(2000, Math.min(10_000, Math.round(windowMs / 5))),
    downMs: 1000,
  };
}

/** Milliseconds from the start of the traffic at which everything is purged: the middle of the
 *  first window and of the last (the soak adds the middle of each restarted member's first
 *  window). A purge-all empties every cache and brings a burst of misses, and of origin and peer
 *  connections: each compared window holds one, at the same place. */
export function purgeAllTimes(durationMs: number, t: Timing = timingOf(durationMs)): number[] {
  return [t.warmMs + t.windowMs / 2, durationMs - t.windowMs / 2];
}

/** When a member restarted (ready) at `readyAt` has its own purge-all. */
export function restartPurgeAll(readyAt: number, t: Timing): number {
  return readyAt + t.warmMs + t.windowMs / 2;
}
