// What the soak reads of a sidecar from outside, in /proc: its resident memory, and its file
// descriptors by kind (which listener a socket came in on, which peer, origin or NATS server it
// goes to), so that a change in the count can be traced to its cause.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export function readRss(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? undefined : Number(m[1]) * 1024;
  } catch {
    return undefined;
  }
}

interface TcpSocket { readonly local: number; readonly remote: number; readonly listening: boolean }

/** Every TCP socket of this network namespace by inode (/proc/net/tcp and tcp6): read once per sample. */
export function tcpSockets(): Map<string, TcpSocket> {
  const out = new Map<string, TcpSocket>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try { text = readFileSync(file, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const port = (addr: string) => parseInt(addr.slice(addr.lastIndexOf(':') + 1), 16);
      out.set(f[9]!, { local: port(f[1]!), remote: port(f[2]!), listening: f[3] === '0A' });
    }
  }
  return out;
}

export interface PortRoles {
  /** This sidecar's listeners. */
  readonly listen: number;
  readonly admin: number;
  readonly peer: number;
  /** Where its outgoing connections may go. */
  readonly peers: ReadonlySet<number>;
  readonly origin: number;
  readonly nats: ReadonlySet<number>;
}

/** The kinds counted: client-in, admin-in, peer-in, peer-out, origin, nats, listen, other-tcp, other-socket, other. */
export function fdKinds(pid: number, roles: PortRoles, tcp: ReadonlyMap<string, TcpSocket>): Record<string, number> | undefined {
  let names: string[];
  try { names = readdirSync(`/proc/${pid}/fd`); } catch { return undefined; }
  const kinds: Record<string, number> = {};
  const add = (k: string) => { kinds[k] = (kinds[k] ?? 0) + 1; };
  for (const n of names) {
    let target: string;
    try { target = readlinkSync(`/proc/${pid}/fd/${n}`); } catch { continue; }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m === null) { add('other'); continue; }
    const s = tcp.get(m[1]!);
    if (s === undefined) add('other-socket');
    else if (s.listening) add('listen');
    else if (s.local === roles.listen) add('client-in');
    else if (s.local === roles.admin) add('admin-in');
    else if (s.local === roles.peer) add('peer-in');
    else if (roles.peers.has(s.remote)) add('peer-out');
    else if (s.remote === roles.origin) add('origin');
    else if (roles.nats.has(s.remote)) add('nats');
    else add('other-tcp');
  }
  return kinds;
}

/** Resident bytes of a process by kind of mapping (/proc/PID/smaps): glibc's main malloc arena
 *  (`[heap]`, where the main thread's buffers live), anonymous memory (V8's heap pages, the
 *  other threads' malloc arenas, large mmapped allocations, thread stacks), the executable's own
 *  file pages (code and read-only data paged in as they are used) and other files (libraries). */
export interface ResidentMaps { readonly mallocHeap: number; readonly anon: number; readonly executable: number; readonly files: number }

export function readResidentMaps(pid: number | undefined, executable: string): ResidentMaps | undefined {
  if (pid === undefined) return undefined;
  let text: string;
  try { text = readFileSync(`/proc/${pid}/smaps`, 'utf8'); } catch { return undefined; }
  const out = { mallocHeap: 0, anon: 0, executable: 0, files: 0 };
  let kind: keyof ResidentMaps = 'anon';
  for (const line of text.split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+(?:\s+(.*))?$/.exec(line);
    if (head !== null) {
      const name = head[1] ?? '';
      kind = name === '[heap]' ? 'mallocHeap' : name === executable ? 'executable' : name === '' || name.startsWith('[') ? 'anon' : 'files';
      continue;
    }
    if (line.startsWith('Rss:')) out[kind] += Number(/(\d+)/.exec(line)![1]) * 1024;
  }
  return out;
}
