// Transport security of the cluster's own links, on real processes with certificates the
// test makes (openssl): NATS over TLS with client certificates verified, NATS with a
// credentials file (operator mode), and the peer port over TLS, verified both ways.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { signRequest } from '../../src/cluster/peer-auth.js';
import { makeCerts, type TestCa, type TestCert } from '../helpers/certs.js';
import { adminEnv, runCli } from '../helpers/cli.js';
import { CLUSTER_SECRET, clusterEnv, uniqueCluster, waitForRing } from '../../support/cluster.js';
import { startNats } from '../../support/nats-server.js';
import { makeNatsOperator } from '../helpers/nats-operator.js';
import { startOrigin } from '../../support/origin.js';
import { purge, runToExit, startSidecar, waitFor, type SidecarProcess } from '../../support/sidecar.js';

const certs = makeCerts();
t.teardown(() => certs.remove());
const natsCa = certs.ca('nats-ca');
const peerCa = certs.ca('peer-ca');
const otherCa = certs.ca('other-ca');
const natsServer = certs.leaf(natsCa, 'nats-server', { san: ['IP:127.0.0.1', 'DNS:localhost'] });
const natsClient = certs.leaf(natsCa, 'nats-client', { san: ['DNS:sidecache'] });

// One NATS server that speaks TLS only and wants a client certificate of its CA.
const nats = await startNats({
  nodes: 1,
  config: `tls { cert_file: "${natsServer.certFile}", key_file: "${natsServer.keyFile}", ca_file: "${natsCa.certFile}", verify: true, timeout: 2 }\n`,
  client: { tls: { caFile: natsCa.certFile, certFile: natsClient.certFile, keyFile: natsClient.keyFile } },
});
t.teardown(() => nats.stop());
const origin = await startOrigin();
t.teardown(() => origin.close());

const NATS_TLS = {
  SIDECACHE_NATS_TLS_CA: natsCa.certFile,
  SIDECACHE_NATS_TLS_CERT: natsClient.certFile,
  SIDECACHE_NATS_TLS_KEY: natsClient.keyFile,
};

function peerTls(ca: TestCa, cert: TestCert): Record<string, string> {
  return { SIDECACHE_PEER_TLS_CA: ca.certFile, SIDECACHE_PEER_TLS_CERT: cert.certFile, SIDECACHE_PEER_TLS_KEY: cert.keyFile };
}

/** The peer URL a TLS sidecar advertises (the helper's is http://). */
function tlsPeerUrl(sc: SidecarProcess): string {
  return sc.peerUrl.replace(/^http:/, 'https:');
}

async function startTlsPair(envs: [Record<string, string>, Record<string, string>], waitRing = true): Promise<SidecarProcess[]> {
  const cluster = uniqueCluster();
  const sidecars = await Promise.all(envs.map((env) => startSidecar({
    env: clusterEnv({ natsUrls: nats.urls, upstream: origin.url, env: { SIDECACHE_REPLICAS: '1', ...NATS_TLS, ...env } }, cluster),
  })));
  if (waitRing) await waitForRing(sidecars, 2);
  return sidecars;
}

async function get(url: string): Promise<{ status: number; body: string; cacheStatus: string }> {
  const r = await fetch(url);
  return { status: r.status, body: await r.text(), cacheStatus: r.headers.get('cache-status') ?? '' };
}

async function metric(sc: SidecarProcess, line: RegExp): Promise<number> {
  const text = await (await fetch(`${sc.adminUrl}/metrics`)).text();
  return Number(line.exec(text)?.[1] ?? 0);
}

/** A key the first sidecar owns alone: its answer there has one Cache-Status entry. */
async function keyOwnedBy(owner: SidecarProcess, prefix: string): Promise<string> {
  for (let k = 0; k < 64; k++) {
    const path = `${prefix}/${k}`;
    const r = await get(owner.url + path);
    if (r.status === 200 && !r.cacheStatus.includes(', sidecache')) return path;
  }
  throw new Error(`no key under ${prefix} owned by ${owner.id} in 64 tries`);
}

