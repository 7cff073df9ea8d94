// Origins: a node:http server on a free loopback port (serveLoopback, the base of every origin
// here and of the checker's), and a test origin that counts the requests it gets, with routes a
// test defines. Tests assert on what the origin saw, not on sidecache's internals.
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LoopbackServer {
  readonly server: Server;
  readonly url: string;
  readonly port: number;
  /** Drops every connection (idle or not) and stops listening. */
  close(): Promise<void>;
}

/** `handler` on 127.0.0.1 at a port the kernel picks, keeping idle client connections `keepAliveMs`. */
export async function serveLoopback(handler: RequestListener, keepAliveMs: number): Promise<LoopbackServer> {
  const server = createServer(handler);
  server.keepAliveTimeout = keepAliveMs;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    port,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

export type Route = (req: IncomingMessage, res: ServerResponse, n: number) => void;

export interface TestOrigin {
  readonly url: string;
  readonly port: number;
  /** Requests seen, per path (with query) and in total. */
  count(path?: string): number;
  readonly requests: IncomingMessage[];
  route(path: string, r: Route): void;
  close(): Promise<void>;
}

/** Default route: 200, `public, max-age=60`, an ETag, body naming the path and request number. */
const defaultRoute: Route = (req, res, n) => {
  const body = `body of ${req.url} #${n}\n`;
  res.writeHead(200, { 'cache-control': 'public, max-age=60', etag: `"${n}"`, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(req.method === 'HEAD' ? undefined : body);
};

export async function startOrigin(routes: Record<string, Route> = {}): Promise<TestOrigin> {
  const counts = new Map<string, number>();
  const requests: IncomingMessage[] = [];
  const table = new Map(Object.entries(routes));
  let total = 0;
  const s = await serveLoopback((req, res) => {
    total++;
    requests.push(req);
    const path = req.url ?? '/';
    const n = (counts.get(path) ?? 0) + 1;
    counts.set(path, n);
    const bare = path.split('?')[0]!;
    const route = table.get(path) ?? table.get(bare) ?? [...table.entries()].find(([p]) => p.endsWith('*') && bare.startsWith(p.slice(0, -1)))?.[1] ?? defaultRoute;
    route(req, res, n);
  }, 1000);
  return {
    url: s.url,
    port: s.port,
    requests,
    count: (path?: string) => (path === undefined ? total : counts.get(path) ?? 0),
    route: (path, r) => { table.set(path, r); },
    close: s.close,
  };
}
