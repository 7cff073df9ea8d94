// Real nats-server processes: free loopback ports, a temporary store directory per node,
// JetStream ready before startNats resolves. Never the shared server on 4222. Processes are
// stopped by PID through processes.ts (so its exit hook and watchdog kill them too).
import { execFileSync } from 'node:child_process';
import { accessSync, constants, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type NodeConnectionOptions } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { freePorts } from './ports.ts';
import { makeTempDir, removeTempDir, sleep, startProcess, which, type Placement, type Proc } from './processes.ts';

export const NATS_SERVER_BIN = process.env.NATS_SERVER_BIN ?? which('nats-server') ?? '/usr/sbin/nats-server';

export function natsAvailable(): boolean {
  try {
    accessSync(NATS_SERVER_BIN, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** `nats-server: v2.x.y`, or 'missing'. */
export function natsVersion(): string {
  if (!natsAvailable()) return 'missing';
  try {
    return execFileSync(NATS_SERVER_BIN, ['--version'], { encoding: 'utf8', timeout: 10_000 }).trim().split('\n')[0] || 'unknown';
  } catch {
    return 'unknown';
  }
}

export interface NatsOptions {
  readonly nodes: number;
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
  /** Write node i's log to `<logDir>/nats<i>.log` (default: keep its last lines in memory). */
  readonly logDir?: string;
  readonly placement?: Placement;
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
  /** The last lines node i wrote (for assertion messages). */
  logs(i: number): string;
  /** The PID of node i's process while it runs (to pause it with SIGSTOP, for instance). */
  pid(i: number): number | undefined;
}

interface Node {
  readonly name: string;
  readonly clientPort: number;
  readonly clusterPort: number;
  readonly dir: string;
  h: Proc | undefined;
}

function assertBinary(): void {
  if (!natsAvailable()) {
    throw new Error(
      `nats-server not found or not executable at ${NATS_SERVER_BIN} (set NATS_SERVER_BIN): ` +
        'integration tests need a real nats-server >= 2.9 and are never skipped',
    );
  }
}

export async function startNats(opts: NatsOptions): Promise<NatsServers> {
  assertBinary();
  // A port picked free can be taken by someone else before nats-server binds it: retry
  // the whole start with new ports a few times.
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(opts);
    } catch (err) {
      lastErr = err;
    }
  }
  throw lastErr;
}

async function startOnce(opts: NatsOptions): Promise<NatsServers> {
  const count = opts.nodes;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
  const client = opts.client ?? {};
  const root = makeTempDir('nats');
  const configFile = join(root, 'server.conf');
  if (opts.config !== undefined) writeFileSync(configFile, opts.config);
  const ports = await freePorts(count * 2);
  const clusterName = `sc_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const nodes: Node[] = Array.from({ length: count }, (_, i) => ({
    name: `n${i}`,
    clientPort: ports[i * 2]!,
    clusterPort: ports[i * 2 + 1]!,
    dir: join(root, `n${i}`),
    h: undefined,
  }));

  function args(n: Node): string[] {
    const a = ['-a', '127.0.0.1', '-p', String(n.clientPort), '-js', '-sd', n.dir, '-n', n.name];
    if (opts.config !== undefined) a.unshift('-c', configFile);
    if (count > 1) {
      const routes = nodes
        .filter((o) => o !== n)
        .map((o) => `nats://127.0.0.1:${o.clusterPort}`)
        .join(',');
      a.push('--cluster_name', clusterName, '--cluster', `nats://127.0.0.1:${n.clusterPort}`, '--routes', routes);
      if (opts.noAdvertise === true) a.push('--no_advertise=true');
    }
    return a;
  }

  async function spawnNode(n: Node, i: number): Promise<void> {
    n.h = startProcess({
      name: `nats-server ${n.name}`, cmd: NATS_SERVER_BIN, args: args(n), placement: opts.placement,
      ...(opts.logDir === undefined ? { keepChars: 64 * 1024 } : { logPath: join(opts.logDir, `nats${i}.log`), group: true }),
    });
    await n.h.waitForOutput('Server is ready', readyTimeoutMs);
  }

  const isRunning = (i: number) => nodes[i]!.h?.isAlive() === true;
  async function stopNode(i: number): Promise<void> {
    await nodes[i]!.h?.stop(5_000);
  }

  let stopped = false;
  const servers: NatsServers = {
    urls: nodes.map((n) => `nats://127.0.0.1:${n.clientPort}`),
    names: nodes.map((n) => n.name),
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all(nodes.map((_, i) => stopNode(i)));
      removeTempDir(root);
    },
    kill(i: number) {
      nodes[i]!.h?.signal('SIGKILL');
    },
    stopNode,
    async restart(i: number) {
      const n = nodes[i]!;
      await n.h?.kill();
      await spawnNode(n, i);
      // JetStream needs a majority of the cluster for its meta leader: with fewer nodes up
      // (all stopped, restarted one by one) only the process can be ready. Otherwise wait
      // until a stream with one replica per running node can be created through node i.
      const running = nodes.filter((_, j) => isRunning(j)).length;
      if (running > count / 2) await waitJetStream([servers.urls[i]!], running, readyTimeoutMs, client);
    },
    isRunning,
    logs(i: number) {
      return nodes[i]!.h?.tail(200) ?? '';
    },
    pid(i: number) {
      return isRunning(i) ? nodes[i]!.h!.pid : undefined;
    },
  };

  try {
    await Promise.all(nodes.map((n, i) => spawnNode(n, i)));
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
