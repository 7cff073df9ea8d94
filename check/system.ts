// The system under test, all real processes on 127.0.0.1: a 3-node nats-server cluster, the
// sidecars (each reaching every NATS server through relays of its own, so that one sidecar's
// link can lag or be cut while its peers are untouched), and the versioned origin. Every
// process started here is stopped by PID in `shutdown`, whatever happened before.
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { clusterEnv, uniqueCluster, waitForRing } from '../support/cluster.js';
import { startNats, type NatsServers } from '../support/nats-server.js';
import { freePort, startSidecar, type SidecarProcess } from '../support/sidecar.js';
import { startTcpGate, type TcpGate } from '../support/tcp-gate.js';
import type { History, Outage } from './history.js';
import { startVersionedOrigin, type VersionedOrigin } from './origin.js';

/** The cluster's timing, short so that a run of a minute sees members dropped and rejoined. */
export const TIMING = {
  heartbeatIntervalMs: 300,
  heartbeatTtlMs: 2_000,
  peerTimeoutMs: 2_000,
  purgeTimeoutMs: 3_000,
  headersTimeoutMs: 5_000,
  maxStaleDetachedMs: 3_000,
} as const;

const SEC = (ms: number) => `${ms}ms`;

/** How long a SIGTERMed sidecar may take to exit: its shutdown timeout (the default 10 s) and some. */
const STOP_WAIT_MS = 20_000;

/** One sidecar slot: its process (replaced on restart, same ports and node id), the relays of
 *  its NATS links, and the relay in front of its peer port (what it advertises to its peers as
 *  SIDECACHE_PEER_URL, so that their requests to it can hang while it stays up). */
export class Member {
  readonly id: string;
  readonly gates: readonly TcpGate[];
  readonly peerGate: TcpGate;
  sc: SidecarProcess;
  /** `gone`: left the cluster for good (scale-in); its clients stop. */
  state: 'up' | 'paused' | 'down' | 'gone' = 'up';
  #outage: Outage | undefined;
  readonly #history: History;
  /** What the processes of this slot wrote before the current one (restarts replace it). */
  readonly #pastOutput: string[] = [];

  constructor(id: string, sc: SidecarProcess, gates: readonly TcpGate[], peerGate: TcpGate, history: History) {
    this.id = id;
    this.sc = sc;
    this.gates = gates;
    this.peerGate = peerGate;
    this.#history = history;
  }

