// A small origin for the demo and the local cluster: cacheable pages with tags, a slow
// page, and a counter of the requests it served (GET /_count). Run: node dist/demo-origin.js [port]
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';

export function createDemoOrigin(): { server: Server; count: () => number } {
  let served = 0;
  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    if (url === '/_count') {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
      res.end(`${served}\n`);
      return;
    }
    served++;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      req.resume();
      res.writeHead(204);
      res.end();
      return;
    }
    const section = url.split('/')[1] || 'home';
    const body = `page ${url}, rendered at ${new Date().toISOString()} (origin request #${served})\n`;
    const send = () => {
      res.writeHead(200, {
        'content-type': 'text/plain; charset=utf-8',
        'cache-control': 'public, max-age=300, stale-while-revalidate=30',
        etag: `"${served}"`,
        'surrogate-key': `section-${section} all-pages`,
      });
      res.end(body);
    };
    if (url.startsWith('/slow')) setTimeout(send, 500);
    else send();
  });
  return { server, count: () => served };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.argv[2] ?? 8080);
  createDemoOrigin().server.listen(port, '127.0.0.1', () => {
    process.stdout.write(`demo origin on http://127.0.0.1:${port}\n`);
  });
}
