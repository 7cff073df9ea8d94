// The image's HEALTHCHECK: GET /readyz on the admin listener named by the same
// SIDECACHE_ADMIN_LISTEN the sidecar reads (parsed by its own config code); exit 0 when ready.
// An unspecified address (0.0.0.0, ::) is reached on loopback.
import { VARIABLES, parseListen } from '../dist/config.js';

const raw = process.env.SIDECACHE_ADMIN_LISTEN || VARIABLES.find((v) => v.name === 'SIDECACHE_ADMIN_LISTEN').def;
const { host, port } = parseListen(raw, 'SIDECACHE_ADMIN_LISTEN');
const target = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
try {
  const res = await fetch(`http://${target}:${port}/readyz`, { signal: AbortSignal.timeout(2000) });
  process.stdout.write(`readyz: ${res.status}\n`);
  process.exit(res.ok ? 0 : 1);
} catch (err) {
  process.stdout.write(`readyz: ${err.cause?.code ?? err.message}\n`);
  process.exit(1);
}
