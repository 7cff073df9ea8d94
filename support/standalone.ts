// A standalone sidecar in reverse mode in front of a counting test origin, for a test file:
// started once, stopped at the end of the file.
import type { Test } from 'tap';
import { startOrigin, type TestOrigin } from './origin.ts';
import { startSidecar, type SidecarProcess } from './sidecar.ts';

export async function startStandalone(t: Pick<Test, 'teardown'>, env: Record<string, string> = {}): Promise<{ origin: TestOrigin; sc: SidecarProcess }> {
  const origin = await startOrigin();
  const sc = await startSidecar({ env: { SIDECACHE_UPSTREAM: origin.url, ...env } });
  t.teardown(async () => {
    await sc.stop();
    await origin.close();
  });
  return { origin, sc };
}
