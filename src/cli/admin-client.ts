// The command line's way to the admin API: the URL and token the sidecar beside it reads
// (SIDECACHE_ADMIN_LISTEN, SIDECACHE_ADMIN_TOKEN) unless flags say otherwise, and requests
// whose failures become one clear message. It reads none of the server's other variables.
import { parseListen, VARIABLES } from '../core/config.js';

/** A failure the user must read: the message is printed as it is, with this exit code. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** Exit codes: 0 done, 1 the admin API is unreachable, refused or failed, 2 bad usage,
 *  3 done but incomplete (a purge some members did not acknowledge). */
export const Exit = { ok: 0, failed: 1, usage: 2, incomplete: 3 } as const;

const DEFAULT_ADMIN_LISTEN = VARIABLES.find((v) => v.name === 'SIDECACHE_ADMIN_LISTEN')!.def;

/** The admin API's base URL: `--admin` (a URL or host:port), else SIDECACHE_ADMIN_LISTEN, else
 *  its default. A wildcard listen address is reached on loopback. */
export function adminUrl(flag: string | undefined, env: NodeJS.ProcessEnv): URL {
  if (flag !== undefined) {
    const raw = /^[a-z][a-z0-9+.-]*:\/\//i.test(flag) ? flag : `http://${flag}`;
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new CliError(`--admin: expected a URL such as http://127.0.0.1:9091, got "${flag}"`, Exit.usage);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CliError(`--admin: expected an http(s) URL, got "${flag}"`, Exit.usage);
    if (url.username !== '' || url.password !== '') throw new CliError('--admin: give the token with --token or SIDECACHE_ADMIN_TOKEN, not in the URL', Exit.usage);
    url.pathname = url.pathname.replace(/\/+$/, '');
    url.search = '';
    url.hash = '';
    return url;
  }
  const raw = env.SIDECACHE_ADMIN_LISTEN === undefined || env.SIDECACHE_ADMIN_LISTEN.trim() === '' ? DEFAULT_ADMIN_LISTEN : env.SIDECACHE_ADMIN_LISTEN;
  let l: { host: string; port: number };
  try {
    l = parseListen(raw, 'SIDECACHE_ADMIN_LISTEN');
  } catch (err) {
    throw new CliError(`SIDECACHE_ADMIN_LISTEN: ${(err as Error).message}; or give --admin URL`, Exit.usage);
  }
  let host = l.host;
  if (host === '0.0.0.0' || host === '') host = '127.0.0.1';
  else if (host === '::') host = '::1';
  return new URL(`http://${host.includes(':') ? `[${host}]` : host}:${l.port}`);
}

export function adminToken(flag: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  const t = flag ?? env.SIDECACHE_ADMIN_TOKEN;
  return t === undefined || t.trim() === '' ? undefined : t.trim();
}

export interface AdminClientOptions {
  readonly url: URL;
  readonly token: string | undefined;
  readonly timeoutMs: number;
}

export class AdminClient {
  readonly url: URL;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;

  constructor(o: AdminClientOptions) {
    this.url = o.url;
    this.#token = o.token;
    this.#timeoutMs = o.timeoutMs;
  }

  get hasToken(): boolean {
    return this.#token !== undefined;
  }

  /** JSON from the admin API; CliError when it cannot be reached, refuses or fails. */
  async request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const url = `${this.url.href.replace(/\/$/, '')}${path}`;
    const headers: Record<string, string> = {};
    if (this.#token !== undefined) headers.authorization = `Bearer ${this.#token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(url, {
        method, headers, signal: AbortSignal.timeout(this.#timeoutMs),
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      const why = e.name === 'TimeoutError' ? `no answer within ${this.#timeoutMs} ms` : e.cause?.code ?? e.cause?.message ?? e.message;
      throw new CliError(`cannot reach the admin API at ${this.url.origin} (${why}): is the sidecar running? Point to it with --admin URL or SIDECACHE_ADMIN_LISTEN`);
    }
    const text = await res.text();
    let json: { error?: unknown } | undefined;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (res.status === 401) {
      const given = this.#token === undefined ? 'no token was given' : 'the token given is not the one it expects';
      throw new CliError(`the admin API at ${this.url.origin} refused the request (401): ${given}; set --token or SIDECACHE_ADMIN_TOKEN`);
    }
    if (!res.ok) {
      const why = typeof json?.error === 'string' ? json.error : text.slice(0, 200).trim();
      throw new CliError(`the admin API at ${this.url.origin} refused ${method} ${path.split('?')[0]} (${res.status}): ${why}`);
    }
    if (json === undefined) throw new CliError(`the admin API at ${this.url.origin} answered ${method} ${path.split('?')[0]} with something other than JSON`);
    return json as T;
  }
}
