// Finds tools on PATH and, when allowed, installs missing ones from Debian with apt-get.
import { spawnSync } from 'node:child_process';
import { which } from '../../support/processes.ts';

export { which };

function aptGet(args, log) {
  const r = spawnSync('apt-get', args, {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (r.status !== 0) log(`    apt-get ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}): ${(r.stderr ?? '').trim().split('\n').slice(-2).join(' | ')}`);
  return r.status === 0;
}

/**
 * Path of `bin`; when it is missing and `install` is true, installs the first of `packages`
 * that apt-get can install (apt-get update once if the first try fails). Null when still missing.
 */
export function ensureTool({ bin, packages, install, log = console.log }) {
  const found = which(bin);
  if (found) return found;
  if (!install) {
    log(`  ${bin} is not installed and installing is off: apt-get install -y ${packages[0]}`);
    return null;
  }
  if (process.getuid?.() !== 0 || !which('apt-get')) {
    log(`  ${bin} is missing and cannot be installed here (needs root and apt-get): install one of ${packages.join(' / ')} by hand`);
    return null;
  }
  for (const pkg of packages) {
    log(`  ${bin} is missing: apt-get install -y ${pkg} …`);
    if (aptGet(['install', '-y', '-qq', pkg], log) || (aptGet(['update', '-qq'], log) && aptGet(['install', '-y', '-qq', pkg], log))) {
      const p = which(bin);
      if (p) {
        log(`  installed ${pkg}: ${p}`);
        return p;
      }
    }
  }
  log(`  could not install ${bin} (tried ${packages.join(', ')}); install it by hand: apt-get install -y ${packages[0]}`);
  return null;
}

/** First line of a tool's version output (stdout or stderr), or 'unknown'. */
export function versionOf(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  return text.split('\n')[0] || 'unknown';
}
