// The clients: at every sidecar, loops of reads (GET, HEAD, conditional) and unsafe writes,
// and one purger sending purges of every kind to a random sidecar's admin API, some right
// after an operator's edit at the origin. Each operation is recorded with its start, end and
// what came back. Every loop is bounded by a deadline and a count; every request by a timeout.
import { request } from 'node:http';
import { ADMIN_TOKEN } from '../support/sidecar.js';
import type { History, PurgeBody, PurgeOp, ReadOp, WriteOp } from './history.js';
import { GROUPS, KEYS, KEYS_PER_GROUP, LANGS, versionOfLastModified, type VersionedOrigin } from './origin.js';
import { Rng } from './prng.js';
import type { Member } from './system.js';

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Largest body a client reads: the origin's are a few dozen bytes, error pages a few hundred. */
const MAX_BODY_BYTES = 64 * 1024;

/** One request on a connection of its own (no pooled socket survives a sidecar's restart to
 *  fail a later request), given up after `timeoutMs`. */
export function httpRequest(url: string, method: string, headers: Record<string, string>, body: string | undefined, timeoutMs: number): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: { ...headers, connection: 'close' }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= MAX_BODY_BYTES) chunks.push(c);
      });
      res.once('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
      });
      res.once('error', (err) => { clearTimeout(timer); reject(err); });
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    req.once('error', (err) => { clearTimeout(timer); reject(err); });
    req.end(body);
  });
}

const BODY_RE = /^key=(\S+) v=(\d+) f=(\d+) lang=(\S+)/;

