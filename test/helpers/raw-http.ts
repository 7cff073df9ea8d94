// Raw HTTP for tests that must send or read what fetch will not: forbidden or hop-by-hop
// headers, malformed requests, CONNECT and Upgrade. Responses are parsed minimally.
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';

export interface RawResponse {
  readonly status: number;
  /** Lower-cased names; repeated fields joined with ", ". */
  readonly headers: Record<string, string>;
  readonly body: Buffer;
}

/** Parses one response (head + body by Content-Length, or up to the end) from bytes. A 1xx,
 *  204 or 304 has no body whatever its fields say (RFC 9112 §6.3): what follows it is the next
 *  response (an interim response and the final one often come in one read). */
export function parseResponse(buf: Buffer): RawResponse & { readonly rest: Buffer } {
  const end = buf.indexOf('\r\n\r\n');
  if (end === -1) throw new Error(`no complete response head in ${JSON.stringify(buf.toString('latin1').slice(0, 200))}`);
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!);
  if (!m) throw new Error(`bad status line ${JSON.stringify(lines[0])}`);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  const start = end + 4;
  const status = Number(m[1]);
  const cl = headers['content-length'];
  const stop = status < 200 || status === 204 || status === 304 ? start : cl === undefined ? buf.length : Math.min(buf.length, start + Number(cl));
  return { status, headers, body: buf.subarray(start, stop), rest: buf.subarray(stop) };
}

/** Writes `text` to host:port and reads until the server closes (or timeoutMs). */
export function rawExchange(port: number, text: string | Buffer, timeoutMs = 5_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = connect(port, '127.0.0.1', () => s.write(text));
    const timer = setTimeout(() => { s.destroy(); resolve(Buffer.concat(chunks)); }, timeoutMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', (err) => { clearTimeout(timer); if (chunks.length > 0) resolve(Buffer.concat(chunks)); else reject(err); });
    s.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks)); });
  });
}

/** One raw request with `Connection: close` semantics: the parsed response. */
export async function rawRequest(port: number, text: string | Buffer): Promise<RawResponse> {
  return parseResponse(await rawExchange(port, text));
}

/** A socket with a reader that waits for a given amount of data or a complete head. */
export class RawSocket {
  readonly socket: Socket;
  #buf = Buffer.alloc(0);
  #waiters: Array<() => void> = [];
  closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => { this.#buf = Buffer.concat([this.#buf, c]); this.#wake(); });
    socket.on('close', () => { this.closed = true; this.#wake(); });
    socket.on('error', () => { /* close follows */ });
  }

  static open(port: number): Promise<RawSocket> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(new RawSocket(s)));
      s.once('error', reject);
    });
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  async #until(ready: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      if (this.closed) throw new Error(`socket closed while waiting for ${what}; got ${JSON.stringify(this.#buf.toString('latin1').slice(0, 300))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.#buf.toString('latin1').slice(0, 300))}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#waiters.push(() => { clearTimeout(t); r(); });
      });
    }
  }

  /** Reads one response whose body is delimited by Content-Length (or has none). */
  async readResponse(timeoutMs = 5_000): Promise<RawResponse> {
    await this.#until(() => this.#buf.indexOf('\r\n\r\n') !== -1, timeoutMs, 'a response head');
    const head = parseResponse(this.#buf);
    const cl = head.status < 200 || head.status === 204 || head.status === 304 ? 0 : Number(head.headers['content-length'] ?? 0);
    const start = this.#buf.indexOf('\r\n\r\n') + 4;
    await this.#until(() => this.#buf.length >= start + cl, timeoutMs, 'the response body');
    const r = parseResponse(this.#buf);
    this.#buf = Buffer.from(r.rest);
    return { status: r.status, headers: r.headers, body: r.body };
  }

  /** Reads exactly n bytes. */
  async read(n: number, timeoutMs = 5_000): Promise<Buffer> {
    await this.#until(() => this.#buf.length >= n, timeoutMs, `${n} bytes`);
    const out = this.#buf.subarray(0, n);
    this.#buf = Buffer.from(this.#buf.subarray(n));
    return out;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** node:http GET/any with exactly these headers (fetch forbids some, e.g. Connection, TE). */
export function httpCall(
  url: string,
  opts: { method?: string; headers?: Record<string, string | string[]>; body?: string | Buffer } = {},
): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}
