// Cluster helpers for the cluster-* scenarios (the plain-JS twin of test/helpers/cluster.ts):
// sidecar processes on a real NATS, an in-process counting and versioned origin, purges through
// the admin API, and bounded client load loops.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { SERVER_CPU } from './cpu.js';
import { freePorts } from './ports.js';
import { startProcess, stopProcess, sleep } from './processes.js';
import { waitForOk } from './http.js';
import { SIDECACHE_MAIN, REPO_ROOT } from './servers.js';

export const CLUSTER_SECRET = 'bench-cluster-secret-0123456789';
export const ADMIN_TOKEN = 'bench-admin-token-0123456789';

export function sidecacheBuilt() {
  return fs.existsSync(SIDECACHE_MAIN);
}

/** A unique cluster name: streams and buckets never collide on a shared NATS. */
export function uniqueCluster(prefix = 'b') {
  return `${prefix}${randomBytes(4).toString('hex')}`;
}

/**
 * Starts one sidecar of cluster `cluster`: node dist/main.js pinned to `cpu` (server core), with
 * only the SIDECACHE_* settings below (those of the calling shell are dropped). Ready when admin
 * /readyz is 200. Returns { id, port, adminPort, peerPort, url(p), adminUrl, pids, handle, stop(), kill() }.
 */
export async function startClusterSidecar({ tmpDir, id, upstream, natsUrls, cluster, extraEnv = {}, cpu = SERVER_CPU }) {
  const [port, adminPort, peerPort] = await freePorts(3);
  const nodeId = id ?? `sc-${port}`;
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SIDECACHE_') && k !== 'NODE_OPTIONS') env[k] = v;
  Object.assign(env, {
    SIDECACHE_UPSTREAM: upstream,
    SIDECACHE_LISTEN: `127.0.0.1:${port}`,
    SIDECACHE_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
    SIDECACHE_PEER_LISTEN: `127.0.0.1:${peerPort}`,
    SIDECACHE_NODE_ID: nodeId,
    SIDECACHE_NATS_URL: natsUrls.join(','),
    SIDECACHE_CLUSTER: cluster,
    SIDECACHE_CLUSTER_SECRET: CLUSTER_SECRET,
    SIDECACHE_ADMIN_TOKEN: ADMIN_TOKEN,
    SIDECACHE_HEARTBEAT_INTERVAL: '300ms',
    SIDECACHE_HEARTBEAT_TTL: '2s',
    SIDECACHE_LOG_LEVEL: 'warn',
    ...extraEnv,
  });
  const h = startProcess({ name: nodeId, cmd: process.execPath, args: [SIDECACHE_MAIN], cwd: REPO_ROOT, env, cpu, logPath: path.join(tmpDir, `${nodeId}.log`) });
  try {
    await waitForOk(`http://127.0.0.1:${adminPort}/readyz`, { h, timeoutMs: 30_000 });
  } catch (err) {
    await stopProcess(h);
    throw err;
  }
  return {
    id: nodeId,
    name: nodeId,
    port,
    adminPort,
    peerPort,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    url: (p) => `http://127.0.0.1:${port}${p}`,
    pids: [h.pid],
    handle: h,
    env,
    stop: () => stopProcess(h),
    /** SIGKILL: a crash. Resolves once the process is gone. */
    async kill() {
      if (!h.isAlive()) return;
      try {
        process.kill(h.pid, 'SIGKILL');
      } catch {
        // gone
      }
      await h.exited;
    },
  };
}

/** Starts n sidecars at once (they join concurrently) and waits for a ring of n agreed by all. */
export async function startClusterSidecars(n, opts) {
  const started = await Promise.allSettled(Array.from({ length: n }, (_, i) => startClusterSidecar({ ...opts, id: opts.ids?.[i] })));
  const ok = started.filter((s) => s.status === 'fulfilled').map((s) => s.value);
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) {
    for (const s of ok) await s.stop();
    throw failed.reason;
  }
  await waitForRing(ok, n);
  return ok;
}

export async function getJson(url, timeoutMs = 3000) {
  const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return r.json();
}

export function clusterInfo(sc) {
  return getJson(`${sc.adminUrl}/cluster`);
}

/** Waits until every given sidecar reports the same ring epoch with `members` members. Returns the epoch. */
export async function waitForRing(sidecars, members, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const infos = await Promise.all(sidecars.map((s) => clusterInfo(s).catch(() => undefined)));
    if (infos.every((i) => i !== undefined)) {
      const epochs = new Set(infos.map((i) => i.ringEpoch));
      if (epochs.size === 1 && infos.every((i) => i.ring.length === members)) return infos[0].ringEpoch;
      last = infos.map((i) => `${i.ringEpoch}:${i.ring.length}`).join(' ');
    }
    await sleep(100);
  }
  throw new Error(`no agreed ring of ${members} members within ${timeoutMs} ms (epoch:members ${last})`);
}

