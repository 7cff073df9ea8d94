// The soak's command line (npm run soak -- --help): its options, their bounds and defaults.
import type { SoakOptions } from './soak-plan.js';

export const USAGE = `usage: npm run soak -- [--duration=30m] [--rate=150] [--seed=1] [--nats=3]
       [--max-bytes=16MiB] [--hot-bytes=4MiB] [--history-bytes=1MiB] [--groups=64]
       [--body-scale=1] [--malloc-arena-max=2] [--out=FILE]
  --duration       traffic time (s or m; default 30m, at least 60s); start-up (15-30 s) and
                   shutdown come on top
  --rate           operations per second over the whole cluster (default 150)
  --seed           the traffic's seed (default 1)
  --nats           nats-server nodes: 1 or 3 (default 3)
  --max-bytes, --hot-bytes, --history-bytes
                   SIDECACHE_MAX_BYTES, SIDECACHE_HOT_MAX_BYTES, SIDECACHE_INVAL_HISTORY_BYTES of
                   every sidecar: together the byte budget, small so that it is filled
                   (--max-bytes defaults to 8MiB in runs under 10 minutes)
  --groups         the origin's key space in groups of 128 keys (default 64: 8,192 keys of
                   1-48 KiB, about 100 MiB); a large budget needs more to be filled
  --body-scale     multiplies every body's size (default 1): a large budget is filled sooner
  --malloc-arena-max
                   glibc's MALLOC_ARENA_MAX for every sidecar (default 2, as the image sets it:
                   deploy/Containerfile); 0: not set by the soak (glibc's default of 8
                   per core, unless the soak's own environment sets it)
  --out            where the raw samples are saved as JSON (default a new temporary directory)
  --judge=FILE     judge saved samples again (no cluster is started)

Traffic: hits on a hot set, misses over 8,192 keys of 1-48 KiB, HEAD and conditional GETs,
POST/PUT/DELETE writes, purges by url, prefix and tag (a third of them soft), at random
sidecars; a purge of everything at the middle of each window compared (the first, the last,
and a restarted sidecar's first).
Checks: every sample of every sidecar has RSS <= its idle RSS (after start-up, before any
traffic; a joiner gets the largest) + 1.25 x the budget ("rss"); each of the 3 first sidecars
has, in the last window, file descriptors and active handles (each the mean of the samples in
the window) within 10 % of its first window ("fds", "handles"); once the traffic has stopped,
each is back to its fds and handles before the traffic within 30 s ("quiet": the load's
connections closed, peers' and the origin pool's idle ones lapsed after 10 and 4 s); each
filled its store to 90 % of SIDECACHE_MAX_BYTES at least once ("budget-filled"); at most 1 %
of the operations got an error from a sidecar that stayed up meanwhile ("answers"); no
membership change ran into the last window ("windows-clean").
Windows: a minute each from a 4-minute run on, else a quarter of the run: in a 1-minute run
"the first and last minute" are the first and last 15 s. Windows shorter than a minute are
compared and printed, but do not fail the run: their counts follow the sizes of connection
pools, which follow concurrency over the last seconds (more while the caches are cold) and
moved by up to 23 % either way between the first and last 15 s of 1-minute runs without any
leak; the quiet check is exact. The first window starts after a warm-up (a minute in runs with windows
of a minute, so that the caches are full; 5 s in a 1-minute run) from the start of the traffic
or, for a sidecar restarted during the run, from its last restart. Membership changes run in
turns between the first window and the last: a 4th sidecar joins, stays, then leaves with
SIGTERM; s2 or s1 (in turns: s0 lives through the whole run) is SIGKILLed and restarted with
the same id and ports, then nothing else changes for its warm-up and first window, which ends
before the run's last window (in a short run, before the end of the run). A change that cannot end in time is skipped, and the summary says so.
The last line is "soak: ok" or "soak: FAILED: " and the checks that failed.`;

export class UsageError extends Error {}

export function parseArgs(argv: readonly string[]): SoakOptions {
  const o: SoakOptions = {
    durationMs: 30 * 60_000, rate: 150, seed: 1, nats: 3,
    maxBytes: 0, groups: 64, bodyScale: 1, mallocArenaMax: 2, hotBytes: 4 * 1024 * 1024, historyBytes: 1024 * 1024, out: undefined, judge: undefined,
  };
  const size = (name: string, v: string): number => {
    const m = /^(\d+)(KiB|MiB)$/.exec(v);
    if (m === null) throw new UsageError(`--${name}: expected e.g. 16MiB or 512KiB, got "${v}"`);
    return Number(m[1]) * (m[2] === 'MiB' ? 1024 * 1024 : 1024);
  };
  for (const arg of argv) {
    if (arg === '--help' || arg === '-h') throw new UsageError('');
    const m = /^--([a-z-]+)=(.*)$/.exec(arg);
    if (m === null) throw new UsageError(`unknown argument "${arg}"`);
    const [, name, value] = m as unknown as [string, string, string];
    switch (name) {
      case 'duration': {
        const d = /^(\d+(?:\.\d+)?)(s|m)$/.exec(value);
        if (d === null) throw new UsageError(`--duration: expected e.g. 60s or 30m, got "${value}"`);
        o.durationMs = Number(d[1]) * (d[2] === 'm' ? 60_000 : 1000);
        break;
      }
      case 'rate': o.rate = Number(value); break;
      case 'seed': o.seed = Number(value); break;
      case 'nats':
        if (value !== '1' && value !== '3') throw new UsageError(`--nats: expected 1 or 3, got "${value}"`);
        o.nats = value === '1' ? 1 : 3;
        break;
      case 'max-bytes': o.maxBytes = size(name, value); break;
      case 'groups': o.groups = Number(value); break;
      case 'body-scale': o.bodyScale = Number(value); break;
      case 'malloc-arena-max': o.mallocArenaMax = Number(value); break;
      case 'hot-bytes': o.hotBytes = size(name, value); break;
      case 'history-bytes': o.historyBytes = size(name, value); break;
      case 'out': o.out = value; break;
      case 'judge': o.judge = value; break;
      default: throw new UsageError(`unknown option --${name}`);
    }
  }
  if (o.durationMs < 60_000 || o.durationMs > 6 * 3600_000) throw new UsageError('--duration: expected between 60s and 6h');
  // Small enough to be filled: in a short run well before its last window.
  if (o.maxBytes === 0) o.maxBytes = (o.durationMs < 10 * 60_000 ? 8 : 16) * 1024 * 1024;
  if (!(o.rate >= 10 && o.rate <= 1000)) throw new UsageError('--rate: expected 10-1000 operations per second');
  if (!Number.isInteger(o.seed) || o.seed < 0) throw new UsageError('--seed: expected an integer from 0');
  if (!Number.isInteger(o.bodyScale) || o.bodyScale < 1 || o.bodyScale > 16) throw new UsageError('--body-scale: expected an integer 1-16');
  if (!Number.isInteger(o.mallocArenaMax) || o.mallocArenaMax < 0 || o.mallocArenaMax > 64) throw new UsageError('--malloc-arena-max: expected 0 (glibc\'s default) or 1-64');
  if (!Number.isInteger(o.groups) || o.groups < 1 || o.groups > 4096) throw new UsageError('--groups: expected 1-4096 groups of 128 keys');
  if (o.historyBytes < 64 * 1024) throw new UsageError('--history-bytes: SIDECACHE_INVAL_HISTORY_BYTES is at least 64KiB');
  return o;
}
