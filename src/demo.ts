// `npm run demo`: a demo origin and a standalone sidecar on free ports, then a short tour:
// a miss, a hit, a purge by URL, by tag and by prefix, the metrics. With --keep, both stay
// up for you to curl until Ctrl-C.
import { spawn } from 'node:child_process';
import { createServer as netServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDemoOrigin } from './demo-origin.js';

const TOKEN = 'demo-admin-token';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = netServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function main(): Promise<void> {
  const keep = process.argv.includes('--keep');
  const origin = createDemoOrigin();
  const originPort = await freePort();
  await new Promise<void>((r) => origin.server.listen(originPort, '127.0.0.1', r));
  const [port, adminPort] = [await freePort(), await freePort()];
  const proxy = `http://127.0.0.1:${port}`;
  const admin = `http://127.0.0.1:${adminPort}`;
  const child = spawn(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), 'main.js')], {
    env: {
      ...process.env,
      SIDECACHE_UPSTREAM: `http://127.0.0.1:${originPort}`,
      SIDECACHE_LISTEN: `127.0.0.1:${port}`,
      SIDECACHE_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
      SIDECACHE_ADMIN_TOKEN: TOKEN,
      SIDECACHE_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const stop = () => { child.kill('SIGTERM'); origin.server.close(); };
  process.on('SIGINT', () => { stop(); process.exit(0); });
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${admin}/readyz`)).ok) break;
    } catch { /* starting */ }
    if (i > 200) throw new Error('the sidecar did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  console.log(`origin   http://127.0.0.1:${originPort}\nsidecache ${proxy}  (admin ${admin}, token ${TOKEN})\n`);
  const get = async (path: string) => {
    const r = await fetch(proxy + path);
    const body = (await r.text()).trim();
    console.log(`GET ${path.padEnd(14)} ${r.status}  ${r.headers.get('cache-status')}\n    ${body}`);
  };
  const purge = async (what: object) => {
    const r = await fetch(`${admin}/purge`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(what) });
    console.log(`\nPOST /purge ${JSON.stringify(what)} -> ${r.status} ${await r.text()}`);
  };
  await get('/news/1');
  await get('/news/1');
  await get('/shop/cart');
  await purge({ url: '/news/1' });
  await get('/news/1');
  await purge({ tags: ['section-shop'] });
  await get('/shop/cart');
  await purge({ prefix: '/news/' });
  await get('/news/1');
  const metrics = await (await fetch(`${admin}/metrics`)).text();
  console.log('\nmetrics:');
  for (const line of metrics.split('\n')) {
    if (/^sidecache_(requests_total|origin_requests_total|purges_total|cache_entries)/.test(line)) console.log(`  ${line}`);
  }
  console.log(`\norigin served ${origin.count()} requests for 7 client requests`);
  if (keep) {
    console.log(`\nStill running. Try:\n  curl -i ${proxy}/hello\n  curl -s -XPOST -H 'authorization: Bearer ${TOKEN}' ${admin}/purge -d '{"all":true}'\nCtrl-C to stop.`);
    return;
  }
  stop();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