/** POST /purge; resolves { ms, status, body } (ms from the call to the answer). */
export async function purge(sc, what, timeoutMs = 10_000) {
  const t0 = performance.now();
  const r = await fetch(`${sc.adminUrl}/purge`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(what),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await r.text();
  const ms = performance.now() - t0;
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = { raw: text };
  }
  return { ms, status: r.status, body };
}

/** GET through fetch (keep-alive); resolves { status, headers, body } or throws on network errors. */
export async function get(url, timeoutMs = 5000) {
  const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const body = await r.text();
  return { status: r.status, cacheStatus: r.headers.get('cache-status') ?? '', body };
}

/** Number of `sidecache` entries in a Cache-Status header (1 = served here, 2 = forwarded). */
export function cacheStatusHops(cs) {
  return cs.split(',').filter((p) => /^\s*sidecache\b/i.test(p)).length;
}

/**
 * In-process origin (on the harness's core): GET /<anything> answers a 1 KiB (or `bytes`) body
 * "<path> v<version> ..." with Cache-Control public, max-age=3600 and Surrogate-Key from
 * `tagsOf(path)`. Counts every request (`requests`; per path in `state.perPath` with
 * `countPaths`), answers after `delayMs` (an origin that takes time widens the window in which
 * concurrent misses race) and keeps `version` (bump() before a purge, so a stale body is
 * recognisable).
 */
export async function startVersionedOrigin({ bytes = 1024, tagsOf = () => [], delayMs = 0, countPaths = false } = {}) {
  const state = { requests: 0, version: 1, perPath: countPaths ? new Map() : null };
  const server = http.createServer((req, res) => {
    state.requests++;
    if (req.url === '/healthz') return void res.writeHead(200).end('ok');
    state.perPath?.set(req.url, (state.perPath.get(req.url) ?? 0) + 1);
    if (delayMs > 0) setTimeout(answer, delayMs, req, res);
    else answer(req, res);
  });
  const answer = (req, res) => {
    const head = `${req.url} v${state.version} `;
    const body = head.length >= bytes ? head : head + '.'.repeat(bytes - head.length);
    const tags = tagsOf(req.url);
    const headers = { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'cache-control': 'public, max-age=3600' };
    if (tags.length > 0) headers['surrogate-key'] = tags.join(' ');
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  server.keepAliveTimeout = 65_000;
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = server.address().port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    state,
    get requests() {
      return state.requests;
    },
    bump() {
      return ++state.version;
    },
    async stop() {
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Version number in a body written by startVersionedOrigin, or null. */
export function versionOfBody(body) {
  const m = / v(\d+) /.exec(body);
  return m ? Number(m[1]) : null;
}

/**
 * A bounded client load loop: `workers` concurrent fetch loops, each GETting `nextUrl(i)` with
 * `pauseMs` between requests, until stop(), `maxRequests` in total or `maxMs`. Counts ok (2xx),
 * bad status and network errors. Returns { stats, stop() -> Promise<stats> }.
 */
export function loadLoop({ nextUrl, workers = 3, pauseMs = 2, maxRequests = 1e6, maxMs = 120_000, timeoutMs = 5000 }) {
  const stats = { requests: 0, ok: 0, badStatus: 0, errors: 0, errorSamples: [] };
  let stopped = false;
  const deadline = Date.now() + maxMs;
  const worker = async (w) => {
    while (!stopped && stats.requests < maxRequests && Date.now() < deadline) {
      const url = nextUrl(w);
      stats.requests++;
      try {
        const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
        await r.arrayBuffer();
        if (r.status >= 200 && r.status < 300) stats.ok++;
        else {
          stats.badStatus++;
          if (stats.errorSamples.length < 5) stats.errorSamples.push(`${url}: status ${r.status}`);
        }
      } catch (err) {
        stats.errors++;
        if (stats.errorSamples.length < 5) stats.errorSamples.push(`${url}: ${err.cause?.code ?? err.name}`);
      }
      if (pauseMs > 0) await sleep(pauseMs);
    }
  };
  const all = Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
  return {
    stats,
    async stop() {
      stopped = true;
      await all;
      return stats;
    },
  };
}

/** Runs `fn` over `items` with at most `concurrency` at a time. */
export async function pool(items, concurrency, fn) {
  let next = 0;
  const run = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, run));
}

/** p-th percentile (0-100) of a numeric array (nearest rank). */
export function percentile(values, p) {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}
