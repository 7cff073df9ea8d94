// The seeded fault schedule and its execution. Faults run one after another (never two at
// once), each healed before the next, so that the history says plainly which fault was in
// force. The kinds are chosen to reach the windows the cluster's promises depend on: a member
// whose NATS link lags while purges run (a peer may serve it a copy it has not purged yet), a
// member paused past the heartbeat TTL (its peers drop it and purge without it), crashes and
// restarts (a member that joins must catch up with the log before it serves), an INVAL stream
// reset followed by a join, NATS servers paused or killed (the INVAL stream's leader among
// them), a peer link that hangs while its member stays up, and the operator's own changes: a
// rolling restart, a member leaving for good and a new one joining.
import type { History } from './history.js';
import { KEYS } from './origin.js';
import { httpRequest } from './workload.js';
import { Rng } from './prng.js';
import { TIMING, type System } from './system.js';

export const FAULT_KINDS = [
  'lag', 'cut', 'pause', 'kill', 'nats-pause', 'nats-kill', 'inval-reset', 'inval-flood', 'join',
  'peer-hang', 'leader-kill', 'rolling-restart', 'leave',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface PlannedFault {
  /** History time at which it starts (if the previous fault has ended by then). */
  readonly at: number;
  readonly kind: FaultKind;
  /** Sidecar slot (among the members that have not left) or NATS server index. */
  readonly target: number;
  /** How long the fault holds; for `rolling-restart` the pause between two members, for
   *  `leave` the time before a new member joins in its place. */
  readonly durationMs: number;
  /** Relay delay for `lag`, and for `kill`/`join`/`inval-reset` when the (re)started member lags. */
  readonly lagMs: number;
}

export interface ScheduleOptions {
  readonly seed: number;
  readonly startMs: number;
  /** No fault starts after this time: the run ends with a quiet stretch. */
  readonly endMs: number;
  readonly sidecars: number;
  readonly kinds: readonly FaultKind[];
}

/** The schedule for a seed: a pure function of its options. */
export function planFaults(o: ScheduleOptions): PlannedFault[] {
  const rng = Rng.fork(o.seed, 'faults');
  const weights: Record<FaultKind, number> = {
    lag: 4, cut: 1, pause: 3, kill: 2, 'nats-pause': 1, 'nats-kill': 1, 'inval-reset': 2, 'inval-flood': 2, join: 1,
    'peer-hang': 2, 'leader-kill': 1, 'rolling-restart': 2, leave: 1,
  };
  const allowed = Object.fromEntries(o.kinds.map((k) => [k, weights[k]])) as Record<FaultKind, number>;
  const plan: PlannedFault[] = [];
  let joined = false;
  let left = false;
  let at = o.startMs;
  for (let n = 0; n < 1000 && at < o.endMs && o.kinds.length > 0; n++) {
    let kind = rng.weighted(allowed);
    // One join and one leave a run at most (each starts a sidecar and its clients), and a
    // rolling restart only while the run has time for it: it must not hold the run past its end.
    if ((kind === 'join' && joined) || (kind === 'leave' && left)) kind = 'lag';
    if (kind === 'rolling-restart' && at + ROLLING_RESTART_SPAN_MS > o.endMs) kind = 'pause';
    if (kind === 'join') joined = true;
    if (kind === 'leave') left = true;
    const natsFault = kind === 'nats-pause' || kind === 'nats-kill';
    const target = rng.int(natsFault ? 3 : o.sidecars);
    // Pauses either side of the heartbeat TTL: short ones the cluster rides out, long ones
    // get the member dropped from the view.
    const durationMs = kind === 'pause'
      ? (rng.chance(0.6) ? rng.between(TIMING.heartbeatTtlMs + 1500, TIMING.heartbeatTtlMs + 4000) : rng.between(300, 1500))
      : kind === 'lag' ? rng.between(4000, 9000)
        : kind === 'cut' ? rng.between(2000, 6000)
          : kind === 'kill' ? rng.between(200, 2000)
            : kind === 'nats-pause' ? rng.between(1000, 6000)
              : kind === 'nats-kill' || kind === 'leader-kill' ? rng.between(1000, 4000)
                : kind === 'peer-hang' ? rng.between(3000, 8000)
                  : rng.between(500, 2000);
    const lagMs = kind === 'lag' ? rng.between(300, 1500) : rng.chance(0.6) ? rng.between(300, 1200) : 0;
    plan.push({ at, kind, target, durationMs, lagMs });
    at += (kind === 'rolling-restart' ? ROLLING_RESTART_SPAN_MS : durationMs) + rng.between(1500, 4000);
  }
  return plan;
}

/** What a rolling restart of three members takes on two busy cores: drain, exit, start, join. */
const ROLLING_RESTART_SPAN_MS = 12_000;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, ms)));
}

