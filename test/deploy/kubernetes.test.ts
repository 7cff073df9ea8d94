// deploy/kubernetes/: every manifest against the Kubernetes schemas (kubernetes-models' JSON
// schema validators, and its types for fields the schemas let through: the API server refuses
// unknown fields), and the sidecar's pod as the README's Deploy section describes it.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import t from 'tap';
import { parse } from 'yaml';
import { loadConfig } from '../../src/core/config.js';
import { freePort } from '../../support/sidecar.js';
import { containerEnv, containerfileEnv, loadManifests, podTemplates, quantityBytes, ROOT } from '../helpers/deploy-files.js';

const manifests = loadManifests();
const MiB = 2 ** 20;

/** kubernetes-models' module for an apiVersion: `v1` is the core group. */
const modelModule = (apiVersion: string) => `kubernetes-models/${apiVersion}`;

t.test('kubernetes - the manifests hold the sidecar app and NATS', async (t) => {
  const kinds = manifests.map(({ doc }) => `${doc.kind}/${doc.metadata.name}`).sort();
  t.match(kinds, ['ConfigMap/nats-config', 'Deployment/example-app', 'NetworkPolicy/example-app-sidecache',
    'PodDisruptionBudget/example-app', 'PodDisruptionBudget/nats', 'Service/example-app', 'Service/nats',
    'Service/nats-headless', 'StatefulSet/nats']);
});

t.test('kubernetes - every manifest passes its schema', async (t) => {
  for (const { file, doc } of manifests) {
    const mod = (await import(modelModule(doc.apiVersion))) as Record<string, new (d: unknown) => { validate(): void }>;
    const Model = mod[doc.kind];
    if (Model === undefined) {
      t.fail(`${file}: no schema for ${doc.apiVersion} ${doc.kind}`);
      continue;
    }
    t.doesNotThrow(() => new Model(doc).validate(), `${file} ${doc.kind}/${doc.metadata?.name}`);
  }
});

