// Runs wrk pinned to the load core and parses the JSON line our Lua `done` script prints.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LOAD_CPU } from './cpu.js';
import { ensureTool, versionOf } from './install.js';
import { startProcess } from './processes.js';

const LUA_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'lua');

let wrkPath = null;

/** Path of wrk, installing Debian's package when allowed; null (with a message) when missing. */
export function ensureWrk({ install, log = console.log }) {
  wrkPath = ensureTool({ bin: 'wrk', packages: ['wrk'], install, log });
  return wrkPath;
}

export function wrkVersion() {
  return wrkPath ? versionOf(wrkPath, ['-v']).replace(/\s*Copyright.*$/, '') : 'missing';
}

/**
 * Writes the Lua script for a run into `dir`: the JSON `done` always, plus unique paths and a
 * per-connection delay when asked. Kept minimal: a Lua `request()` costs wrk CPU per request.
 */
function writeScript(dir, { uniquePaths, randomKeys, delayMs }) {
  const parts = [];
  if (uniquePaths) parts.push('unique-paths.lua');
  if (randomKeys) parts.push('random-keys.lua');
  if (delayMs !== undefined) parts.push('fixed-delay.lua');
  parts.push('done.lua');
  const file = path.join(dir, `wrk-${parts.map((p) => p.replace('.lua', '')).join('+')}.lua`);
  fs.writeFileSync(file, parts.map((p) => fs.readFileSync(path.join(LUA_DIR, p), 'utf8')).join('\n'));
  return file;
}

/**
 * One wrk run: one thread on the load core, keep-alive, `connections` for `durationSec`.
 * Options: uniquePrefix (unique paths under it; a function is called once per run, so a retried
 * run gets new paths), randomKeys ({ prefix, keys }: each request one of <prefix>1..<prefix><keys>
 * at random), delayMs (fixed pause per connection), headers ({ name: value } sent with every request).
 * Resolves { requests, durationSec, rps, bytes, errors, errorCount, latencyMs }.
 */
export async function runWrk({ url, connections, durationSec, tmpDir, uniquePrefix, randomKeys, delayMs, headers = {}, timeoutSec = 5 }) {
  if (!wrkPath) throw new Error('wrk is not available');
  const script = writeScript(tmpDir, { uniquePaths: uniquePrefix !== undefined, randomKeys: randomKeys !== undefined, delayMs });
  const args = ['-t1', `-c${connections}`, `-d${durationSec}s`, `--timeout`, `${timeoutSec}s`, ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]), '-s', script, url];
  const scriptArgs = [];
  if (uniquePrefix !== undefined) scriptArgs.push(`prefix=${typeof uniquePrefix === 'function' ? uniquePrefix() : uniquePrefix}`);
  if (randomKeys !== undefined) scriptArgs.push(`prefix=${randomKeys.prefix}`, `keys=${randomKeys.keys}`);
  if (delayMs !== undefined) scriptArgs.push(`delay_ms=${delayMs}`);
  if (scriptArgs.length > 0) args.push('--', ...scriptArgs);
  const h = startProcess({ name: 'wrk', cmd: wrkPath, args, cpu: LOAD_CPU });
  let stdout = '';
  h.proc.stdout.on('data', (d) => (stdout += d));
  // Bounded: wrk stops by itself after durationSec; this is the backstop.
  const killer = setTimeout(() => h.signal('SIGKILL'), (durationSec + timeoutSec + 20) * 1000);
  const { code, error } = await h.exited;
  clearTimeout(killer);
  if (error) throw error;
  const line = stdout.split('\n').find((l) => l.startsWith('WRK_JSON '));
  if (code !== 0 || !line) {
    throw new Error(`wrk ${args.join(' ')} failed (exit ${code}):\n${h.output()}`.trim());
  }
  return parseWrkJson(line.slice('WRK_JSON '.length));
}

/** Parses the JSON printed by lua/done.lua into milliseconds and requests/s. */
export function parseWrkJson(text) {
  const j = JSON.parse(text);
  const durationSec = j.duration_us / 1e6;
  const ms = (us) => us / 1000;
  const errorCount = Object.values(j.errors).reduce((a, b) => a + b, 0);
  return {
    requests: j.requests,
    durationSec,
    rps: durationSec > 0 ? j.requests / durationSec : 0,
    bytes: j.bytes,
    errors: j.errors,
    errorCount,
    latencyMs: {
      min: ms(j.latency_us.min),
      mean: ms(j.latency_us.mean),
      stdev: ms(j.latency_us.stdev),
      max: ms(j.latency_us.max),
      p50: ms(j.latency_us.p50),
      p90: ms(j.latency_us.p90),
      p99: ms(j.latency_us.p99),
      p999: ms(j.latency_us.p999),
    },
  };
}
