// A real node:http origin on a free port that counts the requests it gets, with routes a
// test defines. Tests assert on what the origin saw, not on sidecache's internals.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

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
  const server: Server = createServer((req, res) => {
    total++;
    requests.push(req);
    const path = req.url ?? '/';
    const n = (counts.get(path) ?? 0) + 1;
    counts.set(path, n);
    const bare = path.split('?')[0]!;
    const route = table.get(path) ?? table.get(bare) ?? [...table.entries()].find(([p]) => p.endsWith('*') && bare.startsWith(p.slice(0, -1)))?.[1] ?? defaultRoute;
    route(req, res, n);
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    count: (path?: string) => (path === undefined ? total : counts.get(path) ?? 0),
    route: (path, r) => { table.set(path, r); },
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
