// Certificates a test makes for itself with openssl: CAs and the certificates they sign
// (P-256 keys, quick to make), in a temporary directory the test removes at its end.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const OPENSSL_BIN = process.env.OPENSSL_BIN ?? 'openssl';

export interface TestCa {
  readonly name: string;
  readonly certFile: string;
  readonly keyFile: string;
}

export interface TestCert {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface LeafOptions {
  /** subjectAltName entries, e.g. ['IP:127.0.0.1', 'DNS:localhost']. */
  readonly san: readonly string[];
  /** Days from now the certificate stays valid; default 2. */
  readonly days?: number;
}

export interface CertFactory {
  readonly dir: string;
  ca(name: string): TestCa;
  /** A certificate for servers and clients alike (extendedKeyUsage serverAuth, clientAuth). */
  leaf(ca: TestCa, name: string, o: LeafOptions): TestCert;
  /** Writes a file of the test's own in the directory (a broken PEM, say); returns its path. */
  file(name: string, text: string): string;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync(OPENSSL_BIN, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`openssl ${args[0]} failed (tests need openssl, set OPENSSL_BIN): ${e.stderr?.toString() ?? e.message}`);
  }
}

export function makeCerts(): CertFactory {
  const dir = mkdtempSync(join(tmpdir(), 'sidecache-certs-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  return {
    dir,
    ca(name) {
      const certFile = join(dir, `${name}.crt`);
      const keyFile = join(dir, `${name}.key`);
      openssl(['req', '-x509', ...ec, '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${name}`,
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
      return { name, certFile, keyFile };
    },
    leaf(ca, name, o) {
      const certFile = join(dir, `${name}.crt`);
      const keyFile = join(dir, `${name}.key`);
      const csr = join(dir, `${name}.csr`);
      const ext = join(dir, `${name}.ext`);
      openssl(['req', ...ec, '-keyout', keyFile, '-out', csr, '-subj', `/CN=${name}`], dir);
      writeFileSync(ext, [
        `subjectAltName=${o.san.join(',')}`,
        'basicConstraints=CA:FALSE',
        'keyUsage=critical,digitalSignature',
        'extendedKeyUsage=serverAuth,clientAuth',
        '',
      ].join('\n'));
      openssl(['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial',
        '-out', certFile, '-days', String(o.days ?? 2), '-extfile', ext], dir);
      return { certFile, keyFile };
    },
    file(name, text) {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
