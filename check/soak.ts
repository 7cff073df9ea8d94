// The soak: `npm run soak -- --duration=30m`. A real cluster (nats-server, 3 sidecars with small
// byte budgets, an origin) under a fixed rate of mixed traffic (check/soak-load.ts) and a fixed
// schedule of membership changes, while each sidecar's RSS, file descriptors and active handles
// are sampled; then judged (check/soak-judge.ts) and summed up (check/soak-report.ts). Exit 0
// only when every check holds; 1 when one does not; 2 when the soak could not run.
import { mkdtempSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { clusterEnv, uniqueCluster } from '../support/cluster.js';
import { startNats } from '../support/nats-server.js';
import { startSidecar, type SidecarProcess } from '../support/sidecar.js';
import { judge, type JudgeSpec, type Sample } from './soak-judge.js';
import { Load, startSoakOrigin, type LoadTarget } from './soak-load.js';
import { parseArgs, USAGE, UsageError } from './soak-args.js';
import { purgeAllTimes, restartPurgeAll, timingOf, type SoakOptions } from './soak-plan.js';
import { fdKinds, readResidentMaps, readRss, tcpSockets } from './soak-procfs.js';
import { extraChecks, failedChecks, report, type SoakEvent } from './soak-report.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const portOf = (u: string) => Number(new URL(u).port);

/** One sidecar: its process (replaced on restart, same ports and id). */
class Slot implements LoadTarget {
  state: 'up' | 'down' | 'leaving' = 'up';
  changes = 0;
  incarnation = 0;
  readonly readyAt: number[] = [];
  constructor(readonly id: string, public sc: SidecarProcess, readonly base: boolean) {}
  get url(): string { return this.sc.url; }
  get adminUrl(): string { return this.sc.adminUrl; }
}

function metricOf(text: string, name: string): number | undefined {
  const i = text.indexOf(`\n${name} `);
  return i < 0 ? undefined : Number(text.slice(i + name.length + 2, text.indexOf('\n', i + 1)));
}

/** V8's memory as the sidecar reports it: where RSS above the idle base goes. */
const MEMORY_METRICS: Readonly<Record<string, string>> = {
  heapTotal: 'nodejs_heap_size_total_bytes',
  heapUsed: 'nodejs_heap_size_used_bytes',
  external: 'nodejs_external_memory_bytes',
  newSpace: 'nodejs_heap_space_size_total_bytes{space="new"}',
  oldSpace: 'nodejs_heap_space_size_total_bytes{space="old"}',
  codeSpace: 'nodejs_heap_space_size_total_bytes{space="code"}',
};

async function waitForRing(slots: readonly Slot[], members: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let n = 0; n < 10_000 && Date.now() < deadline; n++) {
    const infos = await Promise.all(slots.map((s) => fetch(`${s.adminUrl}/cluster`).then((r) => r.json() as Promise<{ ringEpoch: number; ring: string[] }>).catch(() => undefined)));
    if (infos.every((i) => i !== undefined && i.ring.length === members) && new Set(infos.map((i) => i!.ringEpoch)).size === 1) return true;
    await sleep(100);
  }
  return false;
}

let stopAll: (() => Promise<void>) | undefined;

