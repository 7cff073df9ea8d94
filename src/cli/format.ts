// Plain-text output of the command line: aligned tables and short numbers for people.

/** Columns padded to their widest cell; the last column is not padded. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export function percent(ratio: number | null | undefined): string {
  return ratio === null || ratio === undefined ? '-' : `${(ratio * 100).toFixed(1)}%`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n}B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)}${units[u]}`;
}

/** Seconds as 45s, 12m, 3h or 2d. */
export function duration(sec: number): string {
  const s = Math.round(sec);
  const a = Math.abs(s);
  const sign = s < 0 ? '-' : '';
  if (a < 60) return `${sign}${a}s`;
  if (a < 3600) return `${sign}${Math.floor(a / 60)}m`;
  if (a < 86400) return `${sign}${Math.floor(a / 3600)}h`;
  return `${sign}${Math.floor(a / 86400)}d`;
}

/** A rate per second, to one decimal below 10. */
export function rate(perSec: number | undefined): string {
  if (perSec === undefined || !Number.isFinite(perSec)) return '-';
  return perSec < 10 ? perSec.toFixed(1) : String(Math.round(perSec));
}
