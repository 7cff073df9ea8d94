// The forward allow list: an entry's port, or port 80 and the TLS ports when it names none.
import t from 'tap';
import type { HostPattern } from '../../../src/core/config.js';
import { isAllowedHost } from '../../../src/proxy/recv.js';

const patterns: HostPattern[] = [
  { host: 'api.internal', suffix: false, port: undefined },
  { host: '.svc.local', suffix: true, port: undefined },
  { host: 'app.internal', suffix: false, port: 8080 },
];
const tls = [443, 8443];

t.test('recv - an allow-list entry without a port allows 80 and the TLS ports, not every port', async (t) => {
  for (const port of [80, 443, 8443]) {
    t.ok(isAllowedHost(patterns, tls, 'api.internal', port), `api.internal:${port}`);
    t.ok(isAllowedHost(patterns, tls, 'a.svc.local', port), `a.svc.local:${port}`);
  }
  for (const port of [8080, 22, 6379, 81]) {
    t.notOk(isAllowedHost(patterns, tls, 'api.internal', port), `api.internal:${port}`);
    t.notOk(isAllowedHost(patterns, tls, 'a.svc.local', port), `a.svc.local:${port}`);
  }
  t.ok(isAllowedHost(patterns, tls, 'APP.internal', 8080), 'an entry with a port: that port');
  t.notOk(isAllowedHost(patterns, tls, 'app.internal', 80), 'and no other');
  t.notOk(isAllowedHost(patterns, tls, 'svc.local', 80), 'a suffix entry is not the bare domain');
});
