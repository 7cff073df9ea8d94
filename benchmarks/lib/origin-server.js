// The benchmark origin, and the bare-node baseline (the same program on the server core).
// Run as: node origin-server.js <port> <role>
//   GET /obj/<bytes>/<anything>      deterministic body, Cache-Control: public, max-age=3600, ETag
//   GET /nostore/<bytes>/<anything>  the same body with Cache-Control: no-store
//   GET /html/<bytes>/<anything>     a compressible text/html page of that size, cacheable as /obj/
//   GET /healthz                     200 ok
//   GET /__stats                     {"requests": n} (requests served since start)
// Answers If-None-Match with 304. Bodies and header arrays are built once per size and kept in
// memory, so the baseline's hit path is a Map lookup, writeHead and end.
import http from 'node:http';
import crypto from 'node:crypto';
import { makeBody, makeHtmlBody } from './bodies.js';

const port = Number(process.argv[2]);
const role = process.argv[3] ?? 'origin';
const MAX_BODY_BYTES = 16 * 1024 * 1024;
const LAST_MODIFIED = 'Mon, 01 Jan 2024 00:00:00 GMT';

const bodies = new Map(); // kind:bytes -> { body, etag }
function bodyOf(bytes, html) {
  const k = `${html ? 'html' : 'bin'}:${bytes}`;
  let b = bodies.get(k);
  if (!b) {
    const body = html ? makeHtmlBody(bytes) : makeBody(bytes);
    const etag = `"${html ? 'h' : ''}${bytes.toString(16)}-${crypto.createHash('sha1').update(body).digest('hex').slice(0, 16)}"`;
    b = { body, etag };
    bodies.set(k, b);
  }
  return b;
}

function makeEntry(url) {
  const m = /^\/(obj|nostore|html)\/(\d+)(?:\/|$)/.exec(url);
  if (!m) return undefined;
  const bytes = Number(m[2]);
  if (bytes > MAX_BODY_BYTES) return undefined;
  const html = m[1] === 'html';
  const { body, etag } = bodyOf(bytes, html);
  const cacheControl = m[1] === 'nostore' ? 'no-store' : 'public, max-age=3600';
  return {
    body,
    etag,
    headers: [
      'Content-Type', html ? 'text/html; charset=utf-8' : 'application/octet-stream',
      'Content-Length', String(body.length),
      'Cache-Control', cacheControl,
      'ETag', etag,
      'Last-Modified', LAST_MODIFIED,
    ],
    notModifiedHeaders: ['Cache-Control', cacheControl, 'ETag', etag, 'Last-Modified', LAST_MODIFIED],
  };
}

// Entries by exact URL; bounded so unique-URL runs (miss, memory) do not grow it without end.
const byUrl = new Map();
const MAX_URLS = 1024;
let requests = 0;

const server = http.createServer((req, res) => {
  requests++;
  const url = req.url;
  let entry = byUrl.get(url);
  if (entry === undefined) {
    if (url === '/healthz') return void res.writeHead(200, ['Content-Type', 'text/plain']).end('ok\n');
    if (url === '/__stats') return void res.writeHead(200, ['Content-Type', 'application/json']).end(JSON.stringify({ role, requests }));
    entry = makeEntry(url);
    if (entry === undefined) return void res.writeHead(404, ['Content-Type', 'text/plain']).end('not found\n');
    if (byUrl.size < MAX_URLS) byUrl.set(url, entry);
  }
  const inm = req.headers['if-none-match'];
  if (inm !== undefined && inm === entry.etag) return void res.writeHead(304, entry.notModifiedHeaders).end();
  res.writeHead(200, entry.headers);
  res.end(req.method === 'HEAD' ? undefined : entry.body);
});
server.keepAliveTimeout = 65_000;
server.listen(port, '127.0.0.1', () => console.log(`${role} listening on 127.0.0.1:${port}`));
process.on('SIGTERM', () => process.exit(0));
