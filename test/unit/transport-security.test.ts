// The transport-security variables (SIDECACHE_NATS_TLS_*, _NATS_CREDS, _PEER_TLS_*): files
// read and checked by loadConfig, every problem named by its variable; certificates made here
// with openssl, credentials with nats-io's jwt library.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { createAccount, createUser, encodeUser, fmtCreds } from '@nats-io/jwt';
import { loadConfig } from '../../src/core/config.js';
import { describeTlsError, readCertificate } from '../../src/core/transport-security.js';
import { makeCerts, OPENSSL_BIN } from '../helpers/certs.js';
import { errorsOf } from '../helpers/config-errors.js';

const BASE = { SIDECACHE_UPSTREAM: 'http://127.0.0.1:8080', SIDECACHE_NATS_URL: 'nats://127.0.0.1:4222', SIDECACHE_CLUSTER_SECRET: 's'.repeat(16), SIDECACHE_PEER_LISTEN: '127.0.0.1:7070' };

const certs = makeCerts();
t.teardown(() => certs.remove());
const ca = certs.ca('unit-ca');
const other = certs.ca('unit-other-ca');
const leaf = certs.leaf(ca, 'unit-leaf', { san: ['IP:127.0.0.1'] });
const leaf2 = certs.leaf(ca, 'unit-leaf2', { san: ['IP:127.0.0.1'] });
const bundle = certs.file('bundle.pem', readFileSync(other.certFile, 'utf8') + readFileSync(ca.certFile, 'utf8'));
const PEER = { SIDECACHE_PEER_TLS_CA: ca.certFile, SIDECACHE_PEER_TLS_CERT: leaf.certFile, SIDECACHE_PEER_TLS_KEY: leaf.keyFile };

async function credsText(): Promise<{ text: string; seed: string; jwt: string }> {
  const user = createUser();
  const jwt = await encodeUser('u', user, createAccount());
  return { text: Buffer.from(fmtCreds(jwt, user)).toString(), seed: new TextDecoder().decode(user.getSeed()), jwt };
}

t.test('transport security config - nothing set: no TLS, no creds, an http peer URL', async (t) => {
  const c = loadConfig(BASE);
  t.equal(c.natsTls, undefined);
  t.equal(c.natsCreds, undefined);
  t.equal(c.peerTls, undefined);
  t.equal(c.peerUrl, 'http://127.0.0.1:7070');
});

t.test('transport security config - the files are read at start-up; the peer URL defaults to https', async (t) => {
  const creds = await credsText();
  const credsFile = certs.file('ok.creds', creds.text);
  const c = loadConfig({
    ...BASE, ...PEER,
    SIDECACHE_NATS_TLS_CA: bundle, SIDECACHE_NATS_TLS_CERT: leaf2.certFile, SIDECACHE_NATS_TLS_KEY: leaf2.keyFile,
    SIDECACHE_NATS_CREDS: credsFile,
  });
  t.same(c.natsTls, { ca: readFileSync(bundle, 'utf8'), cert: readFileSync(leaf2.certFile, 'utf8'), key: readFileSync(leaf2.keyFile, 'utf8') });
  t.equal(Buffer.from(c.natsCreds!).toString(), creds.text);
  t.same(c.peerTls, { ca: readFileSync(ca.certFile, 'utf8'), cert: readFileSync(leaf.certFile, 'utf8'), key: readFileSync(leaf.keyFile, 'utf8'), serverName: undefined });
  t.equal(c.peerUrl, 'https://127.0.0.1:7070');
  // A CA alone is enough for NATS: the server's certificate is checked, none is presented.
  t.same(loadConfig({ ...BASE, SIDECACHE_NATS_TLS_CA: ca.certFile }).natsTls, { ca: readFileSync(ca.certFile, 'utf8') });
  t.equal(loadConfig({ ...BASE, ...PEER, SIDECACHE_PEER_TLS_SERVER_NAME: 'peer.sidecache.test' }).peerTls?.serverName, 'peer.sidecache.test');
  t.equal(loadConfig({ ...BASE, ...PEER, SIDECACHE_PEER_URL: 'https://10.0.0.7:7070' }).peerUrl, 'https://10.0.0.7:7070');
});

