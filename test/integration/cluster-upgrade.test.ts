// A rolling upgrade: members of the build before the log formats gained fences with their
// stream (fill version 1, no peer fence) beside members of this build (fill version 3) in one
// cluster. Each side must understand the other or refuse its messages by name, never misread
// them: every member serves, purges are acknowledged by old and new members alike, and the
// new members say which fills they ignored and why.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { clusterEnv, uniqueCluster, waitForRing } from '../../support/cluster.js';
import { startNats } from '../../support/nats-server.js';
import { startOrigin } from '../../support/origin.js';
import { purge, startSidecar, type SidecarProcess } from '../../support/sidecar.js';

/** The last commit whose log formats were those of the first cluster release. */
const OLD_BUILD = '041f5ec';
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Builds OLD_BUILD from this repository's history into a temporary directory. A clone
 *  without that history fails here, loudly, rather than skipping the test. */
function buildOld(): { main: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'sidecache-old-build-'));
  execFileSync('sh', ['-c', `git -C "${ROOT}" archive ${OLD_BUILD} src types package.json tsconfig.json tsconfig.build.json | tar -x -C "${dir}"`]);
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(dir, 'tsconfig.build.json')]);
  return { main: join(dir, 'dist', 'main.js'), dir };
}

t.test('upgrade - old and new builds in one cluster: all serve, purges reach both, other fill versions are refused by name', async (t) => {
  const old = buildOld();
  t.teardown(() => rmSync(old.dir, { recursive: true, force: true }));
  let version = 1;
  const origin = await startOrigin({
    '/u/*': (req, res) => {
      res.writeHead(200, { 'cache-control': 'public, max-age=300', etag: `"${version}"`, 'content-type': 'text/plain' });
      res.end(`${req.url} v${version}`);
    },
  });
  t.teardown(() => origin.close());
  const nats = await startNats({ nodes: 1 });
  t.teardown(() => nats.stop());
  const cluster = uniqueCluster();
  const env = clusterEnv({ natsUrls: nats.urls, upstream: origin.url }, cluster);
  const olds = await Promise.all([0, 1].map(() => startSidecar({ env, main: old.main })));
  const news = await Promise.all([0, 1].map(() => startSidecar({ env })));
  const all: SidecarProcess[] = [...olds, ...news];
  t.teardown(() => Promise.all(all.map((s) => s.kill())));
  await waitForRing(all, 4, 30_000);

  const paths = Array.from({ length: 24 }, (_, k) => `/u/${k}`);
  for (const sc of all) for (const p of paths) {
    const r = await fetch(sc.url + p);
    t.equal(await r.text(), `${p} v${version}`, `${p} at ${sc.id}`);
  }
  version++;
  const r = await purge(news[0]!, { prefix: '/u/' });
  t.equal(r.status, 200);
  t.same([...r.json.acknowledged].sort(), all.map((s) => s.id).sort(), 'old and new members acknowledged the purge');
  t.same(r.json.missing, []);
  for (const sc of all) for (const p of paths) t.equal(await (await fetch(sc.url + p)).text(), `${p} v${version}`, `${p} at ${sc.id} after the purge`);
  const named = news.some((sc) => /expected version 3, got version 1/.test(sc.output()));
  t.ok(named, 'a new member says it ignores fills of version 1, naming both versions');
  for (const sc of all) t.equal(sc.proc.exitCode, null, `${sc.id} still running`);
});
