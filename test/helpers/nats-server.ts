// Real nats-server processes for integration tests: free loopback ports, a temporary store
// directory per node, JetStream ready before startNats resolves. Never the shared server on
// 4222. Processes are stopped by PID; if the test process dies, an exit hook and a watchdog
// shell (which outlives even SIGKILL of the test process) kill them.

import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NodeConnectionOptions } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';

export const NATS_SERVER_BIN = process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server';

export interface NatsOptions {
  readonly nodes: 1 | 3;
  /** Milliseconds to wait for each start and for JetStream to be ready. Default 30 s. */
  readonly readyTimeoutMs?: number;
  /** Do not tell clients about the other servers of the cluster (`--no_advertise`): a client
   *  then only ever connects to the URLs it was given, e.g. through a relay of a test's own. */
  readonly noAdvertise?: boolean;
  /** More server configuration (a `tls {}` block, `operator`/`resolver` settings), written to
   *  a file given with `-c`; the command-line flags above still set ports, store and cluster. */
  readonly config?: string;
  /** What a client needs to get in (TLS, credentials): the readiness check connects with it. */
  readonly client?: Partial<NodeConnectionOptions>;
}

export interface NatsServers {
  /** Client URLs, one per node, `nats://127.0.0.1:<port>`. */
  readonly urls: readonly string[];
  /** Server names (`-n`), one per node, as JetStream names a stream's leader and replicas. */
  readonly names: readonly string[];
  /** Stop every node (SIGTERM, SIGKILL after 5 s) and delete the store directories. */
  stop(): Promise<void>;
  /** SIGKILL node i (no shutdown, no flush): a crash. */
  kill(i: number): void;
  /** Graceful stop of node i (SIGTERM), waiting for its exit. */
  stopNode(i: number): Promise<void>;
  /** Start node i again on the same ports and store. Resolves when JetStream answers through
   *  it, or, while fewer than a majority of nodes run, when the process is ready. */
  restart(i: number): Promise<void>;
  /** Whether node i's process is running. */
  isRunning(i: number): boolean;
  /** The last lines node i wrote to stderr (for assertion messages). */
  logs(i: number): string;
  /** The PID of node i's process while it runs (to pause it with SIGSTOP, for instance). */
  pid(i: number): number | undefined;
}

