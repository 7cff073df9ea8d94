// Every JetStream stream, subject, KV bucket and KV key name sidecache uses, derived from
// the cluster name. No other module spells a subject: grep here to see the whole namespace.

import { createHash } from 'node:crypto';
import { SidecacheError, ErrorCode } from '../core/errors.js';

/** The names of one cluster's log. Built once per NatsLog by `logNames(cluster)`. */
export interface LogNames {
  /** The cluster name reduced to [A-Za-z0-9_-]: safe in subjects, stream and bucket names. */
  readonly token: string;
  readonly fillsStream: string;
  /** `sidecache.<token>.fill.>`: the FILLS stream's only subject, and the live/replay filter. */
  readonly fillsWildcard: string;
  /** `sidecache.<token>.fill.` : prefix of every fill subject (parseFillSubject strips it). */
  readonly fillPrefix: string;
  readonly invalStream: string;
  readonly invalSubject: string;
  /** Core NATS (not a stream): `{id, seq}` applied-seq acks, see codec.ts. */
  readonly ackSubject: string;
  /** KV bucket: one key per member, `{id, peerUrl, appliedSeq, at}`, ttl = heartbeatTtlMs. */
  readonly heartbeatBucket: string;
  /** KV bucket: the single key `viewKey`, changed only by compare-and-set. */
  readonly viewBucket: string;
  readonly viewKey: string;
}

const safeToken = /^[A-Za-z0-9_-]+$/;

/** Reduce a cluster name to a token valid in a subject (no dots or wildcards), a stream
 *  name and a KV bucket name. A name that needed changing gets a short hash of the
 *  original appended, so "a.b" and "a_b" stay two clusters. Deterministic: every sidecar
 *  of a cluster derives the same token. */
export function clusterToken(cluster: string): string {
  if (cluster.length === 0) {
    throw new SidecacheError(ErrorCode.log, 'cluster name: expected a non-empty string, got ""');
  }
  if (safeToken.test(cluster)) return cluster;
  const hash = createHash('sha256').update(cluster).digest('hex').slice(0, 8);
  return `${cluster.replace(/[^A-Za-z0-9_-]/g, '_')}_${hash}`;
}

export function logNames(cluster: string): LogNames {
  const token = clusterToken(cluster);
  const base = `sidecache.${token}`;
  return Object.freeze({
    token,
    fillsStream: `SC_${token}_FILLS`,
    fillsWildcard: `${base}.fill.>`,
    fillPrefix: `${base}.fill.`,
    invalStream: `SC_${token}_INVAL`,
    invalSubject: `${base}.inval`,
    ackSubject: `${base}.ack`,
    heartbeatBucket: `SC_${token}_HB`,
    viewBucket: `SC_${token}_VIEW`,
    viewKey: 'view',
  });
}

/** True when `s` is usable as one subject token: non-empty, no '.', '*', '>' or
 *  whitespace. subjectKey is a hex hash in practice; this guards against a caller bug
 *  turning a fill into a wildcard publish (which the server would refuse anyway). */
export function isSubjectToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // '.'=46 '*'=42 '>'=62, space and control characters, DEL
    if (c === 46 || c === 42 || c === 62 || c <= 32 || c === 127) return false;
  }
  return true;
}

/** The subject of one fill: `sidecache.<token>.fill.<partition>.<subjectKey>`. Returns
 *  undefined for a partition or key that cannot be a subject (the caller drops the fill). */
export function fillSubject(names: LogNames, partition: number, subjectKey: string): string | undefined {
  if (!Number.isInteger(partition) || partition < 0 || !isSubjectToken(subjectKey)) return undefined;
  return `${names.fillPrefix}${partition}.${subjectKey}`;
}

/** Inverse of fillSubject; undefined for a subject that is not a fill of this cluster. */
export function parseFillSubject(
  names: LogNames,
  subject: string,
): { partition: number; subjectKey: string } | undefined {
  const prefix = names.fillPrefix;
  if (!subject.startsWith(prefix)) return undefined;
  const dot = subject.indexOf('.', prefix.length);
  if (dot <= prefix.length || dot === subject.length - 1) return undefined;
  const partition = Number(subject.slice(prefix.length, dot));
  if (!Number.isInteger(partition) || partition < 0) return undefined;
  return { partition, subjectKey: subject.slice(dot + 1) };
}

/** KV key of a member's heartbeat. KV keys allow [-/=.\w]; an id made only of
 *  [A-Za-z0-9_-] is used as is, anything else becomes "=" + base64url(id). Plain ids
 *  never contain "=", so the two forms cannot collide. */
export function heartbeatKey(memberId: string): string {
  if (safeToken.test(memberId)) return memberId;
  return `=${Buffer.from(memberId, 'utf8').toString('base64url')}`;
}
