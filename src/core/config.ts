// SIDECACHE_* environment -> one frozen Config, checked once at start-up. Every problem
// is reported (variable, value, what is allowed) before the process exits.
import { hostname } from 'node:os';
import { ConfigError, ConfigErrors, redactCredentials } from './errors.js';
import { readTransportSecurity, type NatsTls, type PeerTls } from './transport-security.js';
import {
  intIn, oneOf, parseBool, parseDuration, parseFraction, parseHostPatterns, parseHttpUrl, parseList, parseListen,
  parsePorts, parseSize, parseStreamAge, positiveDuration, positiveSize, sizeAtLeast, type HostPattern, type Listen, type Parser,
} from './config-parsers.js';

export type { HostPattern, Listen } from './config-parsers.js';
export { MAX_TIMER_MS, parseDuration, parseListen, parseSize } from './config-parsers.js';

export interface Config {
  readonly listen: Listen;
  readonly upstream: URL | undefined;
  readonly allowHosts: readonly HostPattern[];
  readonly tlsPorts: readonly number[];
  readonly caFile: string | undefined;
  readonly maxBytes: number;
  readonly maxEntryBytes: number;
  readonly hotMaxBytes: number;
  readonly maxVariants: number;
  /** Compression on store (proxy/compress.ts, http/compressible.ts): off by default. */
  readonly compress: boolean;
  /** Bodies compressed: from compressMinBytes to compressMaxBytes (gzip runs off the event loop, bounded). */
  readonly compressMinBytes: number;
  readonly compressMaxBytes: number;
  /** Media types compressed: exact (`application/json`) or a whole type (`text/*`), lower-case. */
  readonly compressTypes: readonly string[];
  readonly invalHistoryBytes: number;
  readonly maxHeaderBytes: number;
  readonly maxUrlBytes: number;
  readonly maxConnections: number;
  readonly clientHeadersTimeoutMs: number;
  readonly clientRequestTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly tunnelIdleTimeoutMs: number;
  readonly defaultTtlMs: number;
  readonly querySort: boolean;
  readonly queryDrop: readonly string[];
  readonly cacheStatusDetail: boolean;
  readonly stripTagHeaders: boolean;
  /** Export prom-client's per-collection GC histogram (a perf_hooks observer: not free). */
  readonly gcMetrics: boolean;
  readonly adminListen: Listen;
  readonly adminToken: string | undefined;
  readonly purgeTimeoutMs: number;
  readonly logLevel: string;
  /** Fraction of requests written to the access log; 0: off (no work per request). */
  readonly accessLogSample: number;
  readonly shutdownTimeoutMs: number;
  // cluster
  readonly natsUrls: readonly string[];
  readonly natsToken: string | undefined;
  readonly natsUser: string | undefined;
  readonly natsPass: string | undefined;
  readonly cluster: string;
  readonly nodeId: string;
  readonly peerListen: Listen;
  readonly peerUrl: string;
  readonly clusterSecret: string | undefined;
  readonly replicas: number;
  readonly partitions: number;
  readonly streamReplicas: number | undefined;
  readonly heartbeatIntervalMs: number;
  readonly heartbeatTtlMs: number;
  /** How keys map to partitions (cluster/placement.ts); fixed for the life of a cluster. */
  readonly placement: 'hash' | 'range';
  readonly ring: boolean;
  readonly handoff: boolean;
  readonly maxStaleDetachedMs: number;
  readonly fillMaxBytes: number;
  readonly fillMaxInFlight: number;
  readonly fillsMaxBytes: number;
  readonly fillsMaxAgeMs: number;
  readonly invalMaxAgeMs: number;
  readonly invalMaxBytes: number;
  readonly writeInvalRate: number;
  readonly peerTimeoutMs: number;
  // transport security (transport-security.ts): file contents, read at start-up
  readonly natsTls: NatsTls | undefined;
  readonly natsCreds: Uint8Array | undefined;
  readonly peerTls: PeerTls | undefined;
}

interface VarSpec {
  readonly name: string;
  readonly def: string;
  readonly help: string;
}

