// The size of V8's young generation (its two semi-spaces), kept between two costs. Too small
// (1-2 MiB, where V8 starts) and a scavenge, with a fixed cost of a few hundred µs, runs every
// hundred or so hits: several percent of the hit path. Too large (V8 grows it to 32 MiB under
// load) and it holds tens of MiB more, with the socket reads of its garbage, which are
// ArrayBuffers freed only by a scavenge: RSS well over the byte budget. V8 reads
// --max-semi-space-size only when the heap is set up, and raises a --semi-space-growth-factor
// below 2 given then, so the cap is kept from here instead: growth is stopped (factor 1, read
// each time V8 would grow) while the program starts, whose module loading would grow it to the
// default in one synchronous burst; then allowed (factor 2) while the young generation is under
// the cap and stopped once it reaches it. While it may grow, it is checked after every garbage
// collection (V8 grows it only then): it overshoots only when a second collection grows it again
// before the first one's notice runs, which needs more survivors than a semi-space holds within
// one synchronous stretch: rarely, by one doubling. At the cap it cannot grow, so a check once a
// second notices when V8 has shrunk it (it does when allocation slows down) and lets it grow
// back. An idle sidecar under the cap is not woken at all.
import v8 from 'node:v8';
import { PerformanceObserver } from 'node:perf_hooks';

/** Bounds of the cap on the young generation (both semi-spaces): V8 starts it at 1 MiB and would
 *  grow it to 32 MiB. Garbage collection per hit in CPU profiles: 3.6 µs at 2 MiB,
 *  2.7 at 4, 1.8 at 8, 1.1 at 16; a paired run of 8 against 4 MiB: 2 % less CPU per hit. */
export const YOUNG_GEN_MIN_CAP_BYTES = 4 * 1024 * 1024;
export const YOUNG_GEN_MAX_CAP_BYTES = 16 * 1024 * 1024;

/**
 * The cap for a cache budget: a thirty-second of it, as a power of two from 4 to 16 MiB. The
 * young generation is memory the budget does not count, so it is sized from the room the memory
 * bound leaves over the budget (a quarter of it: RSS <= 1.25 x budget + an idle base). At 64 MiB
 * that room is 16 MiB and already tight (benchmarks/README.md: 8 MiB broke the bound one run in
 * three), hence 4 MiB; the default 256 MiB gets 8 MiB, 512 MiB and more 16 MiB.
 */
export function youngGenCapFor(budgetBytes: number): number {
  let cap = YOUNG_GEN_MIN_CAP_BYTES;
  while (cap * 2 <= YOUNG_GEN_MAX_CAP_BYTES && cap * 2 * 32 <= budgetBytes) cap *= 2;
  return cap;
}

/** Bytes V8 holds for the young generation now (its two semi-spaces). */
export function youngGenBytes(): number {
  for (const s of v8.getHeapSpaceStatistics()) if (s.space_name === 'new_space') return s.space_size;
  return 0;
}

/** Stops the young generation's growth: until capYoungGeneration. */
export function holdYoungGeneration(): void {
  v8.setFlagsFromString('--semi-space-growth-factor=1');
}

/** Lets the young generation grow to `capBytes` and no further; returns a stop function.
 *  Under the cap it is checked after each garbage collection, at the cap every `atCapMs`. */
export function capYoungGeneration(capBytes: number, atCapMs = 1000): () => void {
  let factor = 0;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const afterGc = new PerformanceObserver(() => check());
  const check = (): void => {
    if (stopped) return;
    const want = youngGenBytes() < capBytes ? 2 : 1;
    if (want === factor) return;
    v8.setFlagsFromString(`--semi-space-growth-factor=${want}`);
    factor = want;
    if (want === 2) {
      clearInterval(timer);
      afterGc.observe({ entryTypes: ['gc'] });
    } else {
      afterGc.disconnect();
      timer = setInterval(check, atCapMs);
      timer.unref();
    }
  };
  check();
  return () => {
    stopped = true;
    afterGc.disconnect();
    clearInterval(timer);
  };
}
