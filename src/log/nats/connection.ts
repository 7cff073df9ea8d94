// The connection to NATS: connect (saying why it failed), check that the server is new enough
// and has JetStream, and follow the connection's status (attached, reconnected).

import { connect, credsAuthenticator, TimeoutError, type NodeConnectionOptions } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { logError, redactCredentials } from '../../core/errors.js';
import { describeTlsError } from '../../core/transport-security.js';
import type { Runtime } from './runtime.js';

const MIN_SERVER = { major: 2, minor: 9 } as const;

/** Connect and check the server; sets rt.nc first, so that close() drains a connection whose
 *  server fails the checks. */
export async function connectNats(rt: Runtime): Promise<void> {
  const o = rt.opts;
  const copts: NodeConnectionOptions = {
    servers: [...o.servers],
    name: o.self.id,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    // Notice a silent server within ~20 s rather than the default 4 minutes.
    pingInterval: 10_000,
    maxPingOut: 2,
  };
  if (o.token !== undefined) copts.token = o.token;
  if (o.user !== undefined) copts.user = o.user;
  if (o.pass !== undefined) copts.pass = o.pass;
  if (o.creds !== undefined) copts.authenticator = credsAuthenticator(o.creds);
  if (o.tls !== undefined) copts.tls = { ...o.tls };
  const describe = (err: unknown): string => describeTlsError(err, { ca: 'SIDECACHE_NATS_TLS_CA', cert: 'SIDECACHE_NATS_TLS_CERT' });
  try {
    rt.nc = await connect(copts);
  } catch (err) {
    let why = describe(err);
    if (err instanceof TimeoutError) {
      // Retrying, the client forgets why each attempt failed (a server that refuses our
      // certificate or credentials after the handshake looks like a timeout): one attempt
      // without retries says.
      const probe = await connect({ ...copts, reconnect: false, timeout: 5_000 }).then(
        async (nc) => { await nc.close().catch(() => undefined); return undefined; },
        (e: unknown) => (e instanceof TimeoutError ? undefined : describe(e)),
      );
      if (probe !== undefined) why += ` (a single attempt says: ${probe})`;
      // A server that refuses our certificate may reset the connection before its alert is read.
      if (probe !== undefined && o.tls !== undefined && /ECONNRESET/.test(probe)) {
        why += '; a reset right after the TLS handshake is how a server may refuse our certificate (SIDECACHE_NATS_TLS_CERT) or its absence';
      }
    }
    throw logError(`cannot connect to NATS at ${o.servers.map(redactCredentials).join(', ')}: ${why}`, err);
  }
  const nc = rt.nc;
  const info = nc.info;
  const version = info?.version ?? 'unknown';
  const m = /^v?(\d+)\.(\d+)\./.exec(version);
  const major = m ? Number(m[1]) : 0;
  const minor = m ? Number(m[2]) : 0;
  if (major < MIN_SERVER.major || (major === MIN_SERVER.major && minor < MIN_SERVER.minor)) {
    throw logError(
      `nats-server ${version} is too old: sidecache needs ${MIN_SERVER.major}.${MIN_SERVER.minor} or newer ` +
        '(R3 streams, MaxMsgsPerSubject, direct get, KV compare-and-set)',
    );
  }
  if (info?.jetstream !== true) {
    throw logError(`nats-server ${version} at ${nc.getServer()} has JetStream disabled (start it with -js)`);
  }
  rt.js = jetstream(nc);
  rt.jsm = await jetstreamManager(nc);
}

/** Replicas of the streams and buckets: as configured, or as many as the NATS cluster has
 *  servers (connect_urls), 1 to 3. */
export function replicasOf(rt: Runtime): number {
  if (rt.opts.streamReplicas !== undefined) return rt.opts.streamReplicas;
  const urls = new Set(rt.nc?.info?.connect_urls ?? []);
  return Math.max(1, Math.min(3, urls.size));
}

export interface ConnectionEvents {
  /** rt.attached changed (it is set already). */
  attached(attached: boolean): void;
  /** Reconnected after a disconnect. */
  reconnected(): void;
}

/** Follow the connection's status until it closes: rt.attached and rt.attachedAt track it. */
export function watchConnection(rt: Runtime, events: ConnectionEvents): void {
  const nc = rt.nc!;
  const setAttached = (attached: boolean, server: string): void => {
    if (rt.closing || rt.attached === attached) return;
    rt.attached = attached;
    if (attached) rt.attachedAt = Date.now();
    rt.log[attached ? 'info' : 'warn']({ server }, attached ? 'NATS reconnected' : 'NATS disconnected');
    events.attached(attached);
  };
  void (async () => {
    for await (const s of nc.status()) {
      switch (s.type) {
        case 'disconnect':
          setAttached(false, s.server);
          break;
        case 'reconnect':
          setAttached(true, s.server);
          events.reconnected();
          break;
        case 'error':
          rt.log.warn({ err: s.error }, 'NATS error');
          break;
        case 'ldm':
          rt.log.info({ server: s.server }, 'NATS server entering lame duck mode');
          break;
        default:
          break;
      }
    }
  })().catch((err: unknown) => rt.log.error({ err }, 'NATS status loop failed'));
  void nc.closed().then((err) => {
    if (rt.closing) return;
    rt.log.error({ err }, 'NATS connection closed for good');
    setAttached(false, '');
  });
}