interface Node {
  readonly name: string;
  readonly clientPort: number;
  readonly clusterPort: number;
  readonly dir: string;
  proc: ChildProcess | undefined;
  exited: Promise<void>;
  log: string[];
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: SIGKILL whatever is still running.
  process.on('exit', () => {
    for (const p of live) {
      try {
        p.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

function assertBinary(): void {
  try {
    accessSync(NATS_SERVER_BIN, constants.X_OK);
  } catch (err) {
    throw new Error(
      `nats-server not found or not executable at ${NATS_SERVER_BIN} (set NATS_SERVER_BIN): ` +
        'integration tests need a real nats-server >= 2.9 and are never skipped',
      { cause: err },
    );
  }
}

async function freePorts(n: number): Promise<number[]> {
  // Hold all listeners open at once so that the n ports are distinct.
  const servers = await Promise.all(
    Array.from({ length: n }, () => {
      return new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
        const s = createServer();
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve(s));
      });
    }),
  );
  const ports = servers.map((s) => {
    const addr = s.address();
    if (addr === null || typeof addr === 'string') throw new Error('unexpected listener address');
    return addr.port;
  });
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function startNats(opts: NatsOptions): Promise<NatsServers> {
  assertBinary();
  installExitHook();
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
  // A port picked free can be taken by someone else before nats-server binds it: retry
  // the whole start with new ports a few times.
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(opts.nodes, readyTimeoutMs, opts.noAdvertise === true, opts.config, opts.client ?? {});
    } catch (err) {
      lastErr = err;
    }
  }
  throw lastErr;
}

async function startOnce(count: 1 | 3, readyTimeoutMs: number, noAdvertise: boolean, config: string | undefined, client: Partial<NodeConnectionOptions>): Promise<NatsServers> {
  const root = mkdtempSync(join(tmpdir(), 'sidecache-nats-'));
  const configFile = join(root, 'server.conf');
  if (config !== undefined) writeFileSync(configFile, config);
  const ports = await freePorts(count * 2);
  const clusterName = `sc_test_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const nodes: Node[] = Array.from({ length: count }, (_, i) => ({
    name: `n${i}`,
    clientPort: ports[i * 2]!,
    clusterPort: ports[i * 2 + 1]!,
    dir: join(root, `n${i}`),
    proc: undefined,
    exited: Promise.resolve(),
    log: [],
  }));
  const pidFile = join(root, 'pids');

  function writePids(): void {
    const pids = nodes.flatMap((n) => (n.proc?.pid !== undefined && n.proc.exitCode === null ? [n.proc.pid] : []));
    writeFileSync(pidFile, pids.join(' '));
  }

  function args(n: Node): string[] {
    const a = ['-a', '127.0.0.1', '-p', String(n.clientPort), '-js', '-sd', n.dir, '-n', n.name];
    if (config !== undefined) a.unshift('-c', configFile);
    if (count > 1) {
      const routes = nodes
        .filter((o) => o !== n)
        .map((o) => `nats://127.0.0.1:${o.clusterPort}`)
        .join(',');
      a.push('--cluster_name', clusterName, '--cluster', `nats://127.0.0.1:${n.clusterPort}`, '--routes', routes);
      if (noAdvertise) a.push('--no_advertise=true');
    }
    return a;
  }

  async function spawnNode(n: Node): Promise<void> {
    n.log = [];
    const proc = spawn(NATS_SERVER_BIN, args(n), { stdio: ['ignore', 'ignore', 'pipe'] });
    n.proc = proc;
    live.add(proc);
    n.exited = new Promise<void>((resolve) => {
      proc.once('exit', () => {
        live.delete(proc);
        resolve();
      });
    });
    writePids();
    const ready = new Promise<void>((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(
        () => reject(new Error(`${n.name}: nats-server not ready within ${readyTimeoutMs} ms\n${n.log.join('\n')}`)),
        readyTimeoutMs,
      );
      proc.stderr!.setEncoding('utf8');
      proc.stderr!.on('data', (chunk: string) => {
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          n.log.push(line);
          if (n.log.length > 200) n.log.shift();
          if (line.includes('Server is ready')) {
            clearTimeout(timer);
            resolve();
          }
        }
      });
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${n.name}: nats-server exited (code ${code}, signal ${signal})\n${n.log.join('\n')}`));
      });
      proc.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    await ready;
  }

  // A detached shell that kills the servers and removes the store once this process is
  // gone, however it died. stop() kills the watchdog itself.
  const watchdog = spawn(
    'sh',
    [
      '-c',
      `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; ` +
        `kill -9 $(cat '${pidFile}') 2>/dev/null; rm -rf '${root}'`,
    ],
    { detached: true, stdio: 'ignore' },
  );
  watchdog.unref();

  let stopped = false;
  async function stopNode(i: number): Promise<void> {
    const n = nodes[i]!;
    const proc = n.proc;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    const killer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
    await n.exited;
    clearTimeout(killer);
    writePids();
  }

  const servers: NatsServers = {
    urls: nodes.map((n) => `nats://127.0.0.1:${n.clientPort}`),
    names: nodes.map((n) => n.name),
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all(nodes.map((_, i) => stopNode(i)));
      try {
        if (watchdog.pid !== undefined) process.kill(watchdog.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      rmSync(root, { recursive: true, force: true });
    },
    kill(i: number) {
      const proc = nodes[i]!.proc;
      if (proc !== undefined && proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    },
    stopNode,
    async restart(i: number) {
      const n = nodes[i]!;
      if (n.proc !== undefined && n.proc.exitCode === null && n.proc.signalCode === null) {
        n.proc.kill('SIGKILL');
      }
      await n.exited;
      await spawnNode(n);
      // JetStream needs a majority of the cluster for its meta leader: with fewer nodes up
      // (all stopped, restarted one by one) only the process can be ready. Otherwise wait
      // until a stream with one replica per running node can be created through node i.
      const running = nodes.filter((_, j) => servers.isRunning(j)).length;
      if (running > count / 2) await waitJetStream([servers.urls[i]!], running, readyTimeoutMs, client);
    },
    isRunning(i: number) {
      const proc = nodes[i]!.proc;
      return proc !== undefined && proc.exitCode === null && proc.signalCode === null;
    },
    logs(i: number) {
      return nodes[i]!.log.join('\n');
    },
    pid(i: number) {
      return servers.isRunning(i) ? nodes[i]!.proc!.pid : undefined;
    },
  };

  try {
    await Promise.all(nodes.map((n) => spawnNode(n)));
    await waitJetStream(servers.urls, count, readyTimeoutMs, client);
  } catch (err) {
    await servers.stop();
    throw err;
  }
  return servers;
}

/** Loop until JetStream can create (and delete) a stream with `replicas` replicas: for a
 *  cluster this means the meta leader is elected and enough peers are current. */
async function waitJetStream(urls: readonly string[], replicas: number, timeoutMs: number, client: Partial<NodeConnectionOptions> = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    let nc;
    try {
      nc = await connect({ ...client, servers: [...urls], timeout: 2_000, reconnect: false });
      const jsm = await jetstreamManager(nc, { timeout: 2_000 });
      const name = `READY_${Math.random().toString(36).slice(2, 10)}`;
      await jsm.streams.add({ name, subjects: [`ready.${name}`], num_replicas: replicas, storage: 'memory' });
      await jsm.streams.delete(name);
      return;
    } catch (err) {
      lastErr = err;
      await sleep(200);
    } finally {
      await nc?.close().catch(() => undefined);
    }
  }
  throw new Error(`JetStream not ready within ${timeoutMs} ms`, { cause: lastErr });
}
