// A TCP relay on a free loopback port that can be held or made to lag. Held, it moves no bytes
// either way and keeps every connection open, as a server that hangs (or a network that drops
// everything without resetting) looks to a client: it cuts one sidecar off from NATS while its
// peers still reach the same server. Lagging, it delivers every chunk `ms` after it arrived, in
// order, as a slow link does: that member applies the log late but is still alive. Cut, it
// drops its connections and what they held, as a network that lost those bytes. Given a way
// to split what the server sends into frames, it can drop some of them and pass the rest
// (nats-frames.ts: a NATS client that hears everything but one consumer's deliveries).
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/** Splits a byte stream into whole frames, keeping a partial one until the rest arrives. */
export interface FrameSplitter {
  push(chunk: Buffer): Buffer[];
}

export interface TcpGateOptions {
  /** Splits each connection's server-to-client bytes into frames (from its first byte), so
   *  that `dropFromServer` can drop some of them. */
  readonly serverFrames?: () => FrameSplitter;
}

export interface TcpGate {
  /** `nats://127.0.0.1:<port>` style address of the relay, with the given scheme. */
  url(scheme: string): string;
  hold(): void;
  /** Resolves when a client sends bytes containing `pattern`: those bytes are withheld (never
   *  reach the server) and the gate holds from then on. */
  holdWhenSent(pattern: string): Promise<void>;
  release(): void;
  /** Destroys every connection through the relay (what it held is lost, as on a network that
   *  dropped it) and keeps accepting new ones. */
  cut(): void;
  /** Deliver what arrives from now on `ms` later (0: at once), both ways, keeping order. */
  lag(ms: number): void;
  /** Server-to-client frames for which `drop` is true are not delivered, from now on (needs
   *  `serverFrames`); undefined: deliver everything again. */
  dropFromServer(drop: ((frame: Buffer) => boolean) | undefined): void;
  close(): Promise<void>;
}

export async function startTcpGate(targetPort: number, options: TcpGateOptions = {}): Promise<TcpGate> {
  const sockets = new Set<Socket>();
  let held = false;
  let lagMs = 0;
  let drop: ((frame: Buffer) => boolean) | undefined;
  let trigger: { pattern: Buffer; fire: () => void } | undefined;
  const track = (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    if (held) s.pause();
  };
  /** Each direction keeps its own clock, so a lag never reorders its bytes. */
  const relay = (from: Socket, to: Socket, fromClient: boolean) => {
    let lastAt = 0;
    const frames = fromClient ? undefined : options.serverFrames?.();
    from.on('data', (chunk: Buffer) => {
      let d = chunk;
      if (frames !== undefined) {
        const kept = frames.push(chunk).filter((f) => drop?.(f) !== true);
        if (kept.length === 0) return;
        d = Buffer.concat(kept);
      }
      if (fromClient && trigger !== undefined && d.includes(trigger.pattern)) {
        const fire = trigger.fire;
        trigger = undefined;
        held = true;
        for (const s of sockets) s.pause();
        fire();
        return;
      }
      if (lagMs === 0 && lastAt <= Date.now()) {
        to.write(d);
        return;
      }
      lastAt = Math.max(lastAt, Date.now() + lagMs);
      setTimeout(() => { if (!to.destroyed) to.write(d); }, lastAt - Date.now());
    });
  };
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    track(client);
    track(upstream);
    // Plain 'data' relays, not pipe(): pipe() resumes a source on drain, which would undo a hold.
    relay(client, upstream, true);
    relay(upstream, client, false);
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
    holdWhenSent(pattern) {
      return new Promise<void>((resolve) => { trigger = { pattern: Buffer.from(pattern), fire: resolve }; });
    },
    release() {
      held = false;
      for (const s of sockets) s.resume();
    },
    lag(ms) {
      lagMs = ms;
    },
    dropFromServer(fn) {
      if (fn !== undefined && options.serverFrames === undefined) throw new Error('dropFromServer needs the serverFrames option');
      drop = fn;
    },
    cut() {
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
