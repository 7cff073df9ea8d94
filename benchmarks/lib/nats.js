// A real nats-server cluster for the cluster scenarios (the plain-JS twin of
// test/helpers/nats-server.ts): free loopback ports, a store directory per node in a temp dir,
// processes started and killed by pid through lib/processes.js (so the exit hook kills them too).
// Resolves once every node logged "Server is ready" and JetStream can create an R<n> stream.
import fs from 'node:fs';
import path from 'node:path';
import { freePorts } from './ports.js';
import { startProcess, stopProcess, makeTempDir, sleep } from './processes.js';
import { which } from './install.js';
import { versionOf } from './install.js';

export const NATS_SERVER_BIN = process.env.NATS_SERVER_BIN ?? which('nats-server') ?? '/usr/sbin/nats-server';

export function natsAvailable() {
  try {
    fs.accessSync(NATS_SERVER_BIN, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function natsVersion() {
  return natsAvailable() ? versionOf(NATS_SERVER_BIN, ['--version']) : 'missing';
}

async function waitLogLine(h, text, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!h.isAlive()) throw new Error(`${h.name} exited before "${text}":\n${fs.readFileSync(h.logPath, 'utf8').slice(-2000)}`);
    try {
      if (fs.readFileSync(h.logPath, 'utf8').includes(text)) return;
    } catch {
      // not written yet
    }
    await sleep(50);
  }
  throw new Error(`${h.name}: no "${text}" within ${timeoutMs} ms`);
}

/** Loops until a stream with `replicas` replicas can be created and deleted (meta leader elected). */
async function waitJetStream(urls, replicas, timeoutMs) {
  let connect;
  let jetstreamManager;
  try {
    ({ connect } = await import('@nats-io/transport-node'));
    ({ jetstreamManager } = await import('@nats-io/jetstream'));
  } catch {
    await sleep(3000); // no client library: give the meta leader election time instead
    return;
  }
  const deadline = Date.now() + timeoutMs;
  let lastErr;
  while (Date.now() < deadline) {
    let nc;
    try {
      nc = await connect({ servers: [...urls], timeout: 2000, reconnect: false });
      const jsm = await jetstreamManager(nc, { timeout: 2000 });
      const name = `BENCH_READY_${Math.random().toString(36).slice(2, 10)}`;
      await jsm.streams.add({ name, subjects: [`benchready.${name}`], num_replicas: replicas, storage: 'memory' });
      await jsm.streams.delete(name);
      return;
    } catch (err) {
      lastErr = err;
      await sleep(200);
    } finally {
      await nc?.close().catch(() => undefined);
    }
  }
  throw new Error(`JetStream not ready within ${timeoutMs} ms: ${lastErr?.message ?? lastErr}`);
}

/**
 * Starts `nodes` nats-server processes clustered on loopback, pinned to `cpu`.
 * Returns { urls, pids, version, stop() }.
 */
export async function startNatsCluster({ tmpDir, nodes = 3, cpu = null, readyTimeoutMs = 30_000 }) {
  if (!natsAvailable()) throw new Error(`nats-server not found at ${NATS_SERVER_BIN}`);
  const root = makeTempDir('nats');
  const ports = await freePorts(nodes * 2);
  const clusterName = `bench_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const spec = Array.from({ length: nodes }, (_, i) => ({ name: `nats${i}`, client: ports[2 * i], route: ports[2 * i + 1], dir: path.join(root, `n${i}`) }));
  const handles = spec.map((n) => {
    const args = ['-a', '127.0.0.1', '-p', String(n.client), '-js', '-sd', n.dir, '-n', n.name];
    if (nodes > 1) {
      const routes = spec.filter((o) => o !== n).map((o) => `nats://127.0.0.1:${o.route}`).join(',');
      args.push('--cluster_name', clusterName, '--cluster', `nats://127.0.0.1:${n.route}`, '--routes', routes);
    }
    return startProcess({ name: n.name, cmd: NATS_SERVER_BIN, args, cpu, logPath: path.join(tmpDir, `${n.name}.log`) });
  });
  const urls = spec.map((n) => `nats://127.0.0.1:${n.client}`);
  const stop = async () => {
    await Promise.all(handles.map((h) => stopProcess(h)));
  };
  try {
    await Promise.all(handles.map((h) => waitLogLine(h, 'Server is ready', readyTimeoutMs)));
    await waitJetStream(urls, nodes, readyTimeoutMs);
  } catch (err) {
    await stop();
    throw err;
  }
  return { urls, pids: handles.map((h) => h.pid), version: natsVersion(), stop };
}
