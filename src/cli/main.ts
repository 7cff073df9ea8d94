// `sidecache <command>`: the operator's command line beside the server (bin/sidecache.js runs
// the server when no command is given). Arguments are parsed with node:util parseArgs: built
// in, strict (an unknown or malformed flag is an error) and enough for five commands.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parseDuration } from '../core/config.js';
import { AdminClient, adminToken, adminUrl, CliError, Exit } from './admin-client.js';
import { drain, inspect, purge, status, type Output } from './commands.js';
import { top } from './top.js';

const COMMON = {
  admin: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  timeout: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

const COMMON_HELP = `Options of every command:
  --admin URL      the admin API (default: http://SIDECACHE_ADMIN_LISTEN, else http://127.0.0.1:9091)
  --token TOKEN    bearer token for purge, drain and inspect (default: SIDECACHE_ADMIN_TOKEN; the
                   variable keeps it out of the process list)
  --json           the admin API's JSON, for scripts
  --timeout 10s    longest wait for one admin request
  -h, --help       this text
Exit: 0 done, 1 admin API unreachable, refusing or failing, 2 bad usage, 3 purge not acknowledged by every member.`;

interface Command {
  readonly summary: string;
  readonly usage: string;
  readonly options: ParseArgsConfig['options'];
  readonly positionals: number;
  run(client: AdminClient, values: Record<string, unknown>, positionals: string[], o: Output): Promise<number>;
}

function durationFlag(values: Record<string, unknown>, name: string, def: string): number {
  const raw = (values[name] as string | undefined) ?? def;
  try {
    return parseDuration(raw, `--${name}`);
  } catch (err) {
    throw new CliError(`--${name}: ${(err as Error).message}`, Exit.usage);
  }
}

export const COMMANDS: Readonly<Record<string, Command>> = {
  status: {
    summary: 'every member\'s state, epoch, partitions, hit ratio, applied seq and lag',
    usage: 'sidecache status [--json]',
    options: {},
    positionals: 0,
    run: (c, v, _p, o) => status(c, v.json === true, o),
  },
  purge: {
    summary: 'purge by URL, prefix, tag or everything; prints who acknowledged and who is missing',
    usage: 'sidecache purge (--url URL... | --prefix PREFIX | --tag TAG... | --all) [--soft] [--json]\n' +
      '  URL and PREFIX: absolute URLs, or paths in reverse mode; --url and --tag may be repeated\n' +
      '  --soft: mark stale (revalidate on next use) instead of removing',
    options: { url: { type: 'string', multiple: true }, prefix: { type: 'string' }, tag: { type: 'string', multiple: true }, all: { type: 'boolean' }, soft: { type: 'boolean' } },
    positionals: 0,
    run: (c, v, _p, o) => purge(c, {
      ...(v.url === undefined ? {} : { url: v.url as string[] }),
      ...(v.prefix === undefined ? {} : { prefix: v.prefix as string }),
      ...(v.tag === undefined ? {} : { tag: v.tag as string[] }),
      all: v.all === true,
      soft: v.soft === true,
    }, v.json === true, o),
  },
  drain: {
    summary: 'take this sidecar out of the ring; it serves its app by forwarding until stopped',
    usage: 'sidecache drain [--wait 60s] [--json]\n  --wait: how long to wait until no member\'s ring lists it (0: do not wait)',
    options: { wait: { type: 'string' } },
    positionals: 0,
    run: (c, v, _p, o) => drain(c, durationFlag(v, 'wait', '60s'), v.json === true, o),
  },
  top: {
    summary: 'live hits, misses, origin and forwarded requests and purges per second per member',
    usage: 'sidecache top [--interval 1s] [--count N] [--json]\n  q or Ctrl-C quits; --count: stop after N screens; --json: one line of rates per interval',
    options: { interval: { type: 'string' }, count: { type: 'string' } },
    positionals: 0,
    run: (c, v, _p, o) => {
      const intervalMs = durationFlag(v, 'interval', '1s');
      if (intervalMs < 500) throw new CliError('--interval: at least 500ms', Exit.usage);
      let count: number | undefined;
      if (v.count !== undefined) {
        count = Number(v.count);
        if (!Number.isSafeInteger(count) || count < 1) throw new CliError(`--count: expected a whole number above 0, got "${String(v.count)}"`, Exit.usage);
      }
      return top(c, { intervalMs, count, json: v.json === true }, o);
    },
  },
  inspect: {
    summary: 'whether and where a URL is cached: owners, age, ttl, tags, fence, or why not stored',
    usage: 'sidecache inspect URL [--json]\n  URL: absolute, or a path in reverse mode',
    options: {},
    positionals: 1,
    run: (c, v, p, o) => inspect(c, p[0]!, v.json === true, o),
  },
};

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  return [
    'Usage: sidecache                     run the sidecar (see sidecache --help)',
    '       sidecache <command> [options]  operate a running one through its admin API',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(width)}  ${c.summary}`),
    '',
    COMMON_HELP,
    '',
  ].join('\n');
}

const stdio: Output = {
  out: (t) => process.stdout.write(`${t}\n`),
  err: (t) => process.stderr.write(`${t}\n`),
};

/** Runs one command line; resolves with the exit code. Never throws. */
export async function runCli(argv: readonly string[], env: NodeJS.ProcessEnv, o: Output = stdio): Promise<number> {
  const [name, ...rest] = argv;
  try {
    if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
      o.out(usage());
      return name === undefined ? Exit.usage : Exit.ok;
    }
    const cmd = COMMANDS[name];
    if (cmd === undefined || !Object.hasOwn(COMMANDS, name)) throw new CliError(`unknown command "${name}"; commands: ${Object.keys(COMMANDS).join(', ')}`, Exit.usage);
    let parsed: { values: Record<string, unknown>; positionals: string[] };
    try {
      parsed = parseArgs({ args: [...rest], options: { ...COMMON, ...cmd.options }, allowPositionals: true, strict: true });
    } catch (err) {
      throw new CliError(`${name}: ${(err as Error).message}\nusage: ${cmd.usage}`, Exit.usage);
    }
    const { values, positionals } = parsed;
    if (values.help === true) {
      o.out(`${cmd.usage}\n\n${cmd.summary}\n\n${COMMON_HELP}`);
      return Exit.ok;
    }
    if (positionals.length !== cmd.positionals) {
      throw new CliError(`${name}: expected ${cmd.positionals === 0 ? 'no arguments' : `${cmd.positionals} argument(s)`}, got ${positionals.length}\nusage: ${cmd.usage}`, Exit.usage);
    }
    const client = new AdminClient({
      url: adminUrl(values.admin as string | undefined, env),
      token: adminToken(values.token as string | undefined, env),
      timeoutMs: durationFlag(values, 'timeout', '10s'),
    });
    return await cmd.run(client, values, positionals, o);
  } catch (err) {
    if (err instanceof CliError) {
      o.err(`sidecache: ${err.message}`);
      return err.exitCode;
    }
    o.err(`sidecache: ${(err as Error).stack ?? String(err)}`);
    return Exit.failed;
  }
}
