// Transport security of the cluster's own links (NATS, the peer port): the SIDECACHE_*
// variables naming certificates, keys and NATS credentials, read and checked once at
// start-up, so that a missing, unreadable or malformed file stops the sidecar with the
// variable's name instead of failing at the first connection. Files are not read again:
// rotated certificates take effect at the next restart.
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { ConfigError } from './errors.js';

/** NATS over TLS: PEM text. No CA: the system's CAs; no certificate: none is presented. */
export interface NatsTls {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

/** The peer port over TLS: served with cert/key, which are also presented to the peers we
 *  call; both ways the other side's certificate must be signed by a CA in `ca`. */
export interface PeerTls {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
  /** Name a peer's certificate must carry; undefined: the host of its peer URL. */
  readonly serverName: string | undefined;
}

export interface TransportSecurity {
  readonly natsTls: NatsTls | undefined;
  readonly natsCreds: Uint8Array | undefined;
  readonly peerTls: PeerTls | undefined;
}

/** Reads the transport-security variables; each problem is pushed to `errors`, naming its variable. */
export function readTransportSecurity(env: NodeJS.ProcessEnv, errors: ConfigError[]): TransportSecurity {
  const optional = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };
  function read<T>(name: string, reader: (path: string) => T): T | undefined {
    const path = optional(name);
    if (path === undefined) return undefined;
    try {
      return reader(path);
    } catch (err) {
      errors.push(new ConfigError(name, (err as Error).message));
      return undefined;
    }
  }
  /** A certificate and its key, both or neither; the key must belong to the certificate. */
  function certAndKey(certVar: string, keyVar: string): { cert: CertFile | undefined; key: KeyFile | undefined } {
    const cert = read(certVar, readCertificate);
    const key = read(keyVar, readPrivateKey);
    if (optional(certVar) !== undefined && optional(keyVar) === undefined) errors.push(new ConfigError(keyVar, `required with ${certVar} (the certificate's private key)`));
    if (optional(keyVar) !== undefined && optional(certVar) === undefined) errors.push(new ConfigError(certVar, `required with ${keyVar} (the certificate of that key)`));
    if (cert !== undefined && key !== undefined && !keyMatches(cert, key)) {
      errors.push(new ConfigError(keyVar, `the key does not belong to the certificate in ${certVar}`));
    }
    return { cert, key };
  }

  const natsCa = read('SIDECACHE_NATS_TLS_CA', readCaBundle);
  const nats = certAndKey('SIDECACHE_NATS_TLS_CERT', 'SIDECACHE_NATS_TLS_KEY');
  const natsTlsSet = ['SIDECACHE_NATS_TLS_CA', 'SIDECACHE_NATS_TLS_CERT', 'SIDECACHE_NATS_TLS_KEY'].some((n) => optional(n) !== undefined);
  const natsTls: NatsTls | undefined = natsTlsSet
    ? { ...(natsCa === undefined ? {} : { ca: natsCa }), ...(nats.cert === undefined ? {} : { cert: nats.cert.pem }), ...(nats.key === undefined ? {} : { key: nats.key.pem }) }
    : undefined;

  const natsCreds = read('SIDECACHE_NATS_CREDS', readNatsCreds);
  const otherAuth = ['SIDECACHE_NATS_TOKEN', 'SIDECACHE_NATS_USER', 'SIDECACHE_NATS_PASS'].filter((n) => optional(n) !== undefined);
  if (optional('SIDECACHE_NATS_CREDS') !== undefined && otherAuth.length > 0) {
    errors.push(new ConfigError('SIDECACHE_NATS_CREDS', `not with ${otherAuth.join(', ')}: a NATS user authenticates one way`));
  }

  const peerVars = ['SIDECACHE_PEER_TLS_CERT', 'SIDECACHE_PEER_TLS_KEY', 'SIDECACHE_PEER_TLS_CA'];
  const peerSet = peerVars.filter((n) => optional(n) !== undefined);
  const peerCa = read('SIDECACHE_PEER_TLS_CA', readCaBundle);
  const peer = certAndKey('SIDECACHE_PEER_TLS_CERT', 'SIDECACHE_PEER_TLS_KEY');
  if (peerSet.length > 0 && optional('SIDECACHE_PEER_TLS_CA') === undefined) {
    errors.push(new ConfigError('SIDECACHE_PEER_TLS_CA', `required with ${peerSet.join(', ')} (the CA that signs every peer's certificate)`));
  }
  if (optional('SIDECACHE_PEER_TLS_CA') !== undefined && optional('SIDECACHE_PEER_TLS_CERT') === undefined && optional('SIDECACHE_PEER_TLS_KEY') === undefined) {
    errors.push(new ConfigError('SIDECACHE_PEER_TLS_CERT', 'required with SIDECACHE_PEER_TLS_CA (this sidecar\'s certificate, with SIDECACHE_PEER_TLS_KEY)'));
  }
  const serverName = optional('SIDECACHE_PEER_TLS_SERVER_NAME');
  if (serverName !== undefined) {
    if (!/^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(serverName)) {
      errors.push(new ConfigError('SIDECACHE_PEER_TLS_SERVER_NAME', `expected a DNS name (e.g. peer.sidecache.internal), got "${serverName}"`));
    }
    if (peerSet.length === 0) errors.push(new ConfigError('SIDECACHE_PEER_TLS_SERVER_NAME', 'only with SIDECACHE_PEER_TLS_CERT, SIDECACHE_PEER_TLS_KEY and SIDECACHE_PEER_TLS_CA'));
  }
  const peerTls: PeerTls | undefined = peerCa !== undefined && peer.cert !== undefined && peer.key !== undefined
    ? { ca: peerCa, cert: peer.cert.pem, key: peer.key.pem, serverName }
    : undefined;
  return { natsTls, natsCreds, peerTls };
}