t.test('transport security - two sidecars over NATS TLS (client certificates verified) and a TLS peer port: a forwarded hit, and a purge both acknowledge', async (t) => {
  const pa = certs.leaf(peerCa, 'peer-a', { san: ['IP:127.0.0.1'] });
  const pb = certs.leaf(peerCa, 'peer-b', { san: ['IP:127.0.0.1'] });
  const [a, b] = await startTlsPair([peerTls(peerCa, pa), peerTls(peerCa, pb)]);
  t.teardown(() => Promise.all([a!.stop(), b!.stop()]));
  const info = await (await fetch(`${a!.adminUrl}/cluster`)).json() as { view: { members: Array<{ id: string; peerUrl: string }> } };
  t.same(info.view.members.map((m) => m.peerUrl).sort(), [tlsPeerUrl(a!), tlsPeerUrl(b!)].sort(), 'both advertise an https peer URL');

  const path = await keyOwnedBy(b!, '/tls-hit');
  t.equal(origin.count(path), 1, 'the owner fetched it once');
  const r = await get(a!.url + path);
  t.equal(r.status, 200);
  t.equal(r.body, `body of ${path} #1\n`, 'the owner\'s copy');
  t.match(r.cacheStatus, new RegExp(`^sidecache; hit;[^,]* node="${b!.id}"[^,]*, sidecache; fwd=[^,]* node="${a!.id}"`), 'a hit at the owner, reached over the TLS peer port');
  t.equal(origin.count(path), 1, 'no second origin request');

  const p = await purge(a!, { url: path });
  t.equal(p.status, 200);
  t.same([...p.json.acknowledged].sort(), [a!.id, b!.id].sort(), 'the purge went through NATS over TLS to both');
  t.same(p.json.missing, []);
  const after = await get(a!.url + path);
  t.equal(after.body, `body of ${path} #2\n`, 'refetched after the purge');
  t.equal(origin.count(path), 2);
  t.equal(await metric(a!, /^sidecache_degraded_fetches_total (\S+)$/m), 0, 'no forward failed');

  // `sidecache status` gathers every member's status over the signed peer port: here HTTPS.
  const st = await runCli(['status', '--json'], adminEnv(a!));
  t.equal(st.code, 0, `status exits 0 ${st.stderr}`);
  const report = JSON.parse(st.stdout) as { members: { id: string; reachable: boolean; lag: number | null; status: { appliedSeq: number } | null }[] };
  t.same(report.members.map((m) => [m.id, m.reachable]).sort(), [[a!.id, true], [b!.id, true]].sort(), 'both members answered over the TLS peer port');
  for (const m of report.members) t.ok(m.status !== null && m.status.appliedSeq >= 1 && m.lag === 0, `${m.id}: applied the purge, no lag`);
});