/** Every variable, its default (as text) and meaning: `sidecache --help` and the README. */
export const VARIABLES: readonly VarSpec[] = [
  { name: 'SIDECACHE_LISTEN', def: '127.0.0.1:3128', help: 'host:port of the proxy listener' },
  { name: 'SIDECACHE_UPSTREAM', def: '', help: 'reverse mode: http(s) URL of the origin; empty = forward mode' },
  { name: 'SIDECACHE_ALLOW_HOSTS', def: '', help: 'forward mode: comma-separated host[:port] or *.suffix[:port] entries that may be fetched; without a port: 80 and SIDECACHE_TLS_PORTS' },
  { name: 'SIDECACHE_TLS_PORTS', def: '443', help: 'forward mode: CONNECT ports tunnelled uncached (TLS); other allowed ports are read as HTTP' },
  { name: 'SIDECACHE_CA_FILE', def: '', help: 'PEM bundle of CAs trusted for https upstreams (added to the system CAs)' },
  { name: 'SIDECACHE_MAX_BYTES', def: '256MiB', help: 'memory budget of the cache, counting each entry\'s headers and overhead' },
  { name: 'SIDECACHE_MAX_ENTRY_BYTES', def: '8MiB', help: 'largest body stored; larger bodies stream through uncached' },
  { name: 'SIDECACHE_HOT_MAX_BYTES', def: '16MiB', help: 'budget of the hot set of keys this sidecar does not own (cluster mode)' },
  { name: 'SIDECACHE_COMPRESS', def: 'false', help: 'keep a gzip copy of compressible responses the origin sent uncompressed, beside its bytes; gzip to clients that accept it, the origin\'s bytes to others and to every Range request' },
  { name: 'SIDECACHE_COMPRESS_MIN_BYTES', def: '1KiB', help: 'smallest body compressed on store' },
  { name: 'SIDECACHE_COMPRESS_MAX_BYTES', def: '1MiB', help: 'largest body compressed on store (gzip runs in the thread pool, a few at a time)' },
  { name: 'SIDECACHE_COMPRESS_TYPES', def: 'text/*,application/json,application/javascript,application/xml,application/xhtml+xml,application/rss+xml,application/atom+xml,application/ld+json,application/manifest+json,application/wasm,image/svg+xml', help: 'comma-separated media types compressed on store: exact, or type/* for a whole type' },
  { name: 'SIDECACHE_MAX_VARIANTS', def: '32', help: 'responses kept per URL that differ by Vary (e.g. Accept-Encoding); past it the least recently used one is dropped' },
  { name: 'SIDECACHE_INVAL_HISTORY_BYTES', def: '32MiB', help: 'memory for recent invalidations that late fills are checked against; past it the oldest are forgotten and fills fetched before them are not stored (refetched)' },
  { name: 'SIDECACHE_MAX_HEADER_BYTES', def: '16KiB', help: 'largest request head (request line and headers); larger gets 431' },
  { name: 'SIDECACHE_MAX_URL_BYTES', def: '8KiB', help: 'longest request target; longer gets 414' },
  { name: 'SIDECACHE_MAX_CONNECTIONS', def: '10000', help: 'connections held open at once on the proxy listener, and again on the peer listener; more are closed as they arrive' },
  { name: 'SIDECACHE_CLIENT_HEADERS_TIMEOUT', def: '30s', help: 'a client (or peer) that has not sent a whole request head this long after it began is closed, a client with 408 (slow clients)' },
  { name: 'SIDECACHE_CLIENT_REQUEST_TIMEOUT', def: '60s', help: 'a client (or peer) that has not sent a whole request (head and body) this long is closed, a client with 408; at least SIDECACHE_CLIENT_HEADERS_TIMEOUT' },
  { name: 'SIDECACHE_CONNECT_TIMEOUT', def: '5s', help: 'origin connect timeout' },
  { name: 'SIDECACHE_HEADERS_TIMEOUT', def: '30s', help: 'time to wait for the origin\'s response headers' },
  { name: 'SIDECACHE_BODY_TIMEOUT', def: '30s', help: 'longest pause between two chunks of an origin body' },
  { name: 'SIDECACHE_TUNNEL_IDLE_TIMEOUT', def: '5m', help: 'an upgraded connection (after 101) or a CONNECT tunnel with no bytes either way this long is closed' },
  { name: 'SIDECACHE_DEFAULT_TTL', def: '0', help: 'freshness for responses with no explicit freshness and no validators; 0 = RFC 9111 heuristics only' },
  { name: 'SIDECACHE_QUERY_SORT', def: 'false', help: 'sort query parameters in the cache key' },
  { name: 'SIDECACHE_QUERY_DROP', def: '', help: 'comma-separated query parameters left out of the cache key (e.g. utm_source)' },
  { name: 'SIDECACHE_CACHE_STATUS_DETAIL', def: 'true', help: 'add node, epoch, seq, ttl and detail to Cache-Status; false = bare hit/fwd only' },
  { name: 'SIDECACHE_STRIP_TAG_HEADERS', def: 'true', help: 'remove Surrogate-Key and Cache-Tag before delivery' },
  { name: 'SIDECACHE_ADMIN_LISTEN', def: '127.0.0.1:9091', help: 'host:port of the admin API (purge, metrics, health)' },
  { name: 'SIDECACHE_ADMIN_TOKEN', def: '', help: 'bearer token for admin writes; empty = purges are refused' },
  { name: 'SIDECACHE_PURGE_TIMEOUT', def: '2s', help: 'how long a purge waits for every member to apply it' },
  { name: 'SIDECACHE_GC_METRICS', def: 'false', help: 'export the duration of every garbage collection (sidecache_process_nodejs_gc_duration_seconds); costs 5-6 % of a hit\'s CPU' },
  { name: 'SIDECACHE_LOG_LEVEL', def: 'info', help: 'fatal, error, warn, info, debug, trace or silent' },
  { name: 'SIDECACHE_ACCESS_LOG_SAMPLE', def: '0', help: 'fraction of requests (0 to 1) written to the access log, one JSON line each on stdout (method, target with query values left out, status, Cache-Status outcome, bytes, time), whatever SIDECACHE_LOG_LEVEL says; 0 = off' },
  { name: 'SIDECACHE_SHUTDOWN_TIMEOUT', def: '10s', help: 'on SIGTERM, longest wait for in-flight requests' },
  { name: 'SIDECACHE_NATS_URL', def: '', help: 'cluster mode: comma-separated NATS URLs; empty = standalone with the in-process log' },
  { name: 'SIDECACHE_NATS_TOKEN', def: '', help: 'NATS token' },
  { name: 'SIDECACHE_NATS_USER', def: '', help: 'NATS user' },
  { name: 'SIDECACHE_NATS_PASS', def: '', help: 'NATS password' },
  { name: 'SIDECACHE_CLUSTER', def: 'default', help: 'cluster name; streams and buckets are named from it' },
  { name: 'SIDECACHE_NODE_ID', def: '<hostname>-<listen port>', help: 'this sidecar\'s id in the cluster' },
  { name: 'SIDECACHE_PEER_LISTEN', def: '127.0.0.1:7070', help: 'host:port of the peer listener (cluster mode)' },
  { name: 'SIDECACHE_PEER_URL', def: 'http://<peer listen>', help: 'URL peers use to reach this sidecar' },
  { name: 'SIDECACHE_CLUSTER_SECRET', def: '', help: 'shared secret signing peer requests; required in cluster mode (16+ characters)' },
  { name: 'SIDECACHE_REPLICAS', def: '2', help: 'owners per partition: a primary and R-1 replicas' },
  { name: 'SIDECACHE_PARTITIONS', def: '256', help: 'partitions of the key space; fixed for the life of a cluster' },
  { name: 'SIDECACHE_STREAM_REPLICAS', def: '', help: 'JetStream replicas of the streams; empty = min(3, NATS servers)' },
  { name: 'SIDECACHE_HEARTBEAT_INTERVAL', def: '2s', help: 'membership heartbeat interval' },
  { name: 'SIDECACHE_HEARTBEAT_TTL', def: '15s', help: 'a member silent this long has left (must outlast a NATS leader election, 4-7 s)' },
  { name: 'SIDECACHE_PLACEMENT', def: 'hash', help: 'hash = keys spread by hash; range = keys in path order, neighbours together (the same on every member)' },
  { name: 'SIDECACHE_RING', def: 'true', help: 'false = every sidecar caches for itself (no forwarding)' },
  { name: 'SIDECACHE_HANDOFF', def: 'true', help: 'false = gained partitions start cold (no replay from the log)' },
  { name: 'SIDECACHE_MAX_STALE_DETACHED', def: '10s', help: 'while NATS is unreachable, serve cached entries this long, then revalidate every request (sooner when our heartbeats have not been stored for SIDECACHE_HEARTBEAT_TTL less one interval: peers may drop us then); the same while invalidations we know the log holds have not arrived' },
  { name: 'SIDECACHE_FILL_MAX_BYTES', def: '512KiB', help: 'largest body replicated through the log' },
  { name: 'SIDECACHE_FILL_MAX_IN_FLIGHT', def: '256', help: 'fill publishes in flight before new fills are dropped' },
  { name: 'SIDECACHE_FILLS_MAX_BYTES', def: '1GiB', help: 'size bound of the FILLS stream' },
  { name: 'SIDECACHE_FILLS_MAX_AGE', def: '24h', help: 'age bound of the FILLS stream' },
  { name: 'SIDECACHE_INVAL_MAX_AGE', def: '1h', help: 'how long INVAL keeps invalidations' },
  { name: 'SIDECACHE_INVAL_MAX_BYTES', def: '256MiB', help: 'size bound of the INVAL stream; a sidecar that falls behind what it keeps flushes its cache' },
  { name: 'SIDECACHE_WRITE_INVAL_RATE', def: '500', help: 'invalidations per second published for writes (POST, PUT, PATCH, DELETE) as they are; past it they coalesce into soft invalidations of the written paths\' parents (or hosts), published every 250 ms' },
  { name: 'SIDECACHE_PEER_TIMEOUT', def: '5s', help: 'time for a peer to accept a forwarded miss (connect, then its 102 Processing or its answer) before the next owner is asked; an owner that accepted gets SIDECACHE_HEADERS_TIMEOUT more' },
  { name: 'SIDECACHE_NATS_TLS_CA', def: '', help: 'PEM file of the CAs that sign the NATS servers\' certificates; any SIDECACHE_NATS_TLS_* set: every NATS connection must be TLS (none set: TLS when the server offers it, checked against the system CAs)' },
  { name: 'SIDECACHE_NATS_TLS_CERT', def: '', help: 'PEM file of a client certificate for NATS servers that verify clients (with SIDECACHE_NATS_TLS_KEY)' },
  { name: 'SIDECACHE_NATS_TLS_KEY', def: '', help: 'PEM file of the private key of SIDECACHE_NATS_TLS_CERT (unencrypted)' },
  { name: 'SIDECACHE_NATS_CREDS', def: '', help: 'NATS credentials file (.creds: a user JWT and its nkey seed) for servers in operator (JWT) mode; not with SIDECACHE_NATS_TOKEN, _USER or _PASS' },
  { name: 'SIDECACHE_PEER_TLS_CERT', def: '', help: 'PEM file of this sidecar\'s certificate: the peer port speaks HTTPS only, and the certificate is presented to the peers it calls (with SIDECACHE_PEER_TLS_KEY and SIDECACHE_PEER_TLS_CA)' },
  { name: 'SIDECACHE_PEER_TLS_KEY', def: '', help: 'PEM file of the private key of SIDECACHE_PEER_TLS_CERT (unencrypted)' },
  { name: 'SIDECACHE_PEER_TLS_CA', def: '', help: 'PEM file of the CAs that sign the peers\' certificates: both ways, a peer without a certificate they signed is refused' },
  { name: 'SIDECACHE_PEER_TLS_SERVER_NAME', def: '', help: 'DNS name every peer\'s certificate must carry; empty = the host of its SIDECACHE_PEER_URL (an IP address must then be in the certificate)' },
];

