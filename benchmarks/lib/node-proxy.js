// node-proxy: the cheapest Node reverse proxy, the miss scenario's baseline. node:http in front
// of one origin through undici (the project's own dependency), one keep-alive Pool, the response
// streamed through chunk by chunk with backpressure; no cache, no header rewriting beyond the
// hop-by-hop fields (RFC 9110 §7.6.1). It reads responses with undici's dispatch API and a plain
// handler, as sidecache does (src/proxy/origin.ts): no Readable, promise or AbortSignal per
// response, so the ratio of the two is the price of the cache, not of a slower client API.
// Run as: node node-proxy.js <port> <origin port>
import http from 'node:http';
import { Pool } from 'undici';

const port = Number(process.argv[2]);
const originPort = Number(process.argv[3]);
// Connections unbounded and a 4 s keep-alive, as sidecache's Agent has.
const pool = new Pool(`http://127.0.0.1:${originPort}`, { keepAliveTimeout: 4_000 });

// Connection-specific fields are not forwarded in either direction (RFC 9110 §7.6.1).
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'proxy-authorization']);

function endToEnd(rawHeaders) {
  const out = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (!HOP_BY_HOP.has(rawHeaders[i].toLowerCase())) out.push(rawHeaders[i], rawHeaders[i + 1]);
  }
  return out;
}

class Relay {
  constructor(res) {
    this.res = res;
    this.controller = null;
  }
  onRequestStart(controller) {
    this.controller = controller;
    this.res.on('drain', () => controller.resume());
    this.res.on('close', () => {
      if (!this.res.writableFinished) controller.abort(new Error('client went away'));
    });
  }
  onResponseStart(_controller, statusCode, headers) {
    if (statusCode < 200) return;
    const out = {};
    for (const k in headers) if (!HOP_BY_HOP.has(k)) out[k] = headers[k];
    this.res.writeHead(statusCode, out);
  }
  onResponseData(controller, chunk) {
    if (!this.res.write(chunk)) controller.pause();
  }
  onResponseEnd() {
    this.res.end();
  }
  onResponseError(_controller, err) {
    if (this.res.headersSent) this.res.destroy(err);
    else this.res.writeHead(502, { 'content-type': 'text/plain' }).end(`bad gateway: ${err.code ?? err.message}\n`);
  }
}

const server = http.createServer((req, res) => {
  if (req.url === '/healthz') return void res.writeHead(200, ['Content-Type', 'text/plain']).end('ok\n');
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  pool.dispatch({ path: req.url, method: req.method, headers: endToEnd(req.rawHeaders), body: hasBody ? req : null }, new Relay(res));
});
server.keepAliveTimeout = 65_000;
server.listen(port, '127.0.0.1', () => console.log(`node-proxy listening on 127.0.0.1:${port} -> 127.0.0.1:${originPort}`));
process.on('SIGTERM', () => process.exit(0));