/** Runs the plan against the system; returns when every fault has been applied and healed. */
export async function runFaults(sys: System, history: History, plan: readonly PlannedFault[], endMs: number, onJoin: (slot: number) => void): Promise<void> {
  for (const f of plan) {
    await sleep(f.at - history.now());
    if (history.now() >= endMs) break;
    try {
      await applyFault(sys, history, f, onJoin);
    } catch (err) {
      // Kept in the history (a member that cannot rejoin is worth a look), then healed so the
      // run goes on with every slot up.
      const msg = (err as Error).message;
      history.fault('error', f.kind, `fault failed: ${msg.split('\n')[0]}; the process said: ${msg.slice(-600).replace(/\s+/g, ' ')}`).end = history.now();
      sys.healAll();
      for (const m of sys.members) {
        if (m.state !== 'down') continue;
        try {
          await m.restart();
        } catch (again) {
          history.fault('error', m.id, `restart without faults failed too: ${(again as Error).message.split('\n')[0]}`).end = history.now();
        }
      }
    }
  }
}

async function applyFault(sys: System, history: History, f: PlannedFault, onJoin: (slot: number) => void): Promise<void> {
  const live = sys.live();
  const m = live[f.target % live.length]!;
  switch (f.kind) {
    case 'lag': {
      const ev = history.fault('lag', m.id, `every NATS relay of ${m.id} delays ${f.lagMs} ms`);
      m.lag(f.lagMs);
      await sleep(f.durationMs);
      m.heal();
      ev.end = history.now();
      return;
    }
    case 'cut': {
      const ev = history.fault('cut', m.id, `every NATS relay of ${m.id} held`);
      m.cut();
      await sleep(f.durationMs);
      m.heal();
      ev.end = history.now();
      return;
    }
    case 'pause': {
      const ev = history.fault('pause', m.id, `SIGSTOP ${m.id} for ${f.durationMs} ms`);
      m.pause();
      await sleep(f.durationMs);
      m.resume();
      ev.end = history.now();
      return;
    }
    case 'kill': {
      const ev = history.fault('kill', m.id, `SIGKILL ${m.id}, restart after ${f.durationMs} ms${f.lagMs > 0 ? `, its NATS relays delaying ${f.lagMs} ms until 3 s after it is ready` : ''}`);
      await restartLagging(m, f, ev);
      ev.end = history.now();
      return;
    }
    case 'nats-pause': {
      const pid = sys.nats.pid(f.target);
      if (pid === undefined) return;
      const ev = history.fault('nats-pause', `nats${f.target}`, `SIGSTOP nats-server ${f.target} for ${f.durationMs} ms`);
      process.kill(pid, 'SIGSTOP');
      sys.pausedNats.add(f.target);
      await sleep(f.durationMs);
      process.kill(pid, 'SIGCONT');
      sys.pausedNats.delete(f.target);
      ev.end = history.now();
      return;
    }
    case 'nats-kill': {
      const ev = history.fault('nats-kill', `nats${f.target}`, `SIGKILL nats-server ${f.target}, restart after ${f.durationMs} ms`);
      sys.nats.kill(f.target);
      await sleep(f.durationMs);
      await sys.nats.restart(f.target);
      ev.end = history.now();
      return;
    }
    case 'inval-reset': {
      const ev = history.fault('inval-reset', 'INVAL', '');
      ev.note = await sys.resetInval();
      await sleep(f.durationMs);
      // A member that joins after the reset replays FILLS written before it.
      ev.note += `; then SIGKILL and restart ${m.id}${f.lagMs > 0 ? ` with its NATS relays delaying ${f.lagMs} ms` : ''}`;
      await restartLagging(m, { ...f, durationMs: 300 }, ev);
      ev.end = history.now();
      return;
    }
    case 'inval-flood': {
      // A long log to catch up with: a member that joins must apply it before it serves.
      const ev = history.fault('inval-flood', m.id, '');
      const n = await floodInval(sys, history, FLOOD_WRITES, FLOOD_MAX_MS);
      ev.note = `${n} writes through the sidecars (one invalidation each), then SIGKILL and restart ${m.id}${f.lagMs > 0 ? ` with its NATS relays delaying ${f.lagMs} ms` : ''}`;
      await restartLagging(m, { ...f, durationMs: 300 }, ev);
      ev.end = history.now();
      return;
    }
    case 'peer-hang': {
      // Requests from the other members to m hang (connected, never answered); m itself stays
      // up, attached to NATS and active in the view: only the peers' breakers can route around.
      const ev = history.fault('peer-hang', m.id, `the relay in front of ${m.id}'s peer port holds every connection for ${f.durationMs} ms; ${m.id} stays up and attached to NATS`);
      m.peerGate.hold();
      await sleep(f.durationMs);
      m.peerGate.release();
      ev.end = history.now();
      return;
    }
    case 'leader-kill': {
      const leader = await sys.invalLeader();
      const ev = history.fault('leader-kill', `nats${leader.index}`, `SIGKILL nats-server ${leader.index} (${leader.name}), the INVAL stream's leader, restart after ${f.durationMs} ms`);
      sys.nats.kill(leader.index);
      await sleep(f.durationMs);
      await sys.nats.restart(leader.index);
      ev.note += await sys.invalLeader().then((l) => `; INVAL's leader now ${l.name}`, (err: unknown) => `; INVAL's leader now unknown: ${(err as Error).message}`);
      ev.end = history.now();
      return;
    }
    case 'rolling-restart': {
      // A deploy: each member in turn is stopped gracefully, started again and waited for.
      const ev = history.fault('rolling-restart', 'all', 'each sidecar in turn: SIGTERM, exit, start again, ready');
      for (const x of sys.live()) {
        const t0 = history.now();
        const code = await x.stop();
        const exited = history.now();
        await x.restart();
        ev.note += `; ${x.id} exited ${code} ${((exited - t0) / 1000).toFixed(1)} s after SIGTERM, ready ${((history.now() - exited) / 1000).toFixed(1)} s later`;
        await sleep(f.durationMs);
      }
      ev.end = history.now();
      return;
    }
    case 'leave': {
      // Scale-in: m drains and leaves for good. With three members or fewer left, a new one
      // then joins in its place (scale-out), as an autoscaler replacing a node would.
      const replace = live.length <= 3;
      const ev = history.fault('leave', m.id, `scale-in: SIGTERM ${m.id}, which leaves for good`);
      const t0 = history.now();
      const code = await m.stop();
      m.retire();
      ev.note += ` (exited ${code} ${((history.now() - t0) / 1000).toFixed(1)} s after SIGTERM)`;
      if (replace) {
        await sleep(f.durationMs);
        const joined = await sys.addMember();
        ev.note += `; ${joined.id} joined in its place ${f.durationMs} ms after`;
        onJoin(sys.members.length - 1);
        await sleep(3000);
      }
      ev.end = history.now();
      return;
    }
    case 'join': {
      const ev = history.fault('join', `s${sys.members.length}`, `a new sidecar joins${f.lagMs > 0 ? `, its NATS relays delaying ${f.lagMs} ms until 3 s after it is ready` : ''}`);
      let lagging: readonly { lag(ms: number): void }[] = [];
      const lift = setTimeout(() => {
        for (const g of lagging) g.lag(0);
        ev.note += `; lag lifted ${LAG_WHILE_JOINING_MAX_MS / 1000} s into the join, before it was ready`;
      }, LAG_WHILE_JOINING_MAX_MS);
      let joined;
      try {
        joined = await sys.addMember((gates) => { lagging = gates; for (const g of gates) g.lag(f.lagMs); });
      } finally {
        clearTimeout(lift);
      }
      onJoin(sys.members.length - 1);
      await sleep(3000);
      joined.heal();
      ev.end = history.now();
      return;
    }
  }
}