async function run(o: SoakOptions): Promise<number> {
  const tm = timingOf(o.durationMs);
  const D = o.durationMs;
  const cleanups: Array<() => Promise<unknown> | unknown> = [];
  const slots: Slot[] = [];
  const metricPools = new Map<string, Pool>();
  let stopped = false;
  const shutdown = async () => {
    if (stopped) return;
    stopped = true;
    for (const c of cleanups.reverse()) {
      try { await c(); } catch { /* keep stopping the rest */ }
    }
  };
  stopAll = shutdown;
  try {
    const nats = await startNats({ nodes: o.nats });
    cleanups.push(() => nats.stop());
    const origin = await startSoakOrigin(o.seed, o.groups, o.bodyScale);
    cleanups.push(() => origin.close());
    cleanups.push(async () => { for (const s of slots) await s.sc.kill(); });
    cleanups.push(() => Promise.all([...metricPools.values()].map((p) => p.destroy())));
    const cluster = uniqueCluster('soak');
    const env = (id: string): Record<string, string> => ({
      ...clusterEnv({ natsUrls: nats.urls, upstream: origin.url }, cluster),
      SIDECACHE_NODE_ID: id,
      SIDECACHE_MAX_BYTES: String(o.maxBytes),
      SIDECACHE_HOT_MAX_BYTES: String(o.hotBytes),
      SIDECACHE_INVAL_HISTORY_BYTES: String(o.historyBytes),
      SIDECACHE_MAX_ENTRY_BYTES: String(Math.min(o.maxBytes, 1024 * 1024)),
      // The log's streams bounded too: the soak is about the sidecars, not NATS's disk.
      SIDECACHE_FILLS_MAX_BYTES: String(64 * 1024 * 1024),
      SIDECACHE_INVAL_MAX_BYTES: String(16 * 1024 * 1024),
      SIDECACHE_LOG_LEVEL: 'error',
      ...(o.mallocArenaMax > 0 ? { MALLOC_ARENA_MAX: String(o.mallocArenaMax) } : {}),
    });
    let slowestStartMs = 0;
    const start = async (id: string, restartOf?: SidecarProcess): Promise<SidecarProcess> => {
      const began = performance.now();
      const ports = restartOf === undefined ? undefined : { listen: portOf(restartOf.url), admin: portOf(restartOf.adminUrl), peer: portOf(restartOf.peerUrl) };
      const sc = await startSidecar({ env: restartOf?.env ?? env(id), timeoutMs: 60_000, ports });
      slowestStartMs = Math.max(slowestStartMs, performance.now() - began);
      return sc;
    };
    // One by one: concurrent starts on two busy cores can outlast the ready timeout.
    for (let i = 0; i < 3; i++) slots.push(new Slot(`s${i}`, await start(`s${i}`), true));
    if (!await waitForRing(slots, 3, 60_000)) throw new Error('the 3 sidecars did not agree on a ring within 60 s');

    let t0 = Date.now();
    const now = () => Date.now() - t0;
    let sampleFailures = 0;
    const natsPorts = new Set(nats.urls.map(portOf));
    // Sidecars run this process's node: its file pages are told apart from other files in /proc/PID/smaps.
    const executable = realpathSync(process.execPath);
    const metricsOf = async (s: Slot): Promise<string> => {
      let p = metricPools.get(s.adminUrl);
      if (p === undefined) metricPools.set(s.adminUrl, p = new Pool(s.adminUrl, { connections: 1, headersTimeout: 5000, bodyTimeout: 5000 }));
      const r = await p.request({ path: '/metrics', method: 'GET', signal: AbortSignal.timeout(5000) });
      return r.body.text();
    };
    /** One reading of every sidecar that is up; that of one stopped or restarted meanwhile is dropped. */
    const sampleOnce = async (): Promise<Sample[]> => {
      const tcp = tcpSockets();
      const out: Sample[] = [];
      await Promise.all(slots.filter((s) => s.state === 'up').map(async (s) => {
        const { incarnation, changes } = s;
        try {
          const text = await metricsOf(s);
          const rss = readRss(s.sc.proc.pid);
          const fds = metricOf(text, 'sidecache_process_process_open_fds');
          const handles = metricOf(text, 'sidecache_process_nodejs_active_handles_total');
          if (s.changes !== changes || rss === undefined || fds === undefined || handles === undefined) { sampleFailures++; return; }
          const memory: Record<string, number> = {};
          for (const [k, name] of Object.entries(MEMORY_METRICS)) memory[k] = metricOf(text, `sidecache_process_${name}`) ?? Number.NaN;
          const kinds = fdKinds(s.sc.proc.pid!, {
            listen: portOf(s.url), admin: portOf(s.adminUrl), peer: portOf(s.sc.peerUrl), origin: portOf(origin.url),
            peers: new Set(slots.filter((x) => x !== s).map((x) => portOf(x.sc.peerUrl))), nats: natsPorts,
          }, tcp);
          out.push({
            t: now(), member: s.id, incarnation, rssBytes: rss, fds, handles,
            resources: metricOf(text, 'sidecache_process_nodejs_active_resources_total'),
            cacheBytes: metricOf(text, 'sidecache_cache_bytes'), hotBytes: metricOf(text, 'sidecache_hot_bytes'),
            historyBytes: metricOf(text, 'sidecache_inval_history_bytes'), memory, fdKinds: kinds,
            maps: readResidentMaps(s.sc.proc.pid, executable),
          });
        } catch {
          sampleFailures++;
        }
      }));
      return out;
    };

    // The idle base: RSS after start-up, before any traffic (the mean of three readings a second apart).
    await sleep(2000);
    const idleRss: Record<string, number> = {};
    const idleDetail: Record<string, Sample> = {};
    for (let k = 0; k < 3; k++) {
      for (const x of await sampleOnce()) {
        idleRss[x.member] = (idleRss[x.member] ?? 0) + x.rssBytes / 3;
        idleDetail[x.member] = x;
      }
      await sleep(1000);
    }
    if (Object.keys(idleRss).length !== 3) throw new Error('could not read the idle RSS of every sidecar');

    t0 = Date.now();
    for (const s of slots) s.readyAt.push(-1);
    const samples: Sample[] = [];
    const sampler = (async () => {
      for (let n = 0; n < Math.ceil(D / tm.sampleEveryMs) + 2 && now() <= D; n++) {
        const due = n * tm.sampleEveryMs;
        if (due > now()) await sleep(due - now());
        samples.push(...await sampleOnce());
      }
    })();

    const load = new Load({
      seed: o.seed, ratePerSec: o.rate, maxInFlight: 256, requestTimeoutMs: 15_000, origin, groups: o.groups, targets: () => slots,
      purgeAllAt: purgeAllTimes(D, tm).map((t) => t0 + t),
    });
    cleanups.push(() => load.close());
    const loadDone = load.run(t0 + D);

    // Membership changes, in turns, between the first window and the last (see USAGE).
    const events: SoakEvent[] = [];
    const lastWindowFrom = D - tm.windowMs;
    const gateWindows = tm.windowMs >= 60_000;
    const joinAndLeave = async (id: string): Promise<void> => {
      const join: SoakEvent = { kind: 'join', member: id, at: now() };
      events.push(join);
      const j = new Slot(id, await start(id), false);
      j.readyAt.push(now());
      slots.push(j);
      if (!await waitForRing(slots.filter((x) => x.state === 'up'), 4, 30_000)) join.note = 'no ring of 4 within 30 s';
      join.doneAt = now();
      await sleep(tm.holdMs);
      const leave: SoakEvent = { kind: 'leave', member: id, at: now() };
      events.push(leave);
      j.state = 'leaving';
      j.changes++;
      await sleep(500); // requests already sent to it finish; it drains the rest itself
      if (await Promise.race([j.sc.stop().then(() => false), sleep(20_000).then(() => true)])) {
        leave.note = 'no exit within 20 s of SIGTERM: killed';
        await j.sc.kill();
      }
      j.state = 'down';
      await load.forget(j);
      await metricPools.get(j.adminUrl)?.destroy();
      metricPools.delete(j.adminUrl);
      if (!await waitForRing(slots.filter((x) => x.base), 3, 30_000)) leave.note = 'no ring of 3 within 30 s';
      leave.doneAt = now();
      await sleep(tm.settleMs);
    };
    const restart = async (s: Slot): Promise<void> => {
      const e: SoakEvent = { kind: 'restart', member: s.id, at: now() };
      events.push(e);
      s.state = 'down';
      s.changes++;
      await s.sc.kill();
      await sleep(tm.downMs);
      s.sc = await start(s.id, s.sc);
      s.incarnation++;
      s.readyAt.push(now());
      load.purgeAllAt(t0 + restartPurgeAll(now(), tm));
      s.state = 'up';
      s.changes++;
      e.doneAt = now();
      if (e.doneAt - e.at > 15_000) e.note = `ready only ${((e.doneAt - e.at) / 1000).toFixed(1)} s after the kill`;
      // Its own warm-up and first window: nothing else changes meanwhile.
      await sleep(tm.warmMs + tm.windowMs);
    };
    const membership = (async () => {
      await sleep(Math.max(0, tm.warmMs + tm.windowMs - now()));
      let joins = 0;
      let restarts = 0;
      let skippedInARow = 0;
      for (let turn = 0; turn < 1000 && now() < lastWindowFrom && skippedInARow < 2; turn++) {
        if (turn % 2 === 0) {
          const id = `j${joins + 1}`;
          if (now() + slowestStartMs + tm.holdMs + 1500 + tm.settleMs > lastWindowFrom) {
            events.push({ kind: 'skipped', member: id, at: now(), note: 'join and leave: would not be over before the last window' });
            skippedInARow++;
            continue;
          }
          joins++;
          await joinAndLeave(id);
        } else {
          // s2 and s1 in turns: s0 lives through the whole run, one process compared over all of it.
          const s = slots.filter((x) => x.base)[2 - (restarts % 2)]!;
          // Its own first window must end before the last one (in a short run, before the end):
          // the others' last window then has no member warming up.
          if (now() + tm.downMs + slowestStartMs + tm.warmMs + tm.windowMs > (gateWindows ? lastWindowFrom : D)) {
            events.push({ kind: 'skipped', member: s.id, at: now(), note: 'restart: its first window would not end in time' });
            skippedInARow++;
            continue;
          }
          restarts++;
          await restart(s);
        }
        skippedInARow = 0;
      }
    })();

    await Promise.all([loadDone, membership, sampler]);
    // The quiet state after the traffic: the load's connections closed, every keep-alive
    // connection between sidecars and to the origin lapsed (peers keep one 10 s, the origin
    // pool 4 s). Read until each sidecar is back to its idle counts, or for 30 s at most.
    await load.close();
    const quiet: Record<string, Sample> = {};
    const quietFrom = now();
    for (let n = 0; n < 60 && now() - quietFrom < 30_000; n++) {
      await sleep(1000);
      for (const x of await sampleOnce()) quiet[x.member] = x;
      const base = slots.filter((x) => x.base);
      if (now() - quietFrom >= 12_000 && base.every((x) => quiet[x.id] !== undefined && quiet[x.id]!.fds <= idleDetail[x.id]!.fds && quiet[x.id]!.handles <= idleDetail[x.id]!.handles)) break;
    }
    const quietAfterMs = now() - quietFrom;
    const counts = (x: Record<string, Sample>) => Object.fromEntries(Object.entries(x).map(([m, c]) => [m, { fds: c.fds, handles: c.handles }]));
    const spec: JudgeSpec = {
      durationMs: D, warmMs: tm.warmMs, windowMs: tm.windowMs, budgetBytes: o.maxBytes + o.hotBytes + o.historyBytes,
      rssFactor: 1.25, tolerance: 0.10, idleRss, compared: slots.filter((s) => s.base).map((s) => s.id),
      readyAt: Object.fromEntries(slots.map((s) => [s.id, s.readyAt])),
      gateWindows, idleCounts: counts(idleDetail), quietCounts: counts(quiet),
    };
    const v = judge(samples, spec);
    const extra = extraChecks(o, spec.compared, samples, load.stats, events, lastWindowFrom);
    const file = o.out ?? join(mkdtempSync(join(tmpdir(), 'sidecache-soak-')), 'samples.json');
    writeFileSync(file, JSON.stringify({
      options: o, timing: tm, spec, events, load: load.stats, origin: origin.stats, sampleFailures, verdict: { ...v, failed: [...v.failed] },
      extra, idleDetail, quiet, quietAfterMs, samples,
    }));
    report({ o, tm, spec, v, extra, events, load: load.stats, origin: origin.stats, sampleFailures, samples, idleDetail, quiet, quietAfterMs, file });
    return failedChecks({ v, extra }).length === 0 ? 0 : 1;
  } finally {
    await shutdown();
  }
}

