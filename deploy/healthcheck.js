// The image's HEALTHCHECK: GET /readyz on the admin API, found as the command line finds it
// (SIDECACHE_ADMIN_LISTEN, a wildcard address reached on loopback); exit 0 when ready.
import { adminUrl } from '../dist/cli/admin-client.js';

try {
  const res = await fetch(new URL('/readyz', adminUrl(undefined, process.env)), { signal: AbortSignal.timeout(2000) });
  process.stdout.write(`readyz: ${res.status}\n`);
  process.exit(res.ok ? 0 : 1);
} catch (err) {
  process.stdout.write(`readyz: ${err.cause?.code ?? err.message}\n`);
  process.exit(1);
}