const KNOWN = new Set(VARIABLES.map((v) => v.name));

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** Reads and checks every SIDECACHE_* variable; throws ConfigErrors listing all problems. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const errors: ConfigError[] = [];
  for (const name of Object.keys(env)) {
    if (name.startsWith('SIDECACHE_') && !KNOWN.has(name)) {
      errors.push(new ConfigError(name, `unknown variable (see sidecache --help), got "${env[name]}"`));
    }
  }
  function get<T>(name: string, parse: Parser<T>): T {
    const spec = VARIABLES.find((v) => v.name === name);
    const raw = env[name] ?? spec?.def ?? '';
    try {
      return parse(raw, name);
    } catch (err) {
      errors.push(new ConfigError(name, (err as Error).message));
      return undefined as T;
    }
  }
  const optional = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };

  const listen = get('SIDECACHE_LISTEN', parseListen);
  const upstreamRaw = optional('SIDECACHE_UPSTREAM');
  const upstream = upstreamRaw === undefined ? undefined : get('SIDECACHE_UPSTREAM', parseHttpUrl);
  const allowHosts = get('SIDECACHE_ALLOW_HOSTS', parseHostPatterns);
  if (upstreamRaw === undefined && allowHosts?.length === 0) {
    errors.push(new ConfigError('SIDECACHE_UPSTREAM', 'set SIDECACHE_UPSTREAM (reverse mode) or SIDECACHE_ALLOW_HOSTS (forward mode); both are empty'));
  }
  const maxBytes = get('SIDECACHE_MAX_BYTES', positiveSize);
  const maxEntryBytes = get('SIDECACHE_MAX_ENTRY_BYTES', parseSize);
  if (maxBytes !== undefined && maxEntryBytes !== undefined && maxEntryBytes > maxBytes) {
    const given = env.SIDECACHE_MAX_ENTRY_BYTES === undefined || env.SIDECACHE_MAX_ENTRY_BYTES === '' ? `the default ${maxEntryBytes}` : `"${env.SIDECACHE_MAX_ENTRY_BYTES}"`;
    errors.push(new ConfigError('SIDECACHE_MAX_ENTRY_BYTES', `must not exceed SIDECACHE_MAX_BYTES (${maxBytes}), got ${given}: lower it or raise SIDECACHE_MAX_BYTES`));
  }
  const clientHeadersTimeoutMs = get('SIDECACHE_CLIENT_HEADERS_TIMEOUT', positiveDuration);
  const clientRequestTimeoutMs = get('SIDECACHE_CLIENT_REQUEST_TIMEOUT', positiveDuration);
  // node:http refuses a request timeout shorter than the headers timeout.
  if (clientHeadersTimeoutMs !== undefined && clientRequestTimeoutMs !== undefined && clientRequestTimeoutMs < clientHeadersTimeoutMs) {
    errors.push(new ConfigError('SIDECACHE_CLIENT_REQUEST_TIMEOUT', `must be at least SIDECACHE_CLIENT_HEADERS_TIMEOUT (${clientHeadersTimeoutMs} ms), got "${env.SIDECACHE_CLIENT_REQUEST_TIMEOUT ?? '60s'}"`));
  }
  const logLevel = get('SIDECACHE_LOG_LEVEL', (raw) => {
    if (!LOG_LEVELS.has(raw)) throw new Error(`expected one of ${[...LOG_LEVELS].join(', ')}, got "${raw}"`);
    return raw;
  });
  const adminToken = optional('SIDECACHE_ADMIN_TOKEN');
  if (adminToken !== undefined && adminToken.length < 8) {
    errors.push(new ConfigError('SIDECACHE_ADMIN_TOKEN', 'expected at least 8 characters'));
  }

  const natsUrls = get('SIDECACHE_NATS_URL', (raw) =>
    parseList(raw, '').map((u) => {
      if (!/^(nats|tls|wss?):\/\/[^\s]+$/.test(u) && !/^[a-zA-Z0-9.-]+:\d+$/.test(u)) {
        throw new Error(`expected nats://host:port entries, got "${redactCredentials(u)}"`);
      }
      return u;
    }),
  );
  const peerListen = get('SIDECACHE_PEER_LISTEN', parseListen);
  const clustered = (natsUrls?.length ?? 0) > 0;
  const clusterSecret = optional('SIDECACHE_CLUSTER_SECRET');
  if (clustered && (clusterSecret === undefined || clusterSecret.length < 16)) {
    errors.push(new ConfigError('SIDECACHE_CLUSTER_SECRET', 'required in cluster mode (SIDECACHE_NATS_URL is set), at least 16 characters'));
  }
  const security = readTransportSecurity(env, errors);
  const peerUrlRaw = optional('SIDECACHE_PEER_URL');
  const peerUrl = peerUrlRaw === undefined
    ? (peerListen ? `${security.peerTls === undefined ? 'http' : 'https'}://${peerListen.host.includes(':') ? `[${peerListen.host}]` : peerListen.host}:${peerListen.port}` : '')
    : get('SIDECACHE_PEER_URL', (raw) => parseHttpUrl(raw).origin);
  if (security.peerTls !== undefined && peerUrl?.startsWith('http:')) {
    errors.push(new ConfigError('SIDECACHE_PEER_URL', `must be an https URL while the peer port is on TLS (SIDECACHE_PEER_TLS_CERT), got "${redactCredentials(peerUrlRaw ?? '')}"`));
  }
  const cluster = get('SIDECACHE_CLUSTER', (raw) => {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(raw)) throw new Error(`expected 1-64 letters, digits, _ or -, got "${raw}"`);
    return raw;
  });
  const nodeId = optional('SIDECACHE_NODE_ID') === undefined
    ? `${hostname()}-${listen?.port ?? 0}`.replace(/[^A-Za-z0-9_-]/g, '-')
    : get('SIDECACHE_NODE_ID', (raw) => {
        if (!/^[A-Za-z0-9_-]{1,64}$/.test(raw)) throw new Error(`expected 1-64 letters, digits, _ or -, got "${raw}"`);
        return raw;
      });
  const streamReplicasRaw = optional('SIDECACHE_STREAM_REPLICAS');
  const heartbeatIntervalMs = get('SIDECACHE_HEARTBEAT_INTERVAL', positiveDuration);
  const heartbeatTtlMs = get('SIDECACHE_HEARTBEAT_TTL', parseDuration);
  if (heartbeatIntervalMs !== undefined && heartbeatTtlMs !== undefined && heartbeatTtlMs < 2 * heartbeatIntervalMs) {
    errors.push(new ConfigError('SIDECACHE_HEARTBEAT_TTL', `must be at least twice SIDECACHE_HEARTBEAT_INTERVAL (${heartbeatIntervalMs} ms), got "${env.SIDECACHE_HEARTBEAT_TTL ?? '15s'}"`));
  }

  const config: Config = {
    listen,
    upstream,
    allowHosts,
    tlsPorts: get('SIDECACHE_TLS_PORTS', parsePorts),
    caFile: optional('SIDECACHE_CA_FILE'),
    maxBytes,
    maxEntryBytes,
    hotMaxBytes: get('SIDECACHE_HOT_MAX_BYTES', parseSize),
    maxVariants: get('SIDECACHE_MAX_VARIANTS', intIn(1, 1024)),
    compress: get('SIDECACHE_COMPRESS', parseBool),
    compressMinBytes: get('SIDECACHE_COMPRESS_MIN_BYTES', parseSize),
    compressMaxBytes: get('SIDECACHE_COMPRESS_MAX_BYTES', parseSize),
    compressTypes: get('SIDECACHE_COMPRESS_TYPES', parseList).map((t) => t.toLowerCase()),
    invalHistoryBytes: get('SIDECACHE_INVAL_HISTORY_BYTES', sizeAtLeast(64 * 1024)),
    maxHeaderBytes: get('SIDECACHE_MAX_HEADER_BYTES', parseSize),
    maxUrlBytes: get('SIDECACHE_MAX_URL_BYTES', parseSize),
    maxConnections: get('SIDECACHE_MAX_CONNECTIONS', intIn(1, 1_000_000)),
    clientHeadersTimeoutMs,
    clientRequestTimeoutMs,
    connectTimeoutMs: get('SIDECACHE_CONNECT_TIMEOUT', parseDuration),
    headersTimeoutMs: get('SIDECACHE_HEADERS_TIMEOUT', parseDuration),
    bodyTimeoutMs: get('SIDECACHE_BODY_TIMEOUT', parseDuration),
    tunnelIdleTimeoutMs: get('SIDECACHE_TUNNEL_IDLE_TIMEOUT', positiveDuration),
    defaultTtlMs: get('SIDECACHE_DEFAULT_TTL', parseDuration),
    querySort: get('SIDECACHE_QUERY_SORT', parseBool),
    queryDrop: get('SIDECACHE_QUERY_DROP', parseList),
    cacheStatusDetail: get('SIDECACHE_CACHE_STATUS_DETAIL', parseBool),
    stripTagHeaders: get('SIDECACHE_STRIP_TAG_HEADERS', parseBool),
    gcMetrics: get('SIDECACHE_GC_METRICS', parseBool),
    adminListen: get('SIDECACHE_ADMIN_LISTEN', parseListen),
    adminToken,
    purgeTimeoutMs: get('SIDECACHE_PURGE_TIMEOUT', parseDuration),
    logLevel,
    accessLogSample: get('SIDECACHE_ACCESS_LOG_SAMPLE', parseFraction),
    shutdownTimeoutMs: get('SIDECACHE_SHUTDOWN_TIMEOUT', parseDuration),
    natsUrls,
    natsToken: optional('SIDECACHE_NATS_TOKEN'),
    natsUser: optional('SIDECACHE_NATS_USER'),
    natsPass: optional('SIDECACHE_NATS_PASS'),
    cluster,
    nodeId,
    peerListen,
    peerUrl,
    clusterSecret,
    replicas: get('SIDECACHE_REPLICAS', intIn(1, 16)),
    partitions: get('SIDECACHE_PARTITIONS', intIn(1, 65536)),
    streamReplicas: streamReplicasRaw === undefined ? undefined : get('SIDECACHE_STREAM_REPLICAS', intIn(1, 5)),
    heartbeatIntervalMs,
    heartbeatTtlMs,
    placement: get('SIDECACHE_PLACEMENT', oneOf('hash', 'range')),
    ring: get('SIDECACHE_RING', parseBool),
    handoff: get('SIDECACHE_HANDOFF', parseBool),
    maxStaleDetachedMs: get('SIDECACHE_MAX_STALE_DETACHED', parseDuration),
    fillMaxBytes: get('SIDECACHE_FILL_MAX_BYTES', parseSize),
    fillMaxInFlight: get('SIDECACHE_FILL_MAX_IN_FLIGHT', intIn(1, 100_000)),
    fillsMaxBytes: get('SIDECACHE_FILLS_MAX_BYTES', parseSize),
    fillsMaxAgeMs: get('SIDECACHE_FILLS_MAX_AGE', parseStreamAge),
    invalMaxAgeMs: get('SIDECACHE_INVAL_MAX_AGE', parseStreamAge),
    invalMaxBytes: get('SIDECACHE_INVAL_MAX_BYTES', sizeAtLeast(1024 * 1024)),
    writeInvalRate: get('SIDECACHE_WRITE_INVAL_RATE', intIn(1, 1_000_000)),
    peerTimeoutMs: get('SIDECACHE_PEER_TIMEOUT', parseDuration),
    ...security,
  };
  if (errors.length > 0) throw new ConfigErrors(errors);
  return Object.freeze(config);
}

export function helpText(): string {
  const width = Math.max(...VARIABLES.map((v) => v.name.length));
  const lines = VARIABLES.map((v) => `  ${v.name.padEnd(width)}  ${v.help} (default: ${v.def === '' ? 'empty' : v.def})`);
  return [
    'sidecache: a clustered caching HTTP sidecar (RFC 9111).',
    '',
    'Usage: sidecache            start with the SIDECACHE_* environment below',
    '       sidecache --help     print this text',
    '       sidecache status | purge | drain | top | inspect   operate a running sidecar (sidecache <command> --help)',
    '',
    'Environment:',
    ...lines,
    '',
  ].join('\n');
}
