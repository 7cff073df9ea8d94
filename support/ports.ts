// Free TCP ports on 127.0.0.1: ask the kernel for port 0, note the number, close. A port may be
// taken by someone else before its user binds it: the launchers retry on other ports.
import { createServer, type Server } from 'node:net';

/** `count` distinct ports that were free a moment ago (all held open together). */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const s = createServer();
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', resolve);
      });
      servers.push(s);
    }
    return servers.map((s) => (s.address() as { port: number }).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}
