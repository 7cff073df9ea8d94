// Splits what a nats-server sends a client into protocol frames (INFO, PING, PONG, +OK, -ERR,
// MSG and HMSG with their payloads), across chunk boundaries, so that a relay can drop some
// messages and pass the rest: the client stays connected and hears everything else.
import type { FrameSplitter } from '../../support/tcp-gate.js';

const CRLF = Buffer.from('\r\n');

export function natsServerFrames(): FrameSplitter {
  let buf: Buffer = Buffer.alloc(0);
  return {
    push(chunk: Buffer): Buffer[] {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const frames: Buffer[] = [];
      for (;;) {
        const eol = buf.indexOf(CRLF);
        if (eol < 0) break;
        const line = buf.subarray(0, eol).toString('latin1');
        // MSG <subject> <sid> [reply] <size>; HMSG <subject> <sid> [reply] <hdr size> <total size>
        const payload = /^H?MSG\s/i.test(line) ? Number(line.trim().split(/\s+/).at(-1)) + CRLF.length : 0;
        const size = eol + CRLF.length + payload;
        if (buf.length < size) break;
        frames.push(buf.subarray(0, size));
        buf = buf.subarray(size);
      }
      return frames;
    },
  };
}

/** A JetStream delivery of `stream` (its reply subject acks it): what a consumer of it receives. */
export function isDeliveryOf(frame: Buffer, stream: string): boolean {
  const eol = frame.indexOf(CRLF);
  const parts = frame.subarray(0, eol < 0 ? frame.length : eol).toString('latin1').split(/\s+/);
  return /^H?MSG$/i.test(parts[0] ?? '') && parts.length >= 5 && parts[3]!.startsWith(`$JS.ACK.${stream}.`);
}
