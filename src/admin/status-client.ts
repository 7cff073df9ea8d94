// The status page's script, run in the browser: polls GET /cluster/members and GET /purges
// once a second and draws the ring, the members (state, hit ratio and rates as sparklines,
// log position and lag) and the recent purges. status-page.ts serves this function's source
// text after the helpers of status-view.ts, so it names nothing else of this module: every
// constant lives inside it, and the helpers are the page's globals of the same names.
// Text goes in with textContent only (member ids come from other processes' configuration).
import type { ClusterReport, MemberReport } from './cluster-report.js';
import type { PurgeRecord } from './purge-history.js';
import {
  arcPath, formatBytes, formatPercent, formatRate, rateBetween, ringArcs, ringChange, sparkPath,
  type CounterReading, type RateSample, type RingChange,
} from './status-view.js';

export function statusClient(): void {
  const POLL_MS = 1000;
  /** Five minutes of samples at one a second: what the sparklines show. */
  const KEEP_SAMPLES = 300;
  /** A member that left stays listed (greyed) this long. */
  const KEEP_LEFT_MS = 5 * 60_000;
  const KEEP_CHANGES = 8;
  const FETCH_TIMEOUT_MS = 10_000;
  const SVG = 'http://www.w3.org/2000/svg';
  const PALETTE = ['#1f77b4', '#e8710a', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];

  interface Tracked {
    last: MemberReport;
    reading: CounterReading | undefined;
    rates: (RateSample | null)[];
    leftAt: number | undefined;
  }
  type Ring = NonNullable<ClusterReport['ring']>;
  type Attrs = Record<string, string | number>;

  const tracked = new Map<string, Tracked>();
  const colours = new Map<string, string>();
  const changes: (RingChange & { seenAt: number })[] = [];
  let ring: Ring | null = null;
  let ringKey = '';
  let failingSince = 0;

  const byId = (id: string): HTMLElement => document.getElementById(id) as HTMLElement;
  const clock = (ms: number): string => new Date(ms).toLocaleTimeString([], { hour12: false });

  function el(tag: string, attrs: Attrs = {}, ...children: (Node | string)[]): HTMLElement {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    e.append(...children);
    return e;
  }
  function svg(tag: string, attrs: Attrs = {}, ...children: (Node | string)[]): SVGElement {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    e.append(...children);
    return e;
  }
  function colourOf(id: string): string {
    let c = colours.get(id);
    if (c === undefined) {
      c = PALETTE[colours.size % PALETTE.length]!;
      colours.set(id, c);
    }
    return c;
  }
  function swatch(id: string): SVGElement {
    return svg('svg', { class: 'swatch', width: 12, height: 12, 'aria-hidden': 'true' }, svg('rect', { width: 12, height: 12, rx: 2, fill: colourOf(id) }));
  }
  /** A sparkline of one sample a second: its width spans the history so far, at least a
   *  minute and at most KEEP_SAMPLES, so a page just opened shows more than a dot. */
  function spark(values: (number | null)[], max: number, what: string, cls: string): SVGElement {
    const w = 120;
    const h = 26;
    const span = Math.min(KEEP_SAMPLES, Math.max(60, values.length));
    const label = `${what}, last ${span < 120 ? `${span} s` : `${Math.round(span / 60)} min`}`;
    return svg('svg', { class: `spark ${cls}`, width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: 'img', 'aria-label': label },
      svg('title', {}, label),
      svg('line', { x1: 0, y1: h - 0.5, x2: w, y2: h - 0.5, class: 'base' }),
      // Inset by the stroke's half-width, so a line at the top or bottom is not clipped.
      svg('path', { d: sparkPath(values, w, h - 3, max, span), class: 'line', transform: 'translate(0 1.5)' }));
  }

  function ownedCounts(r: Ring): Map<string, { primary: number; replica: number }> {
    const counts = new Map<string, { primary: number; replica: number }>();
    for (const m of r.members) counts.set(m, { primary: 0, replica: 0 });
    for (const owners of r.owners) {
      owners.forEach((o, rank) => {
        const c = counts.get(o) ?? { primary: 0, replica: 0 };
        if (rank === 0) c.primary++;
        else c.replica++;
        counts.set(o, c);
      });
    }
    return counts;
  }

  function drawRing(r: Ring): void {
    const box = byId('ring');
    box.replaceChildren();
    box.setAttribute('data-epoch', String(r.epoch));
    const c = 160;
    const outer = 152;
    const inner = 72;
    const gap = 4;
    const band = Math.min(30, (outer - inner) / r.replicas - gap);
    const n = r.owners.length;
    for (let rank = 0; rank < r.replicas; rank++) {
      const ro = outer - rank * (band + gap);
      for (const a of ringArcs(r.owners, rank)) {
        const span = a.from === a.to ? `partition ${a.from}` : `partitions ${a.from}–${a.to}`;
        const who = rank === 0 ? 'primary' : `replica ${rank}`;
        const title = `${span}: ${who} ${a.owner ?? '(none)'}${a.mixed ? ' (most of them; several owners)' : ''}`;
        box.append(svg('path', {
          d: arcPath(c, c, ro, ro - band, a.from / n, (a.to + 1) / n),
          fill: a.owner === null ? '#d0d0d0' : colourOf(a.owner),
          'fill-rule': 'evenodd',
          class: 'arc',
          'data-rank': rank,
          'data-owner': a.owner ?? '',
          'data-from': a.from,
          'data-to': a.to,
        }, svg('title', {}, title)));
      }
    }
    box.append(
      svg('text', { x: c, y: c - 12, class: 'centre big' }, `epoch ${r.epoch}`),
      svg('text', { x: c, y: c + 8, class: 'centre' }, `${r.members.length} member${r.members.length === 1 ? '' : 's'}`),
      svg('text', { x: c, y: c + 24, class: 'centre' }, `${r.partitions} partitions × ${r.replicas}`),
    );
    const counts = ownedCounts(r);
    byId('legend').replaceChildren(...[...counts].map(([id, k]) =>
      el('li', { 'data-member': id, 'data-primary': k.primary, 'data-replica': k.replica },
        swatch(id), el('span', { class: 'id' }, id), ` ${k.primary} primary · ${k.replica} replica`)));
  }

  function renderRing(report: ClusterReport): void {
    const r = report.ring;
    byId('ring-card').classList.toggle('standalone', r === null);
    if (r === null) {
      byId('ring-note').textContent = 'Standalone: this sidecar owns every partition.';
      ring = null;
      return;
    }
    byId('ring-note').textContent = r.replicas > 1
      ? `Outer ring: each partition's primary; inner ring${r.replicas > 2 ? 's' : ''}: its replica${r.replicas > 2 ? 's' : ''}. As routed by ${report.from}.`
      : `Each partition's owner, as routed by ${report.from}.`;
    const key = `${r.epoch}|${r.members.join(',')}|${r.owners.length}`;
    if (key === ringKey) return;
    if (ring !== null) {
      changes.unshift({ ...ringChange(ring, r), seenAt: Date.now() });
      changes.length = Math.min(changes.length, KEEP_CHANGES);
    }
    [...r.members].sort().forEach(colourOf);
    ring = r;
    ringKey = key;
    drawRing(r);
    if (changes.length === 0) {
      byId('changes').replaceChildren(el('li', { class: 'empty' }, 'None since this page was opened.'));
      return;
    }
    byId('changes').replaceChildren(...changes.map((ch) => {
      const who = [...ch.left.map((m) => `${m} left`), ...ch.joined.map((m) => `${m} joined`)].join(', ') || 'same members';
      return el('li', { 'data-left': ch.left.join(' '), 'data-joined': ch.joined.join(' ') },
        el('time', {}, clock(ch.seenAt)), ` epoch ${ch.fromEpoch} → ${ch.toEpoch}: ${who}; `,
        `${ch.primariesMoved} primaries moved, ${ch.ownersChanged} partitions changed owners`);
    }));
  }

  function track(report: ClusterReport, now: number): void {
    const present = new Set<string>();
    for (const m of report.members) {
      present.add(m.id);
      colourOf(m.id);
      const t = tracked.get(m.id) ?? { last: m, reading: undefined, rates: [], leftAt: undefined };
      t.last = m;
      t.leftAt = undefined;
      const s = m.status;
      if (s === null) {
        t.rates.push(null);
      } else if (t.reading === undefined || s.at !== t.reading.at) {
        const reading: CounterReading = { at: s.at, startedAt: s.startedAt, requests: s.requests, originRequests: s.originRequests, forwardedRequests: s.forwardedRequests };
        if (t.reading !== undefined) t.rates.push(rateBetween(t.reading, reading));
        t.reading = reading;
      }
      if (t.rates.length > KEEP_SAMPLES) t.rates.splice(0, t.rates.length - KEEP_SAMPLES);
      tracked.set(m.id, t);
    }
    for (const [id, t] of tracked) {
      if (present.has(id)) continue;
      t.leftAt ??= now;
      if (now - t.leftAt > KEEP_LEFT_MS) tracked.delete(id);
    }
  }

  function stateOf(t: Tracked): string {
    if (t.leftAt !== undefined) return 'left';
    if (!t.last.reachable) return 'unreachable';
    if (t.last.status?.draining === true) return 'draining';
    return t.last.state;
  }

  function memberRow(id: string, t: Tracked, report: ClusterReport, counts: Map<string, { primary: number; replica: number }>): HTMLElement {
    const m = t.last;
    const s = m.status;
    const state = stateOf(t);
    const flags: string[] = [];
    if (t.leftAt !== undefined) flags.push(`gone since ${clock(t.leftAt)}`);
    else if (!m.reachable) flags.push(m.error ?? 'not answering');
    if (t.leftAt === undefined && s !== null) {
      if (!s.ready) flags.push('not ready');
      if (!s.attached) flags.push('detached from NATS');
      if (report.ring !== null && !report.ring.members.includes(id)) flags.push('not in the ring');
    }
    const gone = t.leftAt !== undefined;
    const rates = t.rates;
    // A member gone or not answering has no current rate; its charts keep what was seen.
    const latest = gone || s === null ? null : [...rates].reverse().find((r) => r !== null) ?? null;
    const reqMax = Math.max(1, ...rates.map((r) => r?.requestsPerSec ?? 0));
    const owned = counts.get(id);
    return el('tr', { 'data-member': id, 'data-state': state, class: gone ? 'gone' : '' },
      el('td', { class: 'member' }, swatch(id), el('span', { class: 'id' }, id), id === report.from ? el('span', { class: 'here' }, ' (this page)') : ''),
      el('td', {}, el('span', { class: `state ${state}` }, state), ...flags.map((f) => el('div', { class: 'flag' }, f))),
      el('td', { class: 'num' }, gone || owned === undefined ? '–' : `${owned.primary} / ${owned.replica}`),
      el('td', { class: 'chart hit-ratio' }, el('span', { class: 'num' }, formatPercent(gone ? null : s?.hitRatio)),
        spark(rates.map((r) => r?.hitRatio ?? null), 1, 'hit ratio per second', 'ratio')),
      el('td', { class: 'chart requests' }, el('span', { class: 'num' }, formatRate(latest?.requestsPerSec)),
        spark(rates.map((r) => r?.requestsPerSec ?? null), reqMax, `requests per second (top of the chart: ${formatRate(reqMax)}/s)`, 'reqs'),
        el('div', { class: 'sub' }, `hits ${formatRate(latest?.hitsPerSec)}/s`)),
      el('td', { class: 'num' }, `${formatRate(latest?.originPerSec)} / ${formatRate(latest?.forwardedPerSec)}`),
      el('td', { class: 'num' }, s === null ? '–' : String(s.appliedSeq),
        el('div', { class: `sub ${m.lag !== null && m.lag > 0 ? 'warn' : ''}` }, m.lag === null ? 'lag –' : `lag ${m.lag}`)),
      el('td', { class: 'num' }, s === null ? '–' : `${s.cache.entries} · ${formatBytes(s.cache.bytes)}`,
        s === null ? '' : el('div', { class: 'sub' }, `hot ${s.cache.hotEntries} · ${formatBytes(s.cache.hotBytes)}`)),
      el('td', { class: 'num' }, s === null ? '–' : String(s.epoch), s === null ? '' : el('div', { class: 'sub' }, `v${s.version}`)),
    );
  }

  function renderMembers(report: ClusterReport): void {
    const counts = report.ring === null ? new Map<string, { primary: number; replica: number }>() : ownedCounts(report.ring);
    if (report.ring === null) {
      for (const m of report.members) if (m.status !== null) counts.set(m.id, { primary: m.status.partitions.primary, replica: m.status.partitions.replica });
    }
    const ids = [...tracked.keys()].sort((a, b) => Number(tracked.get(a)!.leftAt !== undefined) - Number(tracked.get(b)!.leftAt !== undefined) || a.localeCompare(b));
    byId('members-body').replaceChildren(...ids.map((id) => memberRow(id, tracked.get(id)!, report, counts)));
  }

  function renderPurges(body: { from: string; limit: number; purges: PurgeRecord[] }): void {
    byId('purges-note').textContent = `The last ${body.limit} purges requested through ${body.from}'s admin API, newest first.`;
    const rows = body.purges.map((p) => el('tr', { 'data-seq': p.seq },
      el('td', {}, el('time', {}, clock(p.at))),
      el('td', { class: 'num' }, String(p.seq)),
      el('td', {}, `${p.kind}${p.kind === 'url' || p.kind === 'tags' ? ` ×${p.count}` : ''}${p.soft ? ' (soft)' : ''}`),
      el('td', { class: 'num' }, `${p.ms} ms`),
      el('td', { class: 'acked' }, p.acknowledged.join(', ') || '–'),
      el('td', { class: p.missing.length > 0 ? 'missing' : '' }, p.missing.join(', ') || 'none')));
    byId('purges-body').replaceChildren(...(rows.length > 0 ? rows : [el('tr', {}, el('td', { colspan: 6, class: 'empty' }, 'No purge through this member yet.'))]));
  }

  function renderSummary(report: ClusterReport): void {
    const r = report.ring;
    document.title = `sidecache · ${report.cluster}`;
    byId('summary').textContent = [
      `cluster ${report.cluster}`,
      `seen from ${report.from}`,
      report.mode,
      ...(r === null ? [] : [`ring epoch ${r.epoch}`, `${r.members.length} in the ring`]),
      `${report.members.length} in the view`,
    ].join(' · ');
  }

  function renderLive(ok: boolean, now: number, why?: string): void {
    const live = byId('live');
    live.className = ok ? 'live ok' : 'live down';
    live.textContent = ok ? `live · updated ${clock(now)}` : `admin API not answering since ${clock(failingSince)} (${why ?? 'no answer'}); retrying`;
  }

  async function getJson<T>(url: string): Promise<T> {
    const res = await fetch(url, { cache: 'no-store', signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    return await res.json() as T;
  }

  async function poll(): Promise<void> {
    try {
      const [report, purges] = await Promise.all([
        getJson<ClusterReport>('cluster/members'),
        getJson<{ from: string; limit: number; purges: PurgeRecord[] }>('purges'),
      ]);
      const now = Date.now();
      failingSince = 0;
      track(report, now);
      renderSummary(report);
      renderRing(report);
      renderMembers(report);
      renderPurges(purges);
      renderLive(true, now);
    } catch (err) {
      if (failingSince === 0) failingSince = Date.now();
      renderLive(false, Date.now(), (err as Error).message);
    }
    setTimeout(() => void poll(), POLL_MS);
  }

  void poll();
}
