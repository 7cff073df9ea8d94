// Cluster helpers for the cluster-* scenarios: nats-server and sidecars of support/ (each
// sidecar pinned to a core, its log in the scenario's directory), an in-process counting and
// versioned origin, purges through the admin API, and bounded client load loops.
import fs from 'node:fs';
import path from 'node:path';
import { LOAD_CPU, SERVER_CPU, onCpu } from './cpu.js';
import { sleep } from './processes.js';
import { startNats, natsVersion } from '../../support/nats-server.ts';
import { startCluster, clusterEnv, clusterInfo, waitForRing, uniqueCluster } from '../../support/cluster.ts';
import { startSidecar, ADMIN_TOKEN, SIDECACHE_MAIN } from '../../support/sidecar.ts';
import { serveLoopback } from '../../support/origin.ts';

export { clusterInfo, uniqueCluster };

export function sidecacheBuilt() {
  return fs.existsSync(SIDECACHE_MAIN);
}

/** A 3-node (or `nodes`) nats-server cluster pinned to `cpu`, logs in `tmpDir`; adds `version`. */
export async function startNatsCluster({ tmpDir, nodes = 3, cpu = LOAD_CPU }) {
  const nats = await startNats({ nodes, logDir: tmpDir, placement: onCpu(cpu) });
  return Object.assign(nats, { version: natsVersion() });
}

/** The fields the scenarios use of a sidecar of support/sidecar.ts. */
function benchSidecar(sc) {
  const port = Number(new URL(sc.url).port);
  return {
    id: sc.id,
    name: sc.id,
    port,
    adminPort: Number(new URL(sc.adminUrl).port),
    peerPort: Number(new URL(sc.peerUrl).port),
    adminUrl: sc.adminUrl,
    url: (p) => `http://127.0.0.1:${port}${p}`,
    pids: [sc.handle.pid],
    handle: sc.handle,
    env: sc.env,
    stop: () => sc.handle.stop(5000),
    /** SIGKILL: a crash. Resolves once the process is gone. */
    kill: () => sc.kill(),
  };
}

/** Benchmarks run with the production peer and purge timeouts (tests shorten them). */
function sidecarOptions({ tmpDir, id, extraEnv = {}, cpu = SERVER_CPU }) {
  return {
    env: { ...(id === undefined ? {} : { SIDECACHE_NODE_ID: id }), ...extraEnv },
    timeoutMs: 30_000,
    logPath: path.join(tmpDir, `${id ?? `sc-${Date.now()}-${Math.random().toString(36).slice(2, 6)}`}.log`),
    placement: onCpu(cpu),
  };
}

/**
 * Starts one sidecar of cluster `cluster` pinned to `cpu` (server core). Ready when admin
 * /readyz is 200. Returns { id, port, adminPort, peerPort, url(p), adminUrl, pids, handle, stop(), kill() }.
 */
export async function startClusterSidecar({ tmpDir, id, upstream, natsUrls, cluster, extraEnv = {}, cpu = SERVER_CPU }) {
  const o = sidecarOptions({ tmpDir, id, extraEnv, cpu });
  const sc = await startSidecar({ ...o, env: { ...clusterEnv({ natsUrls, upstream, shortTimeouts: false }, cluster), ...o.env } });
  return benchSidecar(sc);
}

/** Starts n sidecars at once (they join concurrently) and waits for a ring of n agreed by all. */
export async function startClusterSidecars(n, { tmpDir, upstream, natsUrls, cluster, extraEnv, cpu, ids }) {
  const { sidecars } = await startCluster(n, { natsUrls, upstream, cluster, shortTimeouts: false, ringTimeoutMs: 20_000 },
    (i) => sidecarOptions({ tmpDir, id: ids?.[i], extraEnv, cpu }));
  return sidecars.map(benchSidecar);
}

export { waitForRing };

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
  const answer = (req, res) => {
    const head = `${req.url} v${state.version} `;
    const body = head.length >= bytes ? head : head + '.'.repeat(bytes - head.length);
    const tags = tagsOf(req.url);
    const headers = { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'cache-control': 'public, max-age=3600' };
    if (tags.length > 0) headers['surrogate-key'] = tags.join(' ');
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  const server = await serveLoopback((req, res) => {
    state.requests++;
    if (req.url === '/healthz') return void res.writeHead(200).end('ok');
    state.perPath?.set(req.url, (state.perPath.get(req.url) ?? 0) + 1);
    if (delayMs > 0) setTimeout(answer, delayMs, req, res);
    else answer(req, res);
  }, 65_000);
  return {
    port: server.port,
    url: server.url,
    state,
    get requests() {
      return state.requests;
    },
    bump() {
      return ++state.version;
    },
    stop: server.close,
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