  /** Every line the slot's processes wrote, each process's output after a marker line. */
  output(): string {
    return [...this.#pastOutput, this.sc.output()].map((o, i) => `--- process ${i + 1} of ${this.id}\n${o}`).join('\n');
  }

  get url(): string { return this.sc.url; }
  get adminUrl(): string { return this.sc.adminUrl; }

  pause(): void {
    if (this.state !== 'up') return;
    this.sc.proc.kill('SIGSTOP');
    this.state = 'paused';
    this.#outage = this.#history.outage(this.id, 'paused');
  }

  resume(): void {
    if (this.state !== 'paused') return;
    this.sc.proc.kill('SIGCONT');
    this.state = 'up';
    this.#endOutage();
  }

  /** SIGKILL: a crash. The slot is down until `restart` has it ready again. */
  async kill(): Promise<void> {
    if (this.state === 'down') return;
    if (this.state === 'paused') this.#endOutage();
    this.state = 'down';
    this.#outage = this.#history.outage(this.id, 'down');
    await this.sc.kill();
  }

  /** SIGTERM, as a deploy or a scale-in does: the sidecar drains (peers route around it, its
   *  in-flight requests finish) and exits. Its own clients cannot reach it from the signal
   *  until it is ready again (an outage of kind `stopped`); its peers must not notice.
   *  Resolves with the exit code once the process has exited. */
  async stop(): Promise<number | null> {
    if (this.state !== 'up') throw new Error(`${this.id} is ${this.state}, not up: cannot stop it`);
    this.state = 'down';
    this.#outage = this.#history.outage(this.id, 'stopped');
    // A sidecar that has not exited well after its shutdown deadline is stuck: say so, kill it.
    const stuck = setTimeout(() => {
      this.#history.fault('error', this.id, `still running ${STOP_WAIT_MS / 1000} s after SIGTERM (SIDECACHE_SHUTDOWN_TIMEOUT is 10 s): SIGKILL`).end = this.#history.now();
      this.sc.proc.kill('SIGKILL');
    }, STOP_WAIT_MS);
    try {
      return await this.sc.stop();
    } finally {
      clearTimeout(stuck);
    }
  }

  /** Stopped for good (scale-in): the outage never ends, and its clients stop. */
  retire(): void {
    this.state = 'gone';
    this.#outage = undefined;
  }

  /** Start the process again on the same ports and node id; resolves once /readyz says 200. */
  async restart(): Promise<void> {
    const port = (u: string) => Number(new URL(u).port);
    this.#pastOutput.push(this.sc.output());
    this.sc = await startSidecar({
      env: this.sc.env, timeoutMs: 30_000,
      ports: { listen: port(this.sc.url), admin: port(this.sc.adminUrl), peer: port(this.sc.peerUrl) },
    });
    this.state = 'up';
    this.#endOutage();
  }

  /** Every relay of this sidecar lags by `ms` (0: none). */
  lag(ms: number): void { for (const g of this.gates) g.lag(ms); }
  cut(): void { for (const g of this.gates) g.hold(); }
  heal(): void {
    for (const g of this.gates) { g.release(); g.lag(0); }
  }

  #endOutage(): void {
    if (this.#outage !== undefined) this.#outage.end = this.#history.now();
    this.#outage = undefined;
  }
}

export interface System {
  readonly nats: NatsServers;
  readonly origin: VersionedOrigin;
  readonly cluster: string;
  readonly members: Member[];
  /** The members that have not left for good, in slot order. */
  live(): Member[];
  /** Nats servers currently SIGSTOPped. */
  readonly pausedNats: Set<number>;
  /** A new sidecar joins (scale-out); `beforeStart` runs once its relays exist (to make them lag). */
  addMember(beforeStart?: (gates: readonly TcpGate[]) => void): Promise<Member>;
  /** Delete the INVAL stream and create it again with the same configuration, as an operator would. */
  resetInval(): Promise<string>;
  /** The NATS server (index) that leads the INVAL stream now, as JetStream's stream info says. */
  invalLeader(): Promise<{ index: number; name: string }>;
  /** Undo every fault still in force (SIGCONT, relays released, nothing lagging). */
  healAll(): void;
  shutdown(): Promise<void>;
}

export async function startSystem(history: History, seed: number, sidecars: number): Promise<System> {
  const cleanups: Array<() => Promise<void> | void> = [];
  const pausedNats = new Set<number>();
  const members: Member[] = [];
  const shutdown = async () => {
    for (const c of cleanups.reverse()) {
      try { await c(); } catch { /* keep stopping the rest */ }
    }
    cleanups.length = 0;
  };
  try {
    const nats = await startNats({ nodes: 3, noAdvertise: true });
    cleanups.push(() => {
      for (const i of pausedNats) { const pid = nats.pid(i); if (pid !== undefined) process.kill(pid, 'SIGCONT'); }
      return nats.stop();
    });
    const origin = await startVersionedOrigin(history, seed);
    cleanups.push(() => origin.close());
    const cluster = uniqueCluster('chk');
    const natsPorts = nats.urls.map((u) => Number(new URL(u).port));
    const env = (gates: readonly TcpGate[], id: string): Record<string, string> => ({
      ...clusterEnv({ natsUrls: gates.map((g) => g.url('nats')), upstream: origin.url }, cluster),
      SIDECACHE_NODE_ID: id,
      SIDECACHE_HEARTBEAT_INTERVAL: SEC(TIMING.heartbeatIntervalMs),
      SIDECACHE_HEARTBEAT_TTL: SEC(TIMING.heartbeatTtlMs),
      SIDECACHE_PEER_TIMEOUT: SEC(TIMING.peerTimeoutMs),
      SIDECACHE_PURGE_TIMEOUT: SEC(TIMING.purgeTimeoutMs),
      SIDECACHE_HEADERS_TIMEOUT: SEC(TIMING.headersTimeoutMs),
      SIDECACHE_MAX_STALE_DETACHED: SEC(TIMING.maxStaleDetachedMs),
      // Membership and log events only (no line per request): saved beside the history.
      SIDECACHE_LOG_LEVEL: 'info',
    });
    const gatesFor = async (): Promise<TcpGate[]> => {
      const gates = await Promise.all(natsPorts.map((p) => startTcpGate(p)));
      cleanups.push(() => Promise.all(gates.map((g) => g.close())).then(() => undefined));
      return gates;
    };
    /** The sidecar on ports of our choosing, its peer port behind a relay it advertises. */
    const startBehindPeerGate = async (id: string, gates: readonly TcpGate[]): Promise<{ sc: SidecarProcess; peerGate: TcpGate }> => {
      for (let attempt = 1; ; attempt++) {
        const [listen, admin, peer] = [await freePort(), await freePort(), await freePort()];
        const peerGate = await startTcpGate(peer);
        try {
          const sc = await startSidecar({ env: { ...env(gates, id), SIDECACHE_PEER_URL: peerGate.url('http') }, timeoutMs: 60_000, ports: { listen, admin, peer } });
          cleanups.push(() => peerGate.close());
          return { sc, peerGate };
        } catch (err) {
          await peerGate.close();
          // A port picked free may be taken before the sidecar binds it: other ports then.
          if (attempt >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err;
        }
      }
    };
    const spawnMember = async (id: string, beforeStart?: (gates: readonly TcpGate[]) => void): Promise<Member> => {
      const gates = await gatesFor();
      beforeStart?.(gates);
      const { sc, peerGate } = await startBehindPeerGate(id, gates);
      const m = new Member(id, sc, gates, peerGate, history);
      // Registered before anything else can fail: the slot's current process is killed by PID.
      cleanups.push(async () => {
        if (m.state === 'paused') m.sc.proc.kill('SIGCONT');
        await m.sc.kill();
      });
      return m;
    };
    // Started one by one: three concurrent starts on two busy cores can outlast the ready timeout.
    for (let i = 0; i < sidecars; i++) members.push(await spawnMember(`s${i}`));
    await waitForRing(members.map((m) => m.sc), sidecars, 60_000);

    return {
      nats, origin, cluster, members, pausedNats,
      live: () => members.filter((m) => m.state !== 'gone'),
      async addMember(beforeStart) {
        const id = `s${members.length}`;
        const o = history.outage(id, 'down');
        try {
          const m = await spawnMember(id, beforeStart);
          members.push(m);
          return m;
        } finally {
          o.end = history.now();
        }
      },
      async invalLeader() {
        // Through every server: the one that leads may be the one just restarted.
        const nc = await connect({ servers: [...nats.urls], timeout: 5_000, reconnect: false });
        try {
          const jsm = await jetstreamManager(nc, { timeout: 5_000 });
          const info = await jsm.streams.info(`SC_${cluster}_INVAL`);
          const name = info.cluster?.leader;
          const index = name === undefined ? -1 : nats.names.indexOf(name);
          if (index < 0) throw new Error(`INVAL has no leader that names one of our servers (leader: ${name ?? 'none'})`);
          return { index, name: name! };
        } finally {
          await nc.close().catch(() => undefined);
        }
      },
      async resetInval() {
        const nc = await connect({ servers: [...nats.urls], timeout: 5_000, reconnect: false });
        try {
          const jsm = await jetstreamManager(nc, { timeout: 5_000 });
          const name = `SC_${cluster}_INVAL`;
          const info = await jsm.streams.info(name);
          await jsm.streams.delete(name);
          try {
            await jsm.streams.add(info.config);
            return `deleted ${name} at seq ${info.state.last_seq} and created it again`;
          } catch (err) {
            // A sidecar may have created it first: that is the reset too.
            return `deleted ${name} at seq ${info.state.last_seq}; recreating it: ${(err as Error).message}`;
          }
        } finally {
          await nc.close().catch(() => undefined);
        }
      },
      healAll() {
        for (const m of members) { m.heal(); m.peerGate.release(); m.resume(); }
        for (const i of [...pausedNats]) {
          const pid = nats.pid(i);
          if (pid !== undefined) process.kill(pid, 'SIGCONT');
          pausedNats.delete(i);
        }
      },
      shutdown,
    };
  } catch (err) {
    await shutdown();
    throw err;
  }
}

