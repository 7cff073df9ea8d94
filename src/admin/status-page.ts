// The status page on the admin listener: GET / (HTML), /status.css, /status.js, /favicon.svg, all static
// and built once. Read-only and open like /metrics; it reads /cluster/members and /purges.
// Nothing external (it works offline) and a strict Content-Security-Policy: scripts, styles
// and fetches from this listener only, no inline script or style, no frames, no forms.
import type { ServerResponse } from 'node:http';
import { statusClient } from './status-client.js';
import { arcPath, formatBytes, formatPercent, formatRate, rateBetween, ringArcs, ringChange, sparkPath } from './status-view.js';

export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
].join('; ');

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sidecache</title>
<link rel="icon" href="favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="status.css">
<script src="status.js" defer></script>
</head>
<body>
<header>
<h1>sidecache</h1>
<span id="summary">loading…</span>
<span id="live" class="live" role="status"></span>
</header>
<noscript><p>This page needs JavaScript. The same data: <a href="cluster/members">cluster/members</a>, <a href="purges">purges</a>.</p></noscript>
<main>
<section class="card" id="ring-card">
<h2>Ring</h2>
<p class="note" id="ring-note"></p>
<div class="ring-box">
<svg id="ring" viewBox="0 0 320 320" width="320" height="320" role="img" aria-label="the ring: partitions and their owners"></svg>
<ul id="legend"></ul>
</div>
<h3>Ring changes seen</h3>
<ul id="changes"></ul>
</section>
<section class="card" id="purges-card">
<h2>Recent purges</h2>
<p class="note" id="purges-note"></p>
<table id="purges">
<thead><tr><th>at</th><th>seq</th><th>what</th><th>took</th><th>acknowledged</th><th>missing</th></tr></thead>
<tbody id="purges-body"></tbody>
</table>
</section>
<section class="card wide" id="members-card">
<h2>Members</h2>
<p class="note">Charts: one sample a second since this page was opened, the last 5 minutes at most. Partitions: primary / replica, in the ring above.</p>
<table id="members">
<thead><tr><th>member</th><th>state</th><th>partitions</th><th>hit ratio</th><th>requests/s</th><th>origin / fwd /s</th><th>applied seq</th><th>cache</th><th>epoch</th></tr></thead>
<tbody id="members-body"></tbody>
</table>
</section>
</main>
</body>
</html>
`;

const CSS = `
:root { color-scheme: light; --fg: #1d2433; --muted: #667085; --line: #e3e6ea; --bg: #f5f6f8; --warn: #b54708; --bad: #c01c28; --good: #18794e; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; gap: 4px 16px; align-items: baseline; padding: 12px 20px; background: #fff; border-bottom: 1px solid var(--line); }
h1 { font-size: 18px; margin: 0; }
h2 { font-size: 15px; margin: 0 0 4px; }
h3 { font-size: 13px; margin: 12px 0 4px; color: var(--muted); font-weight: 600; }
#summary { color: var(--muted); }
.live { margin-left: auto; font-size: 13px; }
.live::before { content: "●"; margin-right: 6px; }
.live.ok { color: var(--good); }
.live.down { color: var(--bad); font-weight: 600; }
main { display: grid; grid-template-columns: minmax(420px, 1fr) minmax(420px, 1fr); gap: 16px; padding: 16px 20px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; min-width: 0; }
.card.wide { grid-column: 1 / -1; }
.note { color: var(--muted); margin: 0 0 8px; font-size: 12px; }
.ring-box { display: flex; flex-wrap: wrap; gap: 16px; align-items: center; }
#ring-card.standalone #ring, #ring-card.standalone #legend { display: none; }
#ring .arc { stroke: #fff; stroke-width: 0.6; }
#ring .arc:hover { opacity: 0.75; }
#ring .centre { text-anchor: middle; font-size: 12px; fill: var(--muted); }
#ring .centre.big { font-size: 16px; font-weight: 600; fill: var(--fg); }
ul { list-style: none; margin: 0; padding: 0; }
#legend li { margin: 4px 0; white-space: nowrap; }
#changes li { font-size: 12px; margin: 2px 0; }
#changes time, #purges time { color: var(--muted); font-variant-numeric: tabular-nums; }
.swatch { vertical-align: -1px; margin-right: 6px; }
.id { font-weight: 600; }
.here { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; width: 100%; }
th { text-align: left; font-size: 12px; color: var(--muted); font-weight: 600; border-bottom: 1px solid var(--line); padding: 4px 8px; }
td { border-bottom: 1px solid var(--line); padding: 6px 8px; vertical-align: top; }
.num { font-variant-numeric: tabular-nums; }
td.chart .num { display: inline-block; min-width: 52px; }
.spark { vertical-align: middle; }
.spark .base { stroke: var(--line); stroke-width: 1; }
.spark .line { fill: none; stroke-width: 1.5; stroke-linejoin: round; stroke-linecap: round; }
.spark.ratio .line { stroke: var(--good); }
.spark.reqs .line { stroke: #1f77b4; }
.sub { color: var(--muted); font-size: 12px; }
.sub.warn { color: var(--warn); font-weight: 600; }
.flag { color: var(--muted); font-size: 12px; max-width: 260px; overflow-wrap: anywhere; }
.state { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px; font-weight: 600; background: #eef0f3; }
.state.active { background: #dcfae6; color: var(--good); }
.state.joining, .state.warming, .state.draining { background: #fef0c7; color: var(--warn); }
.state.unreachable { background: #fee4e2; color: var(--bad); }
.state.left { background: #eef0f3; color: var(--muted); }
tr.gone td { color: var(--muted); }
tr.gone .spark .line { stroke: #b0b6bf; }
td.missing { color: var(--bad); font-weight: 600; }
td.empty, li.empty { color: var(--muted); }
@media (max-width: 900px) { main { grid-template-columns: 1fr; } }
`;

/** The helpers first, as the page's globals of the names statusClient calls, then statusClient. */
const SCRIPT = [
  "'use strict';",
  ...[rateBetween, ringArcs, arcPath, sparkPath, ringChange, formatRate, formatPercent, formatBytes].map((f) => f.toString()),
  `(${statusClient.toString()})();`,
].join('\n');

/** Without an icon of its own the browser asks for /favicon.ico and logs the 404. */
const ICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="6" fill="none" stroke="#1f77b4" stroke-width="3"/></svg>';

interface Asset { readonly type: string; readonly body: Buffer }

const ASSETS: ReadonlyMap<string, Asset> = new Map([
  ['/', { type: 'text/html; charset=utf-8', body: Buffer.from(HTML) }],
  ['/status.css', { type: 'text/css; charset=utf-8', body: Buffer.from(CSS) }],
  ['/status.js', { type: 'text/javascript; charset=utf-8', body: Buffer.from(SCRIPT) }],
  ['/favicon.svg', { type: 'image/svg+xml', body: Buffer.from(ICON) }],
]);

/** Answers GET or HEAD of a page path; false when `path` is not one. */
export function serveStatusPage(path: string, method: string, res: ServerResponse): boolean {
  const a = ASSETS.get(path);
  if (a === undefined) return false;
  res.writeHead(200, {
    'content-type': a.type,
    'content-length': a.body.length,
    'content-security-policy': STATUS_PAGE_CSP,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cross-origin-resource-policy': 'same-origin',
    'cross-origin-opener-policy': 'same-origin',
    'cache-control': 'no-store',
  });
  res.end(method === 'HEAD' ? undefined : a.body);
  return true;
}
