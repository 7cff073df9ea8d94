// The command line as an operator runs it: `node bin/sidecache.js <command>` in a process of
// its own, with only the admin API's variables (SIDECACHE_ADMIN_LISTEN, SIDECACHE_ADMIN_TOKEN)
// of the sidecar it operates, none of the server's others.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SidecarProcess } from '../../support/sidecar.js';

export const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'sidecache.js');

/** The environment of a shell without SIDECACHE_* variables or the test runner's loaders. */
export function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('SIDECACHE_') && k !== 'NODE_OPTIONS' && k !== 'NODE_V8_COVERAGE' && v !== undefined) env[k] = v;
  }
  return env;
}

/** The admin variables of one sidecar, as a shell beside it has them. */
export function adminEnv(sc: SidecarProcess): Record<string, string> {
  return { SIDECACHE_ADMIN_LISTEN: sc.env.SIDECACHE_ADMIN_LISTEN!, SIDECACHE_ADMIN_TOKEN: sc.env.SIDECACHE_ADMIN_TOKEN! };
}

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function runCli(args: readonly string[], env: Record<string, string>, timeoutMs = 30_000): Promise<CliRun> {
  const proc = spawn(process.execPath, [BIN, ...args], { env: { ...cleanEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
  proc.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => proc.once('close', (code) => {
    clearTimeout(timer);
    resolve({ code, stdout, stderr });
  }));
}