t.test('transport security - the TLS peer port refuses plaintext and clients without a certificate of the CA, and still wants a signature over TLS', async (t) => {
  const pa = certs.leaf(peerCa, 'peer-solo', { san: ['IP:127.0.0.1'] });
  const caller = certs.leaf(peerCa, 'peer-caller', { san: ['DNS:caller'] });
  const stranger = certs.leaf(otherCa, 'peer-stranger', { san: ['DNS:caller'] });
  const cluster = uniqueCluster();
  const sc = await startSidecar({ env: clusterEnv({ natsUrls: nats.urls, upstream: origin.url, env: { ...NATS_TLS, ...peerTls(peerCa, pa) } }, cluster) });
  t.teardown(() => sc.stop());
  const port = Number(new URL(sc.peerUrl).port);
  const signed = () => signRequest(CLUSTER_SECRET, { cluster, from: 'caller', epoch: 1 }, 'GET', '/tls-port');

  // Plaintext HTTP, signed: no HTTP answer at all, the connection is closed.
  const plain = await new Promise<string>((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/tls-port', headers: signed() }, (res) => resolve(`status ${res.statusCode}`));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`));
    req.end();
  });
  t.match(plain, /^error /, `plaintext gets no answer (${plain})`);

  const tlsGet = (o: { cert?: TestCert; headers?: Record<string, string> }) => new Promise<string>((resolve) => {
    const req = httpsRequest({
      host: '127.0.0.1', port, path: '/tls-port', headers: o.headers ?? {}, ca: readFileSync(peerCa.certFile),
      ...(o.cert === undefined ? {} : { cert: readFileSync(o.cert.certFile), key: readFileSync(o.cert.keyFile) }),
    }, (res) => { res.resume(); resolve(`status ${res.statusCode}`); });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`));
    req.end();
  });
  const noCert = await tlsGet({ headers: signed() });
  t.match(noCert, /^error /, `TLS without a client certificate gets no answer (${noCert})`);
  const otherCert = await tlsGet({ cert: stranger, headers: signed() });
  t.match(otherCert, /^error /, `a certificate of another CA gets no answer (${otherCert})`);
  t.equal(await tlsGet({ cert: caller }), 'status 401', 'a certificate of the CA without a signature: 401');
  t.equal(await tlsGet({ cert: caller, headers: signed() }), 'status 200', 'a certificate of the CA and a signature: served');

  t.ok(await metric(sc, /^sidecache_peer_rejected_total\{reason="tls"\} (\S+)$/m) >= 3, 'the refused handshakes are counted');
  await waitFor(() => /"reason":"tls".*"peer request refused"|"peer request refused".*"reason":"tls"/.test(sc.output()), 5_000, 'a refused handshake to be logged');
});

t.test('transport security - a peer that cannot be verified (a certificate of another CA) is not trusted either way: misses go to the origin, both keep serving, the logs say why', async (t) => {
  const good = certs.leaf(peerCa, 'peer-good', { san: ['IP:127.0.0.1'] });
  const rogue = certs.leaf(otherCa, 'peer-rogue', { san: ['IP:127.0.0.1'] });
  const [a, b] = await startTlsPair([peerTls(peerCa, good), peerTls(peerCa, rogue)]);
  t.teardown(() => Promise.all([a!.stop(), b!.stop()]));
  // Keys of both owners asked at both sidecars: every forward fails and falls back.
  for (let k = 0; k < 16; k++) {
    for (const sc of [a!, b!]) {
      const r = await get(`${sc.url}/tls-rogue/${k}`);
      t.equal(r.status, 200, `served at ${sc.id}`);
    }
  }
  t.ok(await metric(a!, /^sidecache_degraded_fetches_total (\S+)$/m) > 0, 'a fetched the origin itself for keys b owns');
  t.ok(await metric(b!, /^sidecache_degraded_fetches_total (\S+)$/m) > 0, 'b fetched the origin itself for keys a owns');
  t.match(a!.output(), /unreachable: [^"]*not signed by a CA in SIDECACHE_PEER_TLS_CA/, 'a says b\'s certificate is not of its CA');
  t.ok(await metric(a!, /^sidecache_peer_rejected_total\{reason="tls"\} (\S+)$/m) > 0, 'a refused b\'s certificate at its port');
  t.match(b!.output(), /peer unreachable/, 'b says a could not be reached');
  t.equal(a!.proc.exitCode, null, 'a runs');
  t.equal(b!.proc.exitCode, null, 'b runs');
});

t.test('transport security - SIDECACHE_PEER_TLS_SERVER_NAME: peers whose certificates name no address are verified by that name', async (t) => {
  const env = (name: string) => ({
    ...peerTls(peerCa, certs.leaf(peerCa, name, { san: ['DNS:peer.sidecache.test'] })),
    SIDECACHE_PEER_TLS_SERVER_NAME: 'peer.sidecache.test',
  });
  const [a, b] = await startTlsPair([env('named-a'), env('named-b')]);
  t.teardown(() => Promise.all([a!.stop(), b!.stop()]));
  const path = await keyOwnedBy(b!, '/tls-named');
  const r = await get(a!.url + path);
  t.match(r.cacheStatus, new RegExp(`^sidecache; hit;[^,]* node="${b!.id}"`), 'forwarded to the owner and served from its cache');
  t.equal(origin.count(path), 1);
  t.equal(await metric(a!, /^sidecache_degraded_fetches_total (\S+)$/m), 0, 'no forward failed');
});

t.test('transport security - a sidecar that cannot complete the NATS TLS handshake does not start, and says why', async (t) => {
  const base = { ...clusterEnv({ natsUrls: nats.urls, upstream: origin.url }, uniqueCluster()), SIDECACHE_LISTEN: '127.0.0.1:0', SIDECACHE_ADMIN_LISTEN: '127.0.0.1:0', SIDECACHE_PEER_LISTEN: '127.0.0.1:0', SIDECACHE_NODE_ID: 'tls-refused' };
  /** The line start-up failures print on stderr. */
  const failure = (output: string) => output.split('\n').find((l) => l.startsWith('sidecache: start-up failed:')) ?? output;
  const wrongCa = await runToExit({ ...base, ...NATS_TLS, SIDECACHE_NATS_TLS_CA: peerCa.certFile }, [], 30_000);
  t.equal(wrongCa.code, 1, 'another CA: start-up fails');
  t.match(failure(wrongCa.output), /cannot connect to NATS.*not signed by a CA in SIDECACHE_NATS_TLS_CA/);
  t.notMatch(failure(wrongCa.output), /use-system-ca/, 'no hint that does not apply');

  // The server refuses the handshake after it: the client's retries end in a timeout (20 s).
  // The single attempt then reads the server's alert, or a reset that came before it.
  const noCert = await runToExit({ ...base, SIDECACHE_NATS_TLS_CA: natsCa.certFile }, [], 60_000);
  t.equal(noCert.code, 1, 'no client certificate: start-up fails');
  t.match(failure(noCert.output), /cannot connect to NATS.*(did not accept our certificate, SIDECACHE_NATS_TLS_CERT, or we sent none|ECONNRESET.*refuse our certificate \(SIDECACHE_NATS_TLS_CERT\))/);

  const plain = await runToExit(base, [], 30_000);
  t.equal(plain.code, 1, 'no TLS settings: the server\'s certificate is checked against the system CAs and fails');
  t.match(failure(plain.output), /cannot connect to NATS.*SIDECACHE_NATS_TLS_CA/);
});

t.test('transport security - NATS in operator mode: sidecars with a .creds file join, serve and purge; other credentials or none do not start', async (t) => {
  const op = await makeNatsOperator();
  const jwtNats = await startNats({ nodes: 1, config: op.config, client: { authenticator: (await import('@nats-io/transport-node')).credsAuthenticator(await op.userCreds('ready-check')) } });
  t.teardown(() => jwtNats.stop());
  const credsFile = certs.file('sidecache.creds', Buffer.from(await op.userCreds('sidecache')).toString());
  const cluster = uniqueCluster();
  const env = { SIDECACHE_NATS_CREDS: credsFile };
  const sidecars = await Promise.all([0, 1].map(() => startSidecar({ env: clusterEnv({ natsUrls: jwtNats.urls, upstream: origin.url, env }, cluster) })));
  t.teardown(() => Promise.all(sidecars.map((s) => s.stop())));
  await waitForRing(sidecars, 2);
  const r = await get(`${sidecars[0]!.url}/tls-creds`);
  t.equal(r.status, 200);
  const p = await purge(sidecars[1]!, { url: '/tls-creds' });
  t.same([...p.json.acknowledged].sort(), sidecars.map((s) => s.id).sort(), 'a purge reached both through the JWT-authenticated connection');

  const base = { ...clusterEnv({ natsUrls: jwtNats.urls, upstream: origin.url }, uniqueCluster()), SIDECACHE_LISTEN: '127.0.0.1:0', SIDECACHE_ADMIN_LISTEN: '127.0.0.1:0', SIDECACHE_PEER_LISTEN: '127.0.0.1:0', SIDECACHE_NODE_ID: 'creds-refused' };
  const strangerFile = certs.file('stranger.creds', Buffer.from(await op.strangerCreds('stranger')).toString());
  const stranger = await runToExit({ ...base, SIDECACHE_NATS_CREDS: strangerFile }, [], 30_000);
  t.equal(stranger.code, 1, 'a user of an account the server does not know: start-up fails');
  t.match(stranger.output, /cannot connect to NATS.*(Authorization Violation|authorization)/i);
  const none = await runToExit(base, [], 30_000);
  t.equal(none.code, 1, 'no credentials: start-up fails');
  t.match(none.output, /cannot connect to NATS.*(Authorization Violation|authorization)/i);
  const seed = readFileSync(credsFile, 'utf8').match(/SU[A-Z2-7]{56}/)![0];
  t.equal([...sidecars.map((s) => s.output()), stranger.output, none.output].some((o) => o.includes(seed)), false, 'the nkey seed is in no log');
});

t.test('transport security - bad values stop start-up with a message naming the variable', async (t) => {
  const base = { ...clusterEnv({ natsUrls: nats.urls, upstream: origin.url }, uniqueCluster()) };
  const pem = certs.leaf(peerCa, 'peer-bad-values', { san: ['IP:127.0.0.1'] });
  const notPem = certs.file('not-a-cert.pem', 'hello\n');
  const truncated = certs.file('truncated.pem', readFileSync(pem.certFile, 'utf8').slice(0, 200) + '\n-----END CERTIFICATE-----\n');
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['a missing CA file', { SIDECACHE_NATS_TLS_CA: join(certs.dir, 'missing.pem') }, /SIDECACHE_NATS_TLS_CA: cannot read .*ENOENT/],
    ['a CA file that is no PEM', { SIDECACHE_NATS_TLS_CA: notPem }, /SIDECACHE_NATS_TLS_CA: .*holds no PEM certificate/],
    ['a certificate without its key', { SIDECACHE_NATS_TLS_CERT: natsClient.certFile }, /SIDECACHE_NATS_TLS_KEY: required with SIDECACHE_NATS_TLS_CERT/],
    ['a key of another certificate', { SIDECACHE_NATS_TLS_CERT: natsClient.certFile, SIDECACHE_NATS_TLS_KEY: natsServer.keyFile }, /SIDECACHE_NATS_TLS_KEY: the key does not belong to the certificate in SIDECACHE_NATS_TLS_CERT/],
    ['a creds file that is none', { SIDECACHE_NATS_CREDS: notPem }, /SIDECACHE_NATS_CREDS: .*is not a NATS credentials file/],
    ['a truncated peer certificate', { ...peerTls(peerCa, pem), SIDECACHE_PEER_TLS_CERT: truncated }, /SIDECACHE_PEER_TLS_CERT: .*cannot be parsed/],
    ['a peer certificate without the CA', { SIDECACHE_PEER_TLS_CERT: pem.certFile, SIDECACHE_PEER_TLS_KEY: pem.keyFile }, /SIDECACHE_PEER_TLS_CA: required/],
    ['a peer key that is no key', { ...peerTls(peerCa, pem), SIDECACHE_PEER_TLS_KEY: pem.certFile }, /SIDECACHE_PEER_TLS_KEY: .*holds no PEM private key/],
    ['an http peer URL with a TLS peer port', { ...peerTls(peerCa, pem), SIDECACHE_PEER_URL: 'http://127.0.0.1:7070' }, /SIDECACHE_PEER_URL: must be an https URL/],
  ];
  for (const [what, env, expect] of cases) {
    const r = await runToExit({ ...base, ...env });
    t.equal(r.code, 2, `${what}: not started`);
    t.match(r.output, expect, what);
  }
  // Unreadable: a directory where a file was expected.
  const dir = await runToExit({ ...base, SIDECACHE_PEER_TLS_CA: certs.dir, SIDECACHE_PEER_TLS_CERT: pem.certFile, SIDECACHE_PEER_TLS_KEY: pem.keyFile });
  t.equal(dir.code, 2);
  t.match(dir.output, /SIDECACHE_PEER_TLS_CA: cannot read .*EISDIR/);
});