/** SIGKILL, wait, restart with the member's NATS link lagging `lagMs` until 3 s after it is
 *  ready. A member whose link lags by most of a second may not get ready within the restart
 *  timeout at all, so the lag is lifted after LAG_WHILE_JOINING_MAX_MS whatever happens (and
 *  the history says so): the replay and catch-up then finish at full speed. */
const LAG_WHILE_JOINING_MAX_MS = 10_000;

async function restartLagging(m: System['members'][number], f: PlannedFault, ev: { note: string }): Promise<void> {
  await m.kill();
  await sleep(f.durationMs);
  m.lag(f.lagMs);
  const lift = f.lagMs === 0 ? undefined : setTimeout(() => {
    if (m.state !== 'down') return;
    m.heal();
    ev.note += `; lag lifted ${LAG_WHILE_JOINING_MAX_MS / 1000} s into the restart, before it was ready`;
  }, LAG_WHILE_JOINING_MAX_MS);
  try {
    await m.restart();
    await sleep(3000);
  } finally {
    clearTimeout(lift);
    m.heal();
  }
}

const FLOOD_WRITES = 1500;
const FLOOD_MAX_MS = 15_000;
const FLOOD_CONCURRENCY = 16;

/** POSTs to URLs with a query (resources of their own at the origin, no version) through the
 *  sidecars that are up, `count` at most and for `maxMs` at most; resolves with how many got a 2xx. */
async function floodInval(sys: System, history: History, count: number, maxMs: number): Promise<number> {
  const until = history.now() + maxMs;
  let next = 0;
  let ok = 0;
  const worker = async (w: number) => {
    while (next < count && history.now() < until) {
      const i = next++;
      const up = sys.members.filter((x) => x.state === 'up');
      if (up.length === 0) return;
      const m = up[(i + w) % up.length]!;
      try {
        const a = await httpRequest(`${m.url}${KEYS[i % KEYS.length]}?flood=${i}`, 'POST', {}, 'x', 5_000);
        if (a.status < 300) ok++;
      } catch { /* a member that goes away meanwhile: the flood is only a means */ }
    }
  };
  await Promise.all(Array.from({ length: FLOOD_CONCURRENCY }, (_, w) => worker(w)));
  return ok;
}
