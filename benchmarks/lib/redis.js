// A private Redis server for the offload scenario ("every app uses one shared Redis as its
// cache"): Debian's redis-server on a free loopback port, no persistence, an LRU memory bound,
// pinned like the servers under test; started and stopped by pid. The shared Redis on 6379 is
// never used.
import path from 'node:path';
import { freePort } from '../../support/ports.ts';
import { startProcess, stopProcess, sleep } from './processes.js';
import { ensureTool, versionOf } from './install.js';

/** Path of redis-server, installing Debian's package when allowed; null when missing. */
export function ensureRedisServer({ install, log }) {
  return ensureTool({ bin: 'redis-server', packages: ['redis-server'], install, log });
}

/** Starts redis-server with `maxmemoryBytes` and allkeys-lru; resolves { port, url, pids, version, stop() }. */
export async function startRedis({ bin, tmpDir, cpu, maxmemoryBytes }) {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmpDir,
    '--maxmemory', String(maxmemoryBytes), '--maxmemory-policy', 'allkeys-lru', '--protected-mode', 'yes'];
  const h = startProcess({ name: 'redis', cmd: bin, args, cpu, logPath: path.join(tmpDir, 'redis.log') });
  const { createClient } = await import('redis');
  const deadline = Date.now() + 15_000;
  for (;;) {
    const c = createClient({ url: `redis://127.0.0.1:${port}`, socket: { reconnectStrategy: false } });
    c.on('error', () => {});
    try {
      await c.connect();
      await c.ping();
      await c.quit();
      break;
    } catch (err) {
      if (!h.isAlive() || Date.now() > deadline) {
        await stopProcess(h);
        throw new Error(`redis-server on ${port} did not answer PING: ${err.message}`);
      }
      await sleep(100);
    }
  }
  return { port, url: `redis://127.0.0.1:${port}`, pids: [h.pid], version: versionOf(bin, ['--version']), stop: () => stopProcess(h) };
}
