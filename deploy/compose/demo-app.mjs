// The compose demo's app: answers GET /<path> with what its sidecar (SIDECACHE_LISTEN) gives
// for that path, and says which app answered and the sidecar's Cache-Status.
import { createServer } from 'node:http';

const [host, port] = (process.env.APP_LISTEN ?? '127.0.0.1:8080').split(':');
const sidecar = `http://${process.env.SIDECACHE_LISTEN ?? '127.0.0.1:3128'}`;
createServer(async (req, res) => {
  try {
    const r = await fetch(`${sidecar}${req.url}`, { signal: AbortSignal.timeout(10_000) });
    const body = await r.text();
    res.writeHead(r.status, { 'content-type': 'text/plain', 'x-sidecar-cache-status': r.headers.get('cache-status') ?? '' });
    res.end(`app on ${port}: ${body}`);
  } catch (err) {
    res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`app on ${port}: sidecar ${sidecar} unreachable (${err.cause?.code ?? err.message})\n`);
  }
}).listen(Number(port), host);