export interface WorkloadOptions {
  readonly history: History;
  readonly members: Member[];
  readonly origin: VersionedOrigin;
  readonly seed: number;
  /** The loops stop issuing operations at this history time. */
  readonly until: number;
  /** Longest a request may take before the client gives up (the availability bound and some). */
  readonly requestTimeoutMs: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A member that can answer now: `preferred` if it can, else the next one up. */
function liveMember(members: readonly Member[], preferred: number): Member | undefined {
  for (let k = 0; k < members.length; k++) {
    const m = members[(preferred + k) % members.length]!;
    if (m.state === 'up') return m;
  }
  return undefined;
}

/** Reads and writes at one sidecar, as one client of it. */
export async function clientLoop(o: WorkloadOptions, member: Member, name: string): Promise<void> {
  const rng = Rng.fork(o.seed, `client-${name}`);
  const { history } = o;
  const seen = new Map<string, { etag?: string; lastModified?: string }>();
  for (let n = 0; n < 100_000 && history.now() < o.until; n++) {
    await sleep(rng.between(20, 120));
    // A member that left for good (scale-in) has no clients left.
    if (history.now() >= o.until || member.state === 'gone') break;
    const key = rng.pick(KEYS);
    if (rng.chance(0.06)) {
      await write(o, member, name, key, rng.chance(0.5) ? 'POST' : 'PUT');
      continue;
    }
    const headers: Record<string, string> = {};
    const lang = rng.pick(LANGS);
    headers['accept-language'] = lang;
    const method = rng.chance(0.1) ? 'HEAD' : 'GET';
    const prior = seen.get(key);
    if (method === 'GET' && prior !== undefined && rng.chance(0.12)) {
      if (prior.etag !== undefined) headers['if-none-match'] = prior.etag;
      else if (prior.lastModified !== undefined) headers['if-modified-since'] = prior.lastModified;
    }
    const op: ReadOp = {
      type: 'read', id: history.id(), client: name, member: member.id, method, key, lang,
      ...(headers['if-none-match'] !== undefined ? { ifNoneMatch: headers['if-none-match'] } : {}),
      ...(headers['if-modified-since'] !== undefined ? { ifModifiedSince: headers['if-modified-since'] } : {}),
      start: history.now(),
    };
    history.ops.push(op);
    try {
      const a = await httpRequest(member.url + key, method, headers, undefined, o.requestTimeoutMs);
      op.end = history.now();
      readAnswer(op, a);
      if (a.status === 200) {
        const etag = header(a, 'etag');
        const lm = header(a, 'last-modified');
        seen.set(key, { ...(etag !== undefined ? { etag } : {}), ...(lm !== undefined ? { lastModified: lm } : {}) });
      }
    } catch (err) {
      op.end = history.now();
      op.error = (err as Error).message;
    }
  }
}

function header(a: HttpAnswer, name: string): string | undefined {
  const v = a.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** What a read's answer says about the version it served. */
export function readAnswer(op: ReadOp, a: HttpAnswer): void {
  op.status = a.status;
  const cs = header(a, 'cache-status');
  if (cs !== undefined) op.cacheStatus = cs;
  op.fromOrigin = header(a, 'x-origin') === '1';
  if (a.status === 200 && op.method === 'GET') {
    const m = BODY_RE.exec(a.body);
    if (m !== null) {
      op.bodyKey = m[1]!;
      op.version = Number(m[2]);
      op.fetchId = Number(m[3]);
      op.bodyLang = m[4]!;
    }
  } else if (a.status === 200) {
    const v = header(a, 'x-version');
    const f = header(a, 'x-fetch');
    if (v !== undefined) op.version = Number(v);
    if (f !== undefined) op.fetchId = Number(f);
  } else if (a.status === 304) {
    // A 304 says the validator the client holds is current: that is the version it claims.
    const etag = header(a, 'etag') ?? op.ifNoneMatch;
    const m = etag === undefined ? null : /"(\d+)"/.exec(etag);
    if (m !== null) op.version = Number(m[1]);
    else if (op.ifModifiedSince !== undefined) {
      const v = versionOfLastModified(op.ifModifiedSince);
      if (v !== undefined) op.version = v;
    }
  }
}

async function write(o: WorkloadOptions, member: Member, name: string, key: string, method: 'POST' | 'PUT'): Promise<void> {
  const { history } = o;
  const op: WriteOp = { type: 'write', id: history.id(), client: name, member: member.id, method, key, start: history.now() };
  history.ops.push(op);
  try {
    const a = await httpRequest(member.url + key, method, { 'content-type': 'text/plain' }, `write ${op.id}`, o.requestTimeoutMs);
    op.end = history.now();
    op.status = a.status;
    op.fromOrigin = header(a, 'x-origin') === '1';
    const v = header(a, 'x-version');
    if (v !== undefined) op.version = Number(v);
  } catch (err) {
    op.end = history.now();
    op.error = (err as Error).message;
  }
}

/** Purges of every kind at random sidecars; half of them follow an operator's edit of what they purge. */
export async function purgerLoop(o: WorkloadOptions): Promise<void> {
  const rng = Rng.fork(o.seed, 'purger');
  const { history } = o;
  for (let n = 0; n < 20_000 && history.now() < o.until; n++) {
    await sleep(rng.between(150, 700));
    if (history.now() >= o.until) break;
    const kind = rng.weighted({ url: 45, prefix: 15, tags: 20, all: 5 });
    const soft = rng.chance(0.2) ? { soft: true } : {};
    let body: PurgeBody;
    let edited: string[];
    switch (kind) {
      case 'url': {
        const keys = [...new Set([rng.pick(KEYS), ...(rng.chance(0.3) ? [rng.pick(KEYS)] : [])])];
        body = { url: keys, ...soft };
        edited = keys;
        break;
      }
      case 'prefix': {
        const g = rng.pick(GROUPS);
        body = { prefix: `/k/${g}/`, ...soft };
        edited = [`/k/${g}/${rng.int(KEYS_PER_GROUP)}`];
        break;
      }
      case 'tags': {
        const tag = rng.chance(0.5) ? `g-${rng.pick(GROUPS)}` : `t-${rng.int(3)}`;
        body = { tags: [tag], ...soft };
        edited = KEYS.filter((k) => tag.startsWith('g-') ? k.startsWith(`/k/${tag.slice(2)}/`) : Number(k.split('/')[3]) % 3 === Number(tag.slice(2))).slice(0, 2);
        break;
      }
      default:
        body = { all: true, ...soft };
        edited = [rng.pick(KEYS)];
    }
    if (rng.chance(0.5)) for (const k of edited) o.origin.bump(k);
    const target = liveMember(o.members, rng.int(o.members.length));
    if (target === undefined) continue;
    await purge(o, target, body);
  }
}

export async function purge(o: WorkloadOptions, member: Member, body: PurgeBody): Promise<PurgeOp> {
  const { history } = o;
  const op: PurgeOp = { type: 'purge', id: history.id(), member: member.id, body, start: history.now() };
  history.ops.push(op);
  try {
    const a = await httpRequest(`${member.adminUrl}/purge`, 'POST',
      { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, JSON.stringify(body), o.requestTimeoutMs);
    op.end = history.now();
    op.status = a.status;
    try {
      const j = JSON.parse(a.body) as { seq?: number; acknowledged?: string[]; missing?: string[]; error?: string };
      if (typeof j.seq === 'number') op.seq = j.seq;
      if (Array.isArray(j.acknowledged)) op.acknowledged = j.acknowledged;
      if (Array.isArray(j.missing)) op.missing = j.missing;
      if (typeof j.error === 'string') op.error = j.error;
    } catch {
      op.error = `not JSON: ${a.body.slice(0, 200)}`;
    }
  } catch (err) {
    op.end = history.now();
    op.error = (err as Error).message;
  }
  return op;
}
