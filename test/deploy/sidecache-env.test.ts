// Every SIDECACHE_* variable the deployment files set (the Kubernetes manifests, compose.yaml,
// the Containerfile's defaults) is one sidecache knows, and each container's whole environment
// passes sidecache's own start-up checks (src/core/config.ts), as it would when the sidecar starts.
import t from 'tap';
import { loadConfig, VARIABLES } from '../../src/core/config.js';
import { ConfigErrors } from '../../src/core/errors.js';
import { containerEnv, containerfileEnv, loadCompose, loadManifests, podTemplates } from '../helpers/deploy-files.js';

const KNOWN = new Set(VARIABLES.map((v) => v.name));
const imageEnv = containerfileEnv();

/** The SIDECACHE_* variables of an environment that sidecache does not know. */
const unknown = (env: Record<string, string>) => Object.keys(env).filter((k) => k.startsWith('SIDECACHE_') && !KNOWN.has(k));

/** sidecache's start-up verdict on an environment: [] or its messages. */
function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
    return [];
  } catch (err) {
    if (err instanceof ConfigErrors) return err.errors.map((e) => e.message);
    throw err;
  }
}

t.test('deploy env - the Containerfile sets only known variables, valid with an upstream', async (t) => {
  t.ok(Object.keys(imageEnv).some((k) => k.startsWith('SIDECACHE_')), 'the image sets defaults');
  t.same(unknown(imageEnv), []);
  t.same(problems({ ...imageEnv, SIDECACHE_UPSTREAM: 'http://127.0.0.1:8080' }), []);
});

t.test('deploy env - the Kubernetes sidecars set only known variables, with valid values', async (t) => {
  let sidecars = 0;
  for (const pod of podTemplates(loadManifests())) {
    for (const c of [...(pod.spec.initContainers ?? []), ...pod.spec.containers] as Array<Record<string, any>>) {
      const own = containerEnv(c);
      if (!Object.keys(own).some((k) => k.startsWith('SIDECACHE_'))) continue;
      sidecars++;
      t.same(unknown(own), [], `${pod.where} ${c.name}: known variables`);
      t.same(problems(containerEnv(c, imageEnv)), [], `${pod.where} ${c.name}: values sidecache accepts`);
    }
  }
  t.equal(sidecars, 1, 'the example app\'s sidecar');
});

t.test('deploy env - the compose sidecars set only known variables, with valid values', async (t) => {
  const services = loadCompose().services as Record<string, { image: string; environment?: Record<string, string | number> }>;
  const sidecars = Object.entries(services).filter(([name]) => name.startsWith('sidecar-'));
  t.equal(sidecars.length, 3);
  const ids = new Set<string>();
  for (const [name, s] of sidecars) {
    const env = Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v)]));
    t.same(unknown(env), [], `${name}: known variables`);
    t.same(problems({ ...imageEnv, ...env }), [], `${name}: values sidecache accepts`);
    ids.add(loadConfig({ ...imageEnv, ...env }).nodeId);
  }
  t.equal(ids.size, 3, 'three distinct node ids');
});

t.test('deploy env - the check can fail: an unknown variable and a bad value are refused', async (t) => {
  const env = { ...imageEnv, SIDECACHE_UPSTREAM: 'http://127.0.0.1:8080' };
  t.same(unknown({ ...env, SIDECACHE_MAXBYTES: '1GiB' }), ['SIDECACHE_MAXBYTES']);
  t.match(problems({ ...env, SIDECACHE_MAX_BYTES: 'lots' }), [/SIDECACHE_MAX_BYTES: expected a size/]);
  t.match(problems({ ...env, SIDECACHE_NATS_URL: 'nats://127.0.0.1:4222', SIDECACHE_CLUSTER_SECRET: 'short' }), [/SIDECACHE_CLUSTER_SECRET/]);
});
