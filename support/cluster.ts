// A cluster of real sidecar processes on a real NATS (nats-server.ts), with short heartbeats so
// that membership changes need not wait out production defaults.
import { randomBytes } from 'node:crypto';
import { freePort, startSidecar, waitFor, type SidecarOptions, type SidecarProcess } from './sidecar.ts';

export const CLUSTER_SECRET = 'test-cluster-secret-0123456789';

export interface ClusterOptions {
  readonly natsUrls: readonly string[];
  readonly upstream: string;
  readonly cluster?: string;
  readonly env?: Record<string, string>;
  /** Peer and purge timeouts shorter than production's, so that tests of failures run fast
   *  (default true; the benchmarks measure with production's). */
  readonly shortTimeouts?: boolean;
  /** How long startCluster waits for the ring (default 15 s). */
  readonly ringTimeoutMs?: number;
}

/** A unique cluster name per test: streams and buckets never collide on a shared NATS. */
export function uniqueCluster(prefix = 't'): string {
  return `${prefix}${randomBytes(4).toString('hex')}`;
}

export function clusterEnv(o: Omit<ClusterOptions, 'cluster' | 'ringTimeoutMs'>, cluster: string): Record<string, string> {
  return {
    SIDECACHE_UPSTREAM: o.upstream,
    SIDECACHE_NATS_URL: o.natsUrls.join(','),
    SIDECACHE_CLUSTER: cluster,
    SIDECACHE_CLUSTER_SECRET: CLUSTER_SECRET,
    SIDECACHE_HEARTBEAT_INTERVAL: '300ms',
    SIDECACHE_HEARTBEAT_TTL: '2s',
    ...(o.shortTimeouts === false ? {} : { SIDECACHE_PEER_TIMEOUT: '2s', SIDECACHE_PURGE_TIMEOUT: '3s' }),
    ...o.env,
  };
}

export interface ClusterInfo {
  view: { epoch: number; members: Array<{ id: string; state: string }> };
  appliedSeq: number;
  attached: boolean;
  ringEpoch: number;
  ring: string[];
  partitionsOwned: number;
  replayedKeys: number;
  entries: number;
  hotEntries: number;
}

export async function clusterInfo(sc: { adminUrl: string }): Promise<ClusterInfo> {
  return (await (await fetch(`${sc.adminUrl}/cluster`, { signal: AbortSignal.timeout(3_000) })).json()) as ClusterInfo;
}

/** Starts n sidecars at once (they join concurrently: the view is changed by compare-and-set).
 *  `each(i)` adds options of sidecar i (its node id, a log file, a placement). If one fails to
 *  start, the others are stopped. */
export async function startCluster(n: number, o: ClusterOptions, each: (i: number) => Partial<SidecarOptions> = () => ({})): Promise<{ cluster: string; sidecars: SidecarProcess[] }> {
  const cluster = o.cluster ?? uniqueCluster();
  const started = await Promise.allSettled(Array.from({ length: n }, (_, i) => {
    const more = each(i);
    return startSidecar({ ...more, env: { ...clusterEnv(o, cluster), ...more.env } });
  }));
  const sidecars = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s) => s.status === 'rejected');
  if (failed !== undefined) {
    await Promise.all(sidecars.map((s) => s.kill()));
    throw failed.reason;
  }
  await waitForRing(sidecars, n, o.ringTimeoutMs);
  return { cluster, sidecars };
}

/** Every given sidecar uses the same epoch, with `members` active members. */
export async function waitForRing(sidecars: ReadonlyArray<{ adminUrl: string }>, members: number, timeoutMs = 15_000): Promise<number> {
  let epoch = 0;
  await waitFor(async () => {
    const infos = await Promise.all(sidecars.map((s) => clusterInfo(s).catch(() => undefined)));
    if (infos.some((i) => i === undefined)) return false;
    const epochs = new Set(infos.map((i) => i!.ringEpoch));
    const ok = epochs.size === 1 && infos.every((i) => i!.ring.length === members);
    if (ok) epoch = infos[0]!.ringEpoch;
    return ok;
  }, timeoutMs, `a ring of ${members} members agreed by ${sidecars.length} sidecars`);
  return epoch;
}

/** Restart a sidecar on the same ports and node id (a rolling deploy step). */
export async function restartSidecar(sc: SidecarProcess): Promise<SidecarProcess> {
  await sc.stop();
  const port = (u: string) => Number(new URL(u).port);
  return startSidecar({ env: sc.env, ports: { listen: port(sc.url), admin: port(sc.adminUrl), peer: port(sc.peerUrl) } });
}

export { freePort };
