// Free TCP ports on 127.0.0.1: ask the kernel for port 0, note the number, close.
import net from 'node:net';

/** Returns `count` distinct ports that were free a moment ago (all held open together). */
export async function freePorts(count) {
  const servers = [];
  try {
    for (let i = 0; i < count; i++) {
      const s = net.createServer();
      await new Promise((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', resolve);
      });
      servers.push(s);
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

export async function freePort() {
  return (await freePorts(1))[0];
}