/** Node's codes for a certificate that does not chain to a trusted CA. */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'CERT_SIGNATURE_FAILURE',
]);
/** The other side's alerts when it does not accept our certificate (or we sent none). */
const REFUSED = /ALERT_(BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_REQUIRED|UNSUPPORTED_CERTIFICATE|CERTIFICATE_UNKNOWN)$/;

/** OpenSSL's reason without its source location; Node's own hint (--use-system-ca) dropped. */
function tidy(message: string): string {
  const m = /^[0-9A-F]+:error:[0-9A-F]+:[^:]*:[^:]*:([^:]+):.*?(SSL alert number \d+)?$/s.exec(message.trim());
  const text = m === null ? message.trim() : `${m[1]}${m[2] === undefined ? '' : ` (${m[2]})`}`;
  return text.replace(/; if the root CA is installed locally.*$/s, '');
}

/**
 * An error's message, with the variable to look at when a certificate was not accepted, one
 * way or the other (Node's own hint, --use-system-ca, is not the way to fix it here).
 */
export function describeTlsError(err: unknown, vars: { readonly ca: string; readonly cert: string }): string {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    const message = tidy(e.message);
    if (code !== undefined && UNTRUSTED.has(code)) return `${message} (${code}: the certificate is not signed by a CA in ${vars.ca})`;
    if (code !== undefined && REFUSED.test(code)) return `${message} (${code}: the other side did not accept our certificate, ${vars.cert}, or we sent none)`;
  }
  return err instanceof Error ? err.message : String(err);
}

// ---- the files ----------------------------------------------------------------------

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(`cannot read "${path}": ${e.code ?? e.message}`);
  }
}

/** A PEM bundle of one or more CA certificates; returns its text. */
export function readCaBundle(path: string): string {
  const text = readText(path);
  const blocks = text.match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new Error(`"${path}" holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  blocks.forEach((pem, i) => {
    try {
      new X509Certificate(pem);
    } catch (err) {
      throw new Error(`"${path}": certificate ${i + 1} cannot be parsed: ${(err as Error).message}`);
    }
  });
  return text;
}

export interface CertFile {
  readonly pem: string;
  readonly x509: X509Certificate;
}

/** A PEM certificate (a chain: the first one is ours), not expired. */
export function readCertificate(path: string, now = Date.now()): CertFile {
  const text = readText(path);
  const first = text.match(PEM_CERT)?.[0];
  if (first === undefined) throw new Error(`"${path}" holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(first);
  } catch (err) {
    throw new Error(`"${path}": the certificate cannot be parsed: ${(err as Error).message}`);
  }
  if (Date.parse(x509.validTo) < now) throw new Error(`"${path}": the certificate expired on ${x509.validTo}`);
  return { pem: text, x509 };
}

export interface KeyFile {
  readonly pem: string;
  readonly key: KeyObject;
}

/** A PEM private key, unencrypted (there is no variable for a passphrase). */
export function readPrivateKey(path: string): KeyFile {
  const text = readText(path);
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) throw new Error(`"${path}" holds no PEM private key (-----BEGIN PRIVATE KEY-----)`);
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(text)) throw new Error(`"${path}": the key is encrypted; give an unencrypted key`);
  try {
    return { pem: text, key: createPrivateKey(text) };
  } catch (err) {
    throw new Error(`"${path}": the private key cannot be parsed: ${(err as Error).message}`);
  }
}

/** Does the key belong to the certificate? A mismatch otherwise surfaces as a handshake failure. */
export function keyMatches(cert: CertFile, key: KeyFile): boolean {
  return cert.x509.checkPrivateKey(key.key);
}

/**
 * A NATS credentials file (.creds: a user JWT and the user's nkey seed). Parsed and used to
 * sign a test nonce by the client library itself, so what passes here is what it will send.
 */
export function readNatsCreds(path: string): Uint8Array {
  const bytes = new Uint8Array(Buffer.from(readText(path), 'utf8'));
  // Loaded only when a creds file is named: a refused start-up answers without the NATS client.
  const { credsAuthenticator } = createRequire(import.meta.url)('@nats-io/transport-node') as typeof import('@nats-io/transport-node');
  let auth: { jwt?: string; nkey?: string };
  try {
    auth = credsAuthenticator(bytes)('sidecache-start-up-check') as { jwt?: string; nkey?: string };
  } catch (err) {
    throw new Error(`"${path}" is not a NATS credentials file (a user JWT and an nkey seed): ${(err as Error).message}`);
  }
  const parts = (auth.jwt ?? '').split('.');
  let sub: unknown;
  try {
    sub = parts.length === 3 ? (JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { sub?: unknown }).sub : undefined;
  } catch {
    sub = undefined;
  }
  if (sub === undefined) throw new Error(`"${path}": the user JWT cannot be parsed`);
  if (sub !== auth.nkey) throw new Error(`"${path}": the user JWT is not for the nkey seed in the same file`);
  return bytes;
}