t.test('kubernetes - the schema check can fail: a wrong type and a missing name are refused', async (t) => {
  const { Deployment } = await import('kubernetes-models/apps/v1');
  const app = manifests.find(({ doc }) => doc.kind === 'Deployment')!.doc;
  const bad = structuredClone(app);
  bad.spec.template.spec.initContainers[0].ports[0].containerPort = 'nine';
  t.throws(() => new Deployment(bad).validate(), /containerPort must be integer/);
  delete bad.spec.template.spec.initContainers[0].ports[0].containerPort;
  delete bad.spec.template.spec.containers[0].name;
  t.throws(() => new Deployment(bad).validate(), /containers\/0 must have required property '?name/);
});

/** TypeScript's excess-property errors for each manifest typed as kubernetes-models' interface. */
function unknownFields(docs: ReadonlyArray<{ doc: Record<string, any> }>): string[] {
  const file = `${ROOT}/test/deploy/manifests-typed.generated.ts`;
  const source = docs.map(({ doc }, i) =>
    `import type { I${doc.kind} as M${i} } from '${modelModule(doc.apiVersion)}/${doc.kind}';\nexport const d${i}: M${i} = ${JSON.stringify(doc)};\n`).join('');
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022,
    strict: true, noEmit: true, skipLibCheck: true, types: [],
  };
  const host = ts.createCompilerHost(options);
  const read = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) => (name === file ? ts.createSourceFile(name, source, lang) : read(name, lang, ...rest));
  const exists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || exists(name);
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program, program.getSourceFile(file)).map((d) => {
    const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
    const at = Math.floor(line / 2);
    return `${docs[at] === undefined ? '?' : `${docs[at]!.doc.kind}/${docs[at]!.doc.metadata?.name}`}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
  });
}

t.test('kubernetes - no manifest has a field the API does not know', async (t) => {
  // One program (TypeScript takes seconds to load the types): the manifests, then a copy of the
  // app with a misspelt field, which alone must be reported.
  const typo = structuredClone(manifests.find(({ doc }) => doc.kind === 'Deployment')!);
  typo.doc.metadata.name = 'misspelt';
  typo.doc.spec.template.spec.initContainers[0].readinesProbe = typo.doc.spec.template.spec.initContainers[0].readinessProbe;
  const errors = unknownFields([...manifests, typo]);
  t.same(errors.filter((e) => !e.startsWith('Deployment/misspelt:')), [], 'the manifests');
  t.match(errors, [/^Deployment\/misspelt: .*readinesProbe\W+ does not exist in type 'IContainer'/], 'a misspelt field is caught');
});

const app = podTemplates(manifests).find((p) => p.where.includes('Deployment/example-app'))!;
const sidecar = app.spec.initContainers?.find((c: { name: string }) => c.name === 'sidecache');

t.test('kubernetes - sidecache is a native sidecar beside the app, probed on /readyz and /healthz', async (t) => {
  t.ok(sidecar, 'an init container named sidecache');
  t.equal(sidecar.restartPolicy, 'Always', 'restartPolicy Always: a sidecar, running beside the app');
  t.same(app.spec.containers.map((c: { name: string }) => c.name), ['app']);
  const port = (name: string) => sidecar.ports.find((p: { name: string }) => p.name === name)?.containerPort;
  t.equal(port('admin'), 9091);
  t.match(sidecar.startupProbe.httpGet, { path: '/readyz', port: 'admin' });
  t.match(sidecar.readinessProbe.httpGet, { path: '/readyz', port: 'admin' });
  t.match(sidecar.livenessProbe.httpGet, { path: '/healthz', port: 'admin' });
  t.same(sidecar.lifecycle.preStop.exec.command.slice(0, 2), ['sidecache', 'drain'], 'preStop: the command line\'s drain');
  const wait = /^(\d+)s$/.exec(sidecar.lifecycle.preStop.exec.command[3] ?? '')?.[1];
  t.ok(sidecar.lifecycle.preStop.exec.command[2] === '--wait' && Number(wait) + 10 < app.spec.terminationGracePeriodSeconds,
    'its wait and the shutdown timeout fit in the grace period');
  t.ok(app.spec.terminationGracePeriodSeconds > 10, 'grace period above SIDECACHE_SHUTDOWN_TIMEOUT');
  t.equal(sidecar.securityContext.runAsUser, 1000);
  t.equal(app.spec.securityContext.runAsNonRoot, true);
});

t.test('kubernetes - identity from the downward API, secrets from a Secret, admin on the pod network', async (t) => {
  const env = new Map<string, Record<string, any>>(sidecar.env.map((e: { name: string }) => [e.name, e]));
  t.same(env.get('SIDECACHE_NODE_ID')?.valueFrom, { fieldRef: { fieldPath: 'metadata.name' } });
  t.same(env.get('POD_IP')?.valueFrom, { fieldRef: { fieldPath: 'status.podIP' } });
  t.equal(env.get('SIDECACHE_PEER_URL')?.value, 'http://$(POD_IP):7070');
  t.ok([...env.keys()].indexOf('POD_IP') < [...env.keys()].indexOf('SIDECACHE_PEER_URL'), 'POD_IP defined before its use');
  t.same(env.get('SIDECACHE_CLUSTER_SECRET')?.valueFrom, { secretKeyRef: { name: 'sidecache', key: 'cluster-secret' } });
  t.same(env.get('SIDECACHE_ADMIN_TOKEN')?.valueFrom, { secretKeyRef: { name: 'sidecache', key: 'admin-token' } });
  t.equal(env.get('SIDECACHE_ADMIN_LISTEN')?.value, '0.0.0.0:9091');
  const config = loadConfig(containerEnv(sidecar, containerfileEnv()));
  t.equal(config.peerUrl, 'http://192.0.2.10:7070', 'the peer URL built from the pod IP');
  t.equal(config.nodeId, 'example-app-5d8f7c9b4d-x2x9k');
});

t.test('kubernetes - memory is sized from the byte budget (README: Deploy)', async (t) => {
  const config = loadConfig(containerEnv(sidecar, containerfileEnv()));
  const need = 1.25 * (config.maxBytes + config.hotMaxBytes) + config.invalHistoryBytes + 100 * MiB;
  const limit = quantityBytes(sidecar.resources.limits.memory);
  t.ok(limit >= need, `limit ${limit / MiB} MiB >= ${need / MiB} MiB`);
  t.ok(limit < need + 128 * MiB, 'and not far above it');
  t.equal(sidecar.resources.requests.memory, sidecar.resources.limits.memory, 'request = limit: memory is not reclaimed');
});

t.test('kubernetes - NATS: three JetStream servers on file storage, routed by stable names', async (t) => {
  const sts = manifests.find(({ doc }) => doc.kind === 'StatefulSet')!.doc;
  t.equal(sts.spec.replicas, 3);
  t.equal(sts.spec.serviceName, 'nats-headless');
  t.equal(sts.spec.volumeClaimTemplates[0].metadata.name, 'data');
  const conf = manifests.find(({ doc }) => doc.kind === 'ConfigMap' && doc.metadata.name === 'nats-config')!.doc.data['nats.conf'] as string;
  t.match(conf, /store_dir: \/data\/jetstream/);
  for (const i of [0, 1, 2]) t.match(conf, `nats://nats-${i}.nats-headless:6222`);
  const urls = sidecar.env.find((e: { name: string }) => e.name === 'SIDECACHE_NATS_URL').value as string;
  t.same(urls.split(','), [0, 1, 2].map((i) => `nats://nats-${i}.nats-headless:4222`));
});

t.test('kubernetes - the README\'s snippet is the manifest\'s sidecar', async (t) => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /### Kubernetes[\s\S]*?```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
  t.ok(block, 'a yaml block in the README\'s Kubernetes section');
  const snippet = (parse(block!) as { initContainers: Array<Record<string, any>> }).initContainers[0]!;
  const { env, ...rest } = snippet;
  t.match(sidecar, rest, 'name, image, restartPolicy, ports, probes, preStop, resources');
  for (const e of env as Array<{ name: string }>) {
    t.same(sidecar.env.find((m: { name: string }) => m.name === e.name), e, `env ${e.name}`);
  }
});

t.test('kubernetes - the preStop command is one the command line accepts', async (t) => {
  const [bin, ...args] = sidecar.lifecycle.preStop.exec.command as string[];
  t.equal(bin, 'sidecache');
  // Against an admin address where nothing listens: a usage error would exit 2, an
  // unreachable admin API exits 1 with its message.
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'sidecache.js'), ...args], {
    env: { PATH: process.env.PATH, SIDECACHE_ADMIN_LISTEN: `127.0.0.1:${await freePort()}`, SIDECACHE_ADMIN_TOKEN: 'x'.repeat(32) },
    encoding: 'utf8', timeout: 30_000,
  });
  t.equal(r.status, 1, r.stderr);
  t.match(r.stderr, /127\.0\.0\.1/, 'it names the admin address it tried');
});