t.test('transport security config - each bad file is named by its variable', async (t) => {
  const missing = join(certs.dir, 'missing.pem');
  const garbage = certs.file('garbage.pem', '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n');
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ SIDECACHE_NATS_TLS_CA: missing }, /^SIDECACHE_NATS_TLS_CA: cannot read ".*missing.pem": ENOENT$/],
    [{ SIDECACHE_NATS_TLS_CA: garbage }, /^SIDECACHE_NATS_TLS_CA: ".*garbage.pem": certificate 1 cannot be parsed/],
    [{ SIDECACHE_NATS_TLS_CA: leaf.keyFile }, /^SIDECACHE_NATS_TLS_CA: ".*" holds no PEM certificate/],
    [{ SIDECACHE_NATS_TLS_CERT: garbage, SIDECACHE_NATS_TLS_KEY: leaf.keyFile }, /^SIDECACHE_NATS_TLS_CERT: ".*garbage.pem": the certificate cannot be parsed/],
    [{ SIDECACHE_NATS_TLS_CERT: leaf.certFile, SIDECACHE_NATS_TLS_KEY: missing }, /^SIDECACHE_NATS_TLS_KEY: cannot read/],
    [{ SIDECACHE_NATS_TLS_CERT: leaf.certFile, SIDECACHE_NATS_TLS_KEY: leaf.certFile }, /^SIDECACHE_NATS_TLS_KEY: ".*" holds no PEM private key/],
    [{ SIDECACHE_NATS_TLS_CERT: leaf.certFile, SIDECACHE_NATS_TLS_KEY: leaf2.keyFile }, /^SIDECACHE_NATS_TLS_KEY: the key does not belong to the certificate in SIDECACHE_NATS_TLS_CERT$/],
    [{ SIDECACHE_NATS_TLS_CERT: leaf.certFile }, /^SIDECACHE_NATS_TLS_KEY: required with SIDECACHE_NATS_TLS_CERT/],
    [{ SIDECACHE_NATS_TLS_KEY: leaf.keyFile }, /^SIDECACHE_NATS_TLS_CERT: required with SIDECACHE_NATS_TLS_KEY/],
    [{ SIDECACHE_NATS_CREDS: missing }, /^SIDECACHE_NATS_CREDS: cannot read/],
    [{ SIDECACHE_NATS_CREDS: leaf.certFile }, /^SIDECACHE_NATS_CREDS: ".*" is not a NATS credentials file/],
    [{ ...PEER, SIDECACHE_PEER_TLS_CA: missing }, /^SIDECACHE_PEER_TLS_CA: cannot read/],
    [{ ...PEER, SIDECACHE_PEER_TLS_CERT: garbage }, /^SIDECACHE_PEER_TLS_CERT: .*cannot be parsed/],
    [{ ...PEER, SIDECACHE_PEER_TLS_KEY: leaf2.keyFile }, /^SIDECACHE_PEER_TLS_KEY: the key does not belong to the certificate in SIDECACHE_PEER_TLS_CERT$/],
    [{ SIDECACHE_PEER_TLS_CERT: leaf.certFile, SIDECACHE_PEER_TLS_KEY: leaf.keyFile }, /^SIDECACHE_PEER_TLS_CA: required with SIDECACHE_PEER_TLS_CERT, SIDECACHE_PEER_TLS_KEY/],
    [{ SIDECACHE_PEER_TLS_CA: ca.certFile }, /^SIDECACHE_PEER_TLS_CERT: required with SIDECACHE_PEER_TLS_CA/],
    [{ SIDECACHE_PEER_TLS_CA: ca.certFile, SIDECACHE_PEER_TLS_CERT: leaf.certFile }, /^SIDECACHE_PEER_TLS_KEY: required with SIDECACHE_PEER_TLS_CERT/],
  ];
  for (const [env, expect] of cases) {
    const errors = errorsOf({ ...BASE, ...env });
    t.equal(errors.length, 1, `one error for ${JSON.stringify(env)}: ${errors.join(' | ')}`);
    t.match(errors[0], expect);
  }
});

