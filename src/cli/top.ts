// sidecache top: a live view of every member's hits, misses, origin requests, forwarded
// requests and purges per second, from GET /cluster/members polled every interval. Rates are
// differences of each member's counters over its own clock (`at`), so a slow poll does not
// distort them. q or Ctrl-C quits.
import type { ClusterReport } from '../admin/cluster-report.js';
import type { MemberStatus } from '../cluster/member-status.js';
import type { AdminClient } from './admin-client.js';
import { Exit } from './admin-client.js';
import type { Output } from './commands.js';
import { percent, rate, table } from './format.js';

export interface Rates {
  readonly hits: number;
  readonly misses: number;
  readonly origin: number;
  readonly forwarded: number;
  readonly purges: number;
  /** Hit ratio over the interval; null when there was no lookup. */
  readonly hitRatio: number | null;
}

interface Totals { hits: number; misses: number; origin: number; forwarded: number; purges: number }

function totalsOf(s: MemberStatus): Totals {
  const r = s.requests;
  return {
    hits: r.hit + r.stale,
    // Not a hit here: fetched (or revalidated), joined another request's fetch, or sent to the owner.
    misses: r.miss + r.revalidated + r.collapsed + r.forwarded,
    origin: s.originRequests,
    forwarded: s.forwardedRequests,
    purges: s.purges,
  };
}

/** Per-second rates between two statuses of one member; undefined when they cannot be compared
 *  (the same reading, or a restart in between: counters went down). */
export function ratesBetween(prev: MemberStatus, cur: MemberStatus): Rates | undefined {
  const dt = (cur.at - prev.at) / 1000;
  if (!(dt > 0) || cur.startedAt !== prev.startedAt) return undefined;
  const a = totalsOf(prev);
  const b = totalsOf(cur);
  const per = (k: keyof Totals) => Math.max(0, b[k] - a[k]) / dt;
  const hits = b.hits - a.hits;
  const lookups = hits + (b.misses - a.misses);
  return {
    hits: per('hits'), misses: per('misses'), origin: per('origin'), forwarded: per('forwarded'), purges: per('purges'),
    hitRatio: lookups > 0 ? hits / lookups : null,
  };
}

export function topFrame(r: ClusterReport, rates: ReadonlyMap<string, Rates>, intervalMs: number): string {
  const rows = r.members.map((m) => {
    if (m.status === null) return [m.id, m.state, '-', '-', '-', '-', '-', '-', '-', `unreachable: ${m.error ?? ''}`];
    const x = rates.get(m.id);
    return [
      m.id, m.status.draining && m.status.state !== 'draining' ? `${m.status.state}*` : m.status.state,
      rate(x?.hits), rate(x?.misses), percent(x?.hitRatio), rate(x?.origin), rate(x?.forwarded), rate(x?.purges),
      m.lag === null ? '-' : String(m.lag), '',
    ];
  });
  const time = new Date(r.at).toISOString().slice(11, 19);
  return `sidecache top - ${time} - cluster ${r.cluster}, view epoch ${r.view.epoch}, every ${intervalMs / 1000}s (q quits)\n` +
    table(['MEMBER', 'STATE', 'HIT/s', 'MISS/s', 'HIT%', 'ORIGIN/s', 'FWD/s', 'PURGE/s', 'LAG', ''], rows);
}

export interface TopOptions {
  readonly intervalMs: number;
  /** Stop after this many frames; undefined: until q or Ctrl-C. */
  readonly count: number | undefined;
  readonly json: boolean;
}

const CLEAR = '\x1b[H\x1b[2J';
const HIDE_CURSOR = '\x1b[?25l';
const SHOW_CURSOR = '\x1b[?25h';
const STOP = 'stop' as const;

export async function top(client: AdminClient, o: TopOptions, out: Output): Promise<number> {
  // The first read fails like any command: an unreachable or refusing admin API is an error.
  const report = await client.request<ClusterReport>('GET', '/cluster/members');
  const tty = process.stdout.isTTY === true && !o.json;
  const stdin = process.stdin;
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => { stop = resolve; });
  const onKey = (b: Buffer) => {
    const k = b.toString('utf8');
    if (k === 'q' || k === 'Q' || k.includes('\x03')) stop();
  };
  const onSigint = () => stop();
  process.on('SIGINT', onSigint);
  if (stdin.isTTY === true) {
    stdin.setRawMode(true);
    stdin.on('data', onKey);
    stdin.resume();
  }
  if (tty) process.stdout.write(HIDE_CURSOR);
  const last = new Map<string, MemberStatus>();
  let rates = new Map<string, Rates>();
  const render = (r: ClusterReport): void => {
    const next = new Map<string, Rates>();
    for (const m of r.members) {
      if (m.status === null) continue;
      const prev = last.get(m.id);
      // The same reading again (the admin API reuses a report for a moment): the rates stand.
      if (prev !== undefined && prev.at === m.status.at && prev.startedAt === m.status.startedAt) {
        const kept = rates.get(m.id);
        if (kept !== undefined) next.set(m.id, kept);
        continue;
      }
      const x = prev === undefined ? undefined : ratesBetween(prev, m.status);
      if (x !== undefined) next.set(m.id, x);
      last.set(m.id, m.status);
    }
    rates = next;
    if (o.json) {
      out.out(JSON.stringify({
        at: r.at,
        members: r.members.map((m) => ({ id: m.id, state: m.state, reachable: m.reachable, lag: m.lag, rates: rates.get(m.id) ?? null })),
      }));
    } else {
      out.out(`${tty ? CLEAR : frames > 0 ? '\n' : ''}${topFrame(r, rates, o.intervalMs)}`);
    }
  };
  let frames = 0;
  let current: ClusterReport | undefined = report;
  try {
    for (;;) {
      if (current !== undefined) {
        render(current);
        frames++;
        if (o.count !== undefined && frames >= o.count) return Exit.ok;
      }
      const slept = await Promise.race([stopped.then(() => STOP), new Promise((r) => setTimeout(r, o.intervalMs))]);
      if (slept === STOP) return Exit.ok;
      const got = await Promise.race([
        stopped.then(() => STOP),
        client.request<ClusterReport>('GET', '/cluster/members').catch((err: unknown) => err as Error),
      ]);
      if (got === STOP) return Exit.ok;
      if (got instanceof Error) {
        // Keep watching: the sidecar may be restarting.
        out.out(`${tty ? CLEAR : '\n'}sidecache top - ${got.message}`);
        current = undefined;
      } else {
        current = got;
      }
    }
  } finally {
    process.off('SIGINT', onSigint);
    if (stdin.isTTY === true) {
      stdin.off('data', onKey);
      stdin.setRawMode(false);
      stdin.pause();
    }
    if (tty) process.stdout.write(SHOW_CURSOR);
  }
}
