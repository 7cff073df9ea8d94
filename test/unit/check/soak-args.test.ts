import t from 'tap';
import { parseArgs, UsageError } from '../../../check/soak-args.js';

t.test('soak options: the defaults, and each malformed value refused with a message naming it', async (t) => {
  const o = parseArgs([]);
  t.equal(o.durationMs, 30 * 60_000);
  t.equal(o.maxBytes, 16 * 1024 * 1024, 'a 30-minute run: 16 MiB');
  t.equal(parseArgs(['--duration=60s']).maxBytes, 8 * 1024 * 1024, 'a short run: 8 MiB');
  t.equal(o.mallocArenaMax, 2, 'sidecars run with MALLOC_ARENA_MAX=2, as the image runs them');
  t.equal(parseArgs(['--malloc-arena-max=0']).mallocArenaMax, 0, "0: not set by the soak");
  t.equal(parseArgs(['--max-bytes=256MiB', '--body-scale=4', '--groups=512']).maxBytes, 256 * 1024 * 1024);
  for (const [arg, names] of [['--malloc-arena-max=-1', '--malloc-arena-max'], ['--malloc-arena-max=two', '--malloc-arena-max'],
    ['--max-bytes=16MB', '--max-bytes'], ['--duration=10s', '--duration'], ['--body-scale=17', '--body-scale'], ['--nope=1', '--nope']] as const) {
    let err: unknown;
    try { parseArgs([arg]); } catch (e) { err = e; }
    t.ok(err instanceof UsageError && err.message.includes(names), `${arg}: ${(err as Error | undefined)?.message}`);
  }
});