t.test('transport security config - rules between variables', async (t) => {
  t.match(errorsOf({ ...BASE, SIDECACHE_NATS_CREDS: certs.file('c1.creds', (await credsText()).text), SIDECACHE_NATS_USER: 'u', SIDECACHE_NATS_PASS: 'p' }),
    [/^SIDECACHE_NATS_CREDS: not with SIDECACHE_NATS_USER, SIDECACHE_NATS_PASS/]);
  t.match(errorsOf({ ...BASE, SIDECACHE_NATS_CREDS: certs.file('c2.creds', (await credsText()).text), SIDECACHE_NATS_TOKEN: 'tok' }),
    [/^SIDECACHE_NATS_CREDS: not with SIDECACHE_NATS_TOKEN/]);
  t.match(errorsOf({ ...BASE, ...PEER, SIDECACHE_PEER_URL: 'http://127.0.0.1:7070' }), [/^SIDECACHE_PEER_URL: must be an https URL while the peer port is on TLS/]);
  t.match(errorsOf({ ...BASE, SIDECACHE_PEER_TLS_SERVER_NAME: 'peer.sidecache.test' }), [/^SIDECACHE_PEER_TLS_SERVER_NAME: only with SIDECACHE_PEER_TLS_CERT/]);
  for (const bad of ['127.0.0.1:7070', 'has space', '-lead.example', 'a..b', 'x'.repeat(64) + '.example']) {
    t.match(errorsOf({ ...BASE, ...PEER, SIDECACHE_PEER_TLS_SERVER_NAME: bad }), [/^SIDECACHE_PEER_TLS_SERVER_NAME: expected a DNS name/], bad);
  }
  t.same(errorsOf({ ...BASE, ...PEER, SIDECACHE_PEER_TLS_CA: '', SIDECACHE_PEER_TLS_CERT: ' ', SIDECACHE_PEER_TLS_KEY: '' }), [], 'empty values are unset');
});

t.test('transport security config - creds: the JWT and the seed must be of one user', async (t) => {
  const a = await credsText();
  const b = await credsText();
  const mixed = certs.file('mixed.creds', a.text.replace(a.seed, b.seed));
  t.match(errorsOf({ ...BASE, SIDECACHE_NATS_CREDS: mixed }), [/^SIDECACHE_NATS_CREDS: ".*mixed.creds": the user JWT is not for the nkey seed in the same file$/]);
  const badSeed = certs.file('bad-seed.creds', a.text.replace(a.seed, 'SU' + 'A'.repeat(56)));
  t.match(errorsOf({ ...BASE, SIDECACHE_NATS_CREDS: badSeed }), [/^SIDECACHE_NATS_CREDS: ".*" is not a NATS credentials file/]);
  const badJwt = certs.file('bad-jwt.creds', a.text.replace(a.jwt, 'not.a-jwt'));
  t.match(errorsOf({ ...BASE, SIDECACHE_NATS_CREDS: badJwt }), [/^SIDECACHE_NATS_CREDS: ".*": the user JWT cannot be parsed$/]);
  t.equal(errorsOf({ ...BASE, SIDECACHE_NATS_CREDS: mixed }).join('').includes(b.seed), false, 'the seed is not echoed');
});

t.test('transport security config - an encrypted key, and an expired certificate', async (t) => {
  const encrypted = join(certs.dir, 'encrypted.key');
  execFileSync(OPENSSL_BIN, ['pkey', '-in', leaf.keyFile, '-aes256', '-passout', 'pass:secret', '-out', encrypted]);
  t.match(errorsOf({ ...BASE, ...PEER, SIDECACHE_PEER_TLS_KEY: encrypted }), [/^SIDECACHE_PEER_TLS_KEY: ".*": the key is encrypted; give an unencrypted key$/]);
  const validTo = Date.parse(readCertificate(leaf.certFile).x509.validTo);
  t.throws(() => readCertificate(leaf.certFile, validTo + 1000), /the certificate expired on /);
  t.doesNotThrow(() => readCertificate(leaf.certFile, validTo - 1000));
});

t.test('transport security - TLS failures name the variable to look at', async (t) => {
  const vars = { ca: 'SIDECACHE_PEER_TLS_CA', cert: 'SIDECACHE_PEER_TLS_CERT' };
  const untrusted = Object.assign(new Error('unable to verify the first certificate; if the root CA is installed locally, try running Node.js with --use-system-ca'), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
  t.equal(describeTlsError(new Error('fetch failed', { cause: untrusted }), vars),
    'unable to verify the first certificate (UNABLE_TO_VERIFY_LEAF_SIGNATURE: the certificate is not signed by a CA in SIDECACHE_PEER_TLS_CA)');
  const refused = Object.assign(new Error('40ED66F84F7F0000:error:0A000412:SSL routines:ssl3_read_bytes:ssl/tls alert bad certificate:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:918:SSL alert number 42\n'), { code: 'ERR_SSL_SSL/TLS_ALERT_BAD_CERTIFICATE' });
  t.equal(describeTlsError(refused, vars),
    'ssl/tls alert bad certificate (SSL alert number 42) (ERR_SSL_SSL/TLS_ALERT_BAD_CERTIFICATE: the other side did not accept our certificate, SIDECACHE_PEER_TLS_CERT, or we sent none)');
  t.equal(describeTlsError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }), vars), 'connect ECONNREFUSED 127.0.0.1:9');
});
