// The status page's pure parts: rates from two status readings, the ring as arcs, SVG path
// strings, number formats. They run in the browser (status-page.ts serves their source text
// as the page's script) and in unit tests, so each is self-contained: no imports, no module
// constants, nothing but its arguments.

/** The counters of one member's status (cluster/member-status.ts) that rates are taken of. */
export interface CounterReading {
  readonly at: number;
  readonly startedAt: number;
  readonly requests: Readonly<Record<string, number>>;
  readonly originRequests: number;
  readonly forwardedRequests: number;
}

export interface RateSample {
  /** Epoch-ms of the later reading (the member's clock). */
  readonly at: number;
  readonly requestsPerSec: number;
  readonly hitsPerSec: number;
  readonly originPerSec: number;
  readonly forwardedPerSec: number;
  /** Hits over lookups in the interval (as hitRatio in member-status.ts); null: no lookups. */
  readonly hitRatio: number | null;
}

/** Rates between two readings of one member; null when it restarted in between or no time passed. */
export function rateBetween(prev: CounterReading, next: CounterReading): RateSample | null {
  if (next.startedAt !== prev.startedAt || next.at <= prev.at) return null;
  const sec = (next.at - prev.at) / 1000;
  const d = (k: string): number => Math.max(0, (next.requests[k] ?? 0) - (prev.requests[k] ?? 0));
  const hits = d('hit') + d('stale');
  const lookups = hits + d('miss') + d('collapsed') + d('revalidated') + d('forwarded');
  let all = 0;
  for (const k of Object.keys(next.requests)) all += d(k);
  return {
    at: next.at,
    requestsPerSec: all / sec,
    hitsPerSec: hits / sec,
    originPerSec: Math.max(0, next.originRequests - prev.originRequests) / sec,
    forwardedPerSec: Math.max(0, next.forwardedRequests - prev.forwardedRequests) / sec,
    hitRatio: lookups === 0 ? null : hits / lookups,
  };
}

/** A run of partitions [from, to] drawn as one arc; owner null: unowned. `mixed`: a bucket
 *  of several owners (too many partitions to draw one by one), coloured by the commonest. */
export interface RingArc {
  readonly from: number;
  readonly to: number;
  readonly owner: string | null;
  readonly mixed: boolean;
}

/** The arcs of one rank (0: primary, 1..: replicas) of an owner table: runs of one owner,
 *  or at most maxArcs buckets when there are more runs than that. */
export function ringArcs(owners: readonly (readonly string[])[], rank: number, maxArcs = 720): RingArc[] {
  const n = owners.length;
  const at = (i: number): string | null => owners[i]?.[rank] ?? null;
  const runs: RingArc[] = [];
  for (let i = 0; i < n; i++) {
    const o = at(i);
    const last = runs[runs.length - 1];
    if (last !== undefined && last.owner === o) runs[runs.length - 1] = { ...last, to: i };
    else runs.push({ from: i, to: i, owner: o, mixed: false });
  }
  if (runs.length <= maxArcs) return runs;
  const buckets: RingArc[] = [];
  const size = Math.ceil(n / maxArcs);
  for (let from = 0; from < n; from += size) {
    const to = Math.min(n, from + size) - 1;
    const counts = new Map<string | null, number>();
    for (let i = from; i <= to; i++) counts.set(at(i), (counts.get(at(i)) ?? 0) + 1);
    let best: string | null = null;
    let bestCount = -1;
    for (const [o, c] of counts) if (c > bestCount) { best = o; bestCount = c; }
    buckets.push({ from, to, owner: best, mixed: counts.size > 1 });
  }
  return buckets;
}

/** SVG path of an annular sector from fraction `from` to `to` of a turn, clockwise from 12
 *  o'clock. A whole turn is drawn as two halves: an arc from a point to itself draws nothing. */
export function arcPath(cx: number, cy: number, rOuter: number, rInner: number, from: number, to: number): string {
  const pt = (r: number, f: number): string => {
    const a = 2 * Math.PI * f - Math.PI / 2;
    return `${(cx + r * Math.cos(a)).toFixed(2)} ${(cy + r * Math.sin(a)).toFixed(2)}`;
  };
  if (to - from >= 1) {
    const ring = (r: number): string => `M${pt(r, 0)} A${r} ${r} 0 1 1 ${pt(r, 0.5)} A${r} ${r} 0 1 1 ${pt(r, 0)} Z`;
    return `${ring(rOuter)} ${ring(rInner)}`;
  }
  const large = to - from > 0.5 ? 1 : 0;
  return `M${pt(rOuter, from)} A${rOuter} ${rOuter} 0 ${large} 1 ${pt(rOuter, to)} L${pt(rInner, to)} A${rInner} ${rInner} 0 ${large} 0 ${pt(rInner, from)} Z`;
}

/** SVG path of a sparkline: the last `capacity` values right-aligned in width x height,
 *  0 at the bottom and `max` at the top; a null leaves a gap, and a lone value is a dot (a
 *  zero-length segment, drawn with round caps). Empty when nothing to draw. */
export function sparkPath(values: readonly (number | null)[], width: number, height: number, max: number, capacity: number): string {
  const shown = values.slice(-capacity);
  const step = capacity > 1 ? width / (capacity - 1) : 0;
  const top = max > 0 ? max : 1;
  const parts: string[] = [];
  let run = 0;
  shown.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) {
      if (run === 1) parts.push('h0');
      run = 0;
      return;
    }
    const x = width - (shown.length - 1 - i) * step;
    const y = height - (Math.min(v, top) / top) * height;
    parts.push(`${run === 0 ? 'M' : 'L'}${x.toFixed(1)} ${y.toFixed(1)}`);
    run++;
  });
  if (run === 1) parts.push('h0');
  return parts.join(' ');
}

/** What changed between two rings: who joined and left, and how many partitions got another
 *  primary or another set of owners. */
export interface RingChange {
  readonly fromEpoch: number;
  readonly toEpoch: number;
  readonly joined: string[];
  readonly left: string[];
  readonly primariesMoved: number;
  readonly ownersChanged: number;
}

export function ringChange(
  prev: { readonly epoch: number; readonly members: readonly string[]; readonly owners: readonly (readonly string[])[] },
  next: { readonly epoch: number; readonly members: readonly string[]; readonly owners: readonly (readonly string[])[] },
): RingChange {
  let primariesMoved = 0;
  let ownersChanged = 0;
  next.owners.forEach((o, i) => {
    const p = prev.owners[i] ?? [];
    if (p[0] !== o[0]) primariesMoved++;
    if (p.length !== o.length || [...o].sort().join('\n') !== [...p].sort().join('\n')) ownersChanged++;
  });
  return {
    fromEpoch: prev.epoch,
    toEpoch: next.epoch,
    joined: next.members.filter((m) => !prev.members.includes(m)),
    left: prev.members.filter((m) => !next.members.includes(m)),
    primariesMoved,
    ownersChanged,
  };
}

export function formatRate(perSec: number | null | undefined): string {
  if (perSec === null || perSec === undefined || !Number.isFinite(perSec)) return '–';
  return perSec < 10 ? perSec.toFixed(1) : Math.round(perSec).toString();
}

export function formatPercent(ratio: number | null | undefined): string {
  return ratio === null || ratio === undefined || !Number.isFinite(ratio) ? '–' : `${(ratio * 100).toFixed(1)}%`;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}
