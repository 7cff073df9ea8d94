// Provisioning: create the INVAL and FILLS streams and the heartbeat and view buckets, or
// verify the ones that exist, and read back what the server kept (§1: 2.9 drops settings it does
// not know without an error). Section numbers refer to the design notes' NATS-2.9.md.

import { nuid } from '@nats-io/transport-node';
import {
  DiscardPolicy,
  JetStreamApiCodes,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { logError } from '../../core/errors.js';
import { isApiError, nanosPerMs, type Runtime } from './runtime.js';

/** Revisions the view bucket keeps: room for the losers of concurrent writes (membership/view.ts). */
export const VIEW_HISTORY = 16;
export const INCARNATION_TAG = 'incarnation ';

/** One setting we send and later read back; `critical` settings of an existing stream must
 *  match (the log would misbehave), the others only earn a warning. */
interface Setting {
  readonly field: keyof StreamConfig;
  readonly value: unknown;
  readonly critical: boolean;
}

/** The INVAL stream's incarnation id, from the description we set when creating it; a
 *  stream made by hand without one has the empty incarnation. */
export function incarnationOf(info: StreamInfo): string {
  const d = info.config.description ?? '';
  const at = d.lastIndexOf(INCARNATION_TAG);
  return at < 0 ? d : d.slice(at + INCARNATION_TAG.length);
}

function invalSettings(rt: Runtime, replicas: number): Setting[] {
  const o = rt.opts;
  return [
    { field: 'subjects', value: [rt.names.invalSubject], critical: true },
    { field: 'retention', value: RetentionPolicy.Limits, critical: true },
    // Every invalidation is kept until max_age: one per subject would lose them.
    { field: 'max_msgs_per_subject', value: -1, critical: true },
    { field: 'discard', value: DiscardPolicy.Old, critical: true },
    { field: 'sealed', value: false, critical: true },
    { field: 'storage', value: StorageType.File, critical: false },
    { field: 'num_replicas', value: replicas, critical: false },
    { field: 'max_age', value: o.invalMaxAgeMs * nanosPerMs, critical: false },
    // A flood of invalidations must not fill the servers' disks. What the bound discards is
    // lost to a sidecar that had not applied it yet: its cursor falls below first_seq and
    // the gap check flushes its cache (invariant 3), so discarding old is never a stale read.
    { field: 'max_bytes', value: o.invalMaxBytes ?? -1, critical: false },
    // invalidate() retries with the same msgID for invalidateTimeoutMs (§6, §8).
    { field: 'duplicate_window', value: Math.min(120_000, o.invalMaxAgeMs) * nanosPerMs, critical: false },
    { field: 'allow_direct', value: true, critical: false },
  ];
}

function fillsSettings(rt: Runtime, replicas: number): Setting[] {
  const o = rt.opts;
  return [
    { field: 'subjects', value: [rt.names.fillsWildcard], critical: true },
    { field: 'retention', value: RetentionPolicy.Limits, critical: true },
    // The compacted log (§2): replay relies on one message per subject.
    { field: 'max_msgs_per_subject', value: 1, critical: true },
    { field: 'sealed', value: false, critical: true },
    { field: 'discard', value: DiscardPolicy.Old, critical: false },
    { field: 'storage', value: StorageType.File, critical: false },
    { field: 'num_replicas', value: replicas, critical: false },
    { field: 'max_bytes', value: o.fillsMaxBytes, critical: false },
    { field: 'max_age', value: o.fillsMaxAgeMs * nanosPerMs, critical: false },
    { field: 'duplicate_window', value: Math.min(120_000, o.fillsMaxAgeMs) * nanosPerMs, critical: false },
    { field: 'allow_direct', value: true, critical: false },
  ];
}

/** Set only when we create INVAL: a fresh id that tells this stream from a later one of
 *  the same name. StreamInfo.created cannot serve: on R3 it differs between replicas. */
function invalCreateOnly(rt: Runtime): Partial<StreamConfig> {
  return { description: `sidecache INVAL log of cluster ${rt.opts.cluster}; ${INCARNATION_TAG}${nuid.next()}` };
}

/** Create or verify INVAL (also when a check finds it deleted); its info tells the incarnation. */
export function ensureInvalStream(rt: Runtime, replicas: number): Promise<StreamInfo> {
  return ensureStream(rt, rt.names.invalStream, invalSettings(rt, replicas), invalCreateOnly(rt));
}

export async function ensureFillsStream(rt: Runtime, replicas: number): Promise<void> {
  await ensureStream(rt, rt.names.fillsStream, fillsSettings(rt, replicas));
}

/** Create the stream, or verify the existing one; then read the config back. */
async function ensureStream(rt: Runtime, name: string, settings: Setting[], createOnly: Partial<StreamConfig> = {}): Promise<StreamInfo> {
  const jsm = rt.jsm!;
  return rt.retrying(`create or verify stream ${name}`, async () => {
    let info: StreamInfo | undefined;
    let created = false;
    try {
      info = await jsm.streams.info(name);
    } catch (err) {
      if (!isApiError(err, JetStreamApiCodes.StreamNotFound)) throw err;
    }
    if (info === undefined) {
      const cfg: Partial<StreamConfig> & { name: string } = { ...createOnly, name };
      for (const s of settings) (cfg as Record<string, unknown>)[s.field] = s.value;
      try {
        info = await jsm.streams.add(cfg);
        created = true;
      } catch (err) {
        // 10058: another sidecar created it a moment ago with other settings: verify theirs.
        if (!isApiError(err, 10058)) throw err;
        info = await jsm.streams.info(name);
      }
    }
    verifyConfig(rt, `stream ${name}`, info.config, settings, created);
    return info;
  });
}

function verifyConfig(rt: Runtime, what: string, config: StreamConfig, settings: Setting[], created: boolean): void {
  const bad: string[] = [];
  const badCritical: string[] = [];
  for (const s of settings) {
    const got = (config as unknown as Record<string, unknown>)[s.field];
    let ok: boolean;
    if (Array.isArray(s.value)) {
      ok = Array.isArray(got) && s.value.every((v) => (got as unknown[]).includes(v));
    } else if (s.field === 'max_msgs_per_subject' && s.value === -1) {
      ok = got === -1 || got === 0 || got === undefined; // 0 and absent also mean "no limit"
    } else if (typeof s.value === 'boolean') {
      ok = (got ?? false) === s.value;
    } else {
      ok = got === s.value;
    }
    if (!ok) {
      const line = `${s.field}: expected ${JSON.stringify(s.value)}, got ${JSON.stringify(got)}`;
      bad.push(line);
      if (s.critical) badCritical.push(line);
    }
  }
  if (created && bad.length > 0) {
    throw logError(
      `${what}: the server did not keep settings sidecache relies on (${bad.join('; ')}); ` +
        `nats-server ${rt.nc?.info?.version ?? '?'} ignores settings it does not know`,
    );
  }
  if (badCritical.length > 0) {
    throw logError(
      `${what} exists with an incompatible config (${badCritical.join('; ')}); ` +
        'delete it or point this sidecar at another cluster name',
    );
  }
  if (bad.length > 0) {
    rt.log.warn({ what, differences: bad }, 'existing stream has other settings than ours; keeping them');
  }
}

export interface Buckets {
  readonly heartbeats: KV;
  readonly view: KV;
}

export async function openBuckets(rt: Runtime, replicas: number): Promise<Buckets> {
  const o = rt.opts;
  const heartbeats = await ensureBucket(rt, rt.names.heartbeatBucket, { ttl: o.heartbeatTtlMs, history: 1, replicas }, [
    { field: 'max_msgs_per_subject', value: 1, critical: false },
    { field: 'max_age', value: o.heartbeatTtlMs * nanosPerMs, critical: false },
    { field: 'num_replicas', value: replicas, critical: false },
    { field: 'sealed', value: false, critical: true },
  ]);
  const view = await ensureBucket(rt, rt.names.viewBucket, { history: VIEW_HISTORY, replicas }, [
    { field: 'max_msgs_per_subject', value: VIEW_HISTORY, critical: true },
    // A TTL would expire the agreed view.
    { field: 'max_age', value: 0, critical: true },
    { field: 'num_replicas', value: replicas, critical: false },
    { field: 'sealed', value: false, critical: true },
  ]);
  return { heartbeats, view };
}

async function ensureBucket(
  rt: Runtime,
  bucket: string,
  kvOpts: { ttl?: number; history: number; replicas: number },
  settings: Setting[],
): Promise<KV> {
  const jsm = rt.jsm!;
  const kvm = new Kvm(rt.js!);
  const streamName = `KV_${bucket}`;
  return rt.retrying(`create or verify KV bucket ${bucket}`, async () => {
    let existed = true;
    try {
      await jsm.streams.info(streamName);
    } catch (err) {
      if (!isApiError(err, JetStreamApiCodes.StreamNotFound)) throw err;
      existed = false;
    }
    let kv: KV;
    try {
      kv = existed ? await kvm.open(bucket) : await kvm.create(bucket, { ...kvOpts, storage: StorageType.File });
    } catch (err) {
      if (!isApiError(err, 10058)) throw err;
      existed = true;
      kv = await kvm.open(bucket);
    }
    const info = await jsm.streams.info(streamName);
    verifyConfig(rt, `KV bucket ${bucket}`, info.config, settings, !existed);
    return kv;
  });
}
