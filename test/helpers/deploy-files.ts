// Reading the deployment files for tests: the Kubernetes manifests (every document of every
// deploy/kubernetes/*.yaml), the pod templates in them, a container's environment as the kubelet
// would give it, the compose file's and the Containerfile's SIDECACHE_* settings.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse } from 'yaml';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const KUBERNETES_DIR = join(ROOT, 'deploy', 'kubernetes');

export interface Manifest {
  readonly file: string;
  readonly doc: Record<string, any>;
}

/** Every YAML document in deploy/kubernetes/*.yaml (what `kubectl apply -f deploy/kubernetes/` applies). */
export function loadManifests(): Manifest[] {
  const out: Manifest[] = [];
  for (const file of readdirSync(KUBERNETES_DIR).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const d of parseAllDocuments(readFileSync(join(KUBERNETES_DIR, file), 'utf8'))) {
      if (d.errors.length > 0 || d.warnings.length > 0) throw new Error(`${file}: ${[...d.errors, ...d.warnings].map((e) => e.message).join('; ')}`);
      const doc = d.toJS() as Record<string, any> | null;
      if (doc !== null) out.push({ file, doc });
    }
  }
  return out;
}

export interface PodTemplate {
  readonly where: string;
  readonly spec: Record<string, any>;
}

/** The pod specs of the workloads among the manifests. */
export function podTemplates(manifests: readonly Manifest[]): PodTemplate[] {
  const out: PodTemplate[] = [];
  for (const { file, doc } of manifests) {
    const where = `${file} ${doc.kind}/${doc.metadata?.name}`;
    if (doc.kind === 'Pod') out.push({ where, spec: doc.spec });
    else if (['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job'].includes(doc.kind)) out.push({ where, spec: doc.spec.template.spec });
  }
  return out;
}

/** Values the downward API would give, for checking what the manifests build from them. */
const FIELD_SAMPLES: Record<string, string> = {
  'metadata.name': 'example-app-5d8f7c9b4d-x2x9k',
  'metadata.namespace': 'default',
  'status.podIP': '192.0.2.10',
  'spec.nodeName': 'node-1',
};

/**
 * A container's environment as the kubelet builds it: `defaults` (the image's ENV) under the
 * container's env, in order, `$(NAME)` expanded from the variables before it, downward-API
 * fields from samples, Secret keys as `kubectl create secret ... $(openssl rand -hex 32)` makes them.
 */
export function containerEnv(container: Record<string, any>, defaults: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { ...defaults };
  for (const e of (container.env ?? []) as Array<Record<string, any>>) {
    if (e.value !== undefined) {
      env[e.name] = String(e.value).replace(/(\$?)\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all: string, escaped: string, name: string) =>
        escaped !== '' ? all.slice(1) : env[name] ?? all);
    } else if (e.valueFrom?.fieldRef !== undefined) {
      const sample = FIELD_SAMPLES[e.valueFrom.fieldRef.fieldPath as string];
      if (sample === undefined) throw new Error(`no sample for fieldRef ${e.valueFrom.fieldRef.fieldPath}`);
      env[e.name] = sample;
    } else if (e.valueFrom?.secretKeyRef !== undefined) {
      env[e.name] = randomBytes(32).toString('hex');
    } else {
      throw new Error(`${e.name}: an env source these tests do not read`);
    }
  }
  return env;
}

/** The ENV instructions of deploy/Containerfile (the image's defaults). */
export function containerfileEnv(): Record<string, string> {
  const text = readFileSync(join(ROOT, 'deploy', 'Containerfile'), 'utf8').replace(/\\\n/g, ' ');
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^ENV\s+(.*)$/.exec(line.trim());
    if (m) for (const pair of m[1]!.trim().split(/\s+/)) {
      const eq = pair.indexOf('=');
      env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  return env;
}

/** deploy/compose.yaml with `${NAME:-default}` taken at its default, as a run with no such variables set. */
export function loadCompose(): Record<string, any> {
  const text = readFileSync(join(ROOT, 'deploy', 'compose.yaml'), 'utf8');
  return parse(text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}/g, (_all, _name: string, def: string) => def), { merge: true }) as Record<string, any>;
}

/** A Kubernetes quantity in bytes (binary and decimal suffixes). */
export function quantityBytes(q: string | number): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q));
  if (!m) throw new Error(`not a quantity: ${q}`);
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2] ?? ''] ?? 1;
  return Number(m[1]) * unit;
}
