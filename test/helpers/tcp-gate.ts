// A TCP relay on a free loopback port that can be held: while held it moves no bytes either
// way and keeps every connection open, as a server that hangs (or a network that drops
// everything without resetting) looks to a client. Used to cut one sidecar off from NATS while
// its peers still reach the same server.
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface TcpGate {
  /** `nats://127.0.0.1:<port>` style address of the relay, with the given scheme. */
  url(scheme: string): string;
  hold(): void;
  release(): void;
  close(): Promise<void>;
}

export async function startTcpGate(targetPort: number): Promise<TcpGate> {
  const sockets = new Set<Socket>();
  let held = false;
  const track = (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    if (held) s.pause();
  };
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    track(client);
    track(upstream);
    // Plain 'data' relays, not pipe(): pipe() resumes a source on drain, which would undo a hold.
    client.on('data', (d: Buffer) => upstream.write(d));
    upstream.on('data', (d: Buffer) => client.write(d));
    const end = () => { client.destroy(); upstream.destroy(); };
    client.once('error', end).once('close', end);
    upstream.once('error', end).once('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (scheme) => `${scheme}://127.0.0.1:${port}`,
    hold() {
      held = true;
      for (const s of sockets) s.pause();
    },
    release() {
      held = false;
      for (const s of sockets) s.resume();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