async function main(): Promise<number> {
  let o: SoakOptions;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    if (err.message !== '') console.error(`soak: ${err.message}`);
    console.error(USAGE);
    return err.message === '' ? 0 : 2;
  }
  if (o.judge !== undefined) {
    const saved = JSON.parse(readFileSync(o.judge, 'utf8')) as { spec: JudgeSpec; samples: Sample[] };
    const v = judge(saved.samples, saved.spec);
    for (const f of v.failures) console.log(`  FAILED: ${f}`);
    console.log(v.ok ? 'soak: ok' : `soak: FAILED: ${[...v.failed].join(', ')}`);
    return v.ok ? 0 : 1;
  }
  // A run far over its time is stuck: stop what it started and give up.
  const budgetMs = o.durationMs + 300_000;
  const watchdog = setTimeout(() => {
    console.error(`soak: overran ${budgetMs / 1000} s; stopping`);
    void (stopAll?.() ?? Promise.resolve()).finally(() => process.exit(2));
  }, budgetMs);
  try {
    return await run(o);
  } finally {
    clearTimeout(watchdog);
  }
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`soak: ${sig}: stopping the cluster`);
    void (stopAll?.() ?? Promise.resolve()).finally(() => process.exit(130));
  });
}

main().then((code) => { process.exitCode = code; }, (err: unknown) => {
  console.error('soak: could not run:', err);
  process.exitCode = 2;
});
