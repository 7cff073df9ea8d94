// Tables (terminal and Markdown) and the results files: <scenario>-<timestamp>.json,
// <scenario>-latest.{json,md,svg} under benchmarks/results/ (results/tmp/ for --dry-run).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export function resultsDir(dryRun) {
  return path.join(BENCH_DIR, 'results', ...(dryRun ? ['tmp'] : []));
}

export const fmt = {
  int: (v) => (v === null || v === undefined ? '-' : Math.round(v).toLocaleString('en-US')),
  ms: (v) => (v === null || v === undefined ? '-' : v < 10 ? v.toFixed(3) : v.toFixed(1)),
  us: (v) => (v === null || v === undefined ? '-' : v.toFixed(1)),
  ratio: (v) => (v === null || v === undefined ? '-' : v.toFixed(2)),
  ratio3: (v) => (v === null || v === undefined ? '-' : v.toFixed(3)),
  pct: (v) => (v === null || v === undefined ? '-' : `${Math.round(v)}%`),
  pct2: (v) => (v === null || v === undefined ? '-' : `${v.toFixed(2)}%`),
  mib: (v) => (v === null || v === undefined ? '-' : `${(v / 1048576).toFixed(1)} MiB`),
  size: (bytes) => (bytes >= 1048576 && bytes % 1048576 === 0 ? `${bytes / 1048576} MiB` : bytes >= 1024 && bytes % 1024 === 0 ? `${bytes / 1024} KiB` : `${bytes} B`),
};

/** Cells of `rows` under `columns` ({ title, get, align: 'l'|'r' }). */
function cells(columns, rows) {
  return rows.map((r) => columns.map((c) => String(c.get(r))));
}

/** A fixed-width text table for the terminal. */
export function textTable(columns, rows) {
  const body = cells(columns, rows);
  const widths = columns.map((c, i) => Math.max(c.title.length, ...body.map((b) => b[i].length)));
  const line = (vals) => vals.map((v, i) => (columns[i].align === 'l' ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ');
  return [line(columns.map((c) => c.title)), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

export function markdownTable(columns, rows) {
  const body = cells(columns, rows);
  return [
    `| ${columns.map((c) => c.title).join(' | ')} |`,
    `| ${columns.map((c) => (c.align === 'l' ? ':--' : '--:')).join(' | ')} |`,
    ...body.map((b) => `| ${b.join(' | ')} |`),
  ].join('\n');
}

/** Targets as text lines: "met    sidecache >= 0.9 x bare-node (1 KiB, c=16): 0.93". */
export function targetLines(targets) {
  return targets.map((t) => `${t.status.padEnd(6)} ${t.name}${t.detail ? `: ${t.detail}` : ''}`);
}

/** Renders a Vega-Lite spec to SVG headlessly; null (and the reason on `log`) when it cannot. */
export async function renderSvg(vlSpec, log = console.log) {
  try {
    const vega = await import('vega');
    const vl = await import('vega-lite');
    const spec = vl.compile(vlSpec).spec;
    const view = new vega.View(vega.parse(spec), { renderer: 'none' });
    const svg = await view.toSVG();
    view.finalize();
    return svg;
  } catch (err) {
    log(`  no SVG plot: vega / vega-lite unavailable or failed (${err.code ?? err.message}); run npm install`);
    return null;
  }
}

export function machineInfo(extra = {}) {
  const cpus = os.cpus();
  return {
    host: os.hostname(),
    kernel: `${os.type()} ${os.release()}`,
    cpuModel: cpus[0]?.model ?? 'unknown',
    // Not availableParallelism(): that honours this process's own pinning to the load core.
    cpus: cpus.length,
    memBytes: os.totalmem(),
    node: process.version,
    ...extra,
  };
}

/**
 * Writes the raw JSON (timestamped and latest), the Markdown and, when `vlSpec` renders, the SVG.
 * Returns the paths written.
 */
export async function writeResults({ scenario, dryRun, result, markdown, vlSpec, log = console.log }) {
  const dir = resultsDir(dryRun);
  fs.mkdirSync(dir, { recursive: true });
  const stamp = result.startedAt.replace(/[:]/g, '-').replace(/\.\d+Z$/, 'Z');
  const json = `${JSON.stringify(result, null, 2)}\n`;
  const written = [];
  const write = (name, text) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    written.push(path.relative(process.cwd(), p) || p);
  };
  write(`${scenario}-${stamp}.json`, json);
  write(`${scenario}-latest.json`, json);
  write(`${scenario}-latest.md`, markdown);
  if (vlSpec) {
    const svg = await renderSvg(vlSpec, log);
    if (svg) write(`${scenario}-latest.svg`, svg);
  }
  return written;
}
