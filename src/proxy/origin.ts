// The client side towards origins: one undici Agent (a keep-alive pool per origin), with
// the configured timeouts, and the mapping of undici's error codes to our statuses.
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import type { Readable } from 'node:stream';
import { Agent, errors as undiciErrors, type Dispatcher } from 'undici';
import type { Config } from '../config.js';
import { ErrorCode, SidecacheError } from '../errors.js';
import type { HeaderObject } from '../http/headers.js';

export interface OriginResponse {
  readonly status: number;
  readonly headers: HeaderObject;
  readonly body: Readable;
}

export interface OriginRequest {
  /** "http://host:port" */
  readonly origin: string;
  /** origin-form target */
  readonly path: string;
  readonly method: string;
  readonly headers: Record<string, string | string[]>;
  readonly body?: Readable | null;
  readonly signal?: AbortSignal;
}

export class OriginClient {
  readonly #agent: Agent;
  readonly #headersTimeoutMs: number;
  readonly #bodyTimeoutMs: number;

  constructor(config: Config) {
    const ca = config.caFile === undefined ? undefined : [...rootCertificates, readFileSync(config.caFile, 'utf8')];
    this.#agent = new Agent({
      connect: { timeout: config.connectTimeoutMs, ...(ca === undefined ? {} : { ca }) },
      keepAliveTimeout: 4_000,
      headersTimeout: config.headersTimeoutMs,
      bodyTimeout: config.bodyTimeoutMs,
      // Fail fast on a response head larger than the request limit we accept ourselves.
      maxHeaderSize: 64 * 1024,
    });
    this.#headersTimeoutMs = config.headersTimeoutMs;
    this.#bodyTimeoutMs = config.bodyTimeoutMs;
  }

  async request(r: OriginRequest): Promise<OriginResponse> {
    try {
      const res = await this.#agent.request({
        origin: r.origin,
        path: r.path,
        method: r.method as Dispatcher.HttpMethod,
        headers: r.headers,
        body: r.body ?? null,
        signal: r.signal,
        headersTimeout: this.#headersTimeoutMs,
        bodyTimeout: this.#bodyTimeoutMs,
      });
      return { status: res.statusCode, headers: res.headers as HeaderObject, body: res.body };
    } catch (err) {
      throw upstreamError(err, r.origin);
    }
  }

  close(): Promise<void> {
    return this.#agent.close();
  }
}

/** undici error -> SidecacheError with the status the client should see. */
export function upstreamError(err: unknown, origin: string): SidecacheError {
  const code = (err as { code?: string }).code ?? '';
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new SidecacheError(ErrorCode.upstreamTimeout, `origin ${origin} timed out (${code})`, { cause: err, status: 504 });
  }
  let reason = 'failed';
  if (code === 'ECONNREFUSED') reason = 'refused the connection';
  else if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') reason = 'closed the connection';
  // HTTPParserError carries no code when the status line itself is not HTTP.
  else if (code.startsWith('HPE_') || code === 'UND_ERR_HEADERS_OVERFLOW' || err instanceof undiciErrors.HTTPParserError) reason = 'sent a malformed response';
  else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') reason = 'could not be resolved';
  return new SidecacheError(ErrorCode.upstream, `origin ${origin} ${reason}${code ? ` (${code})` : ''}`, { cause: err, status: 502 });
}
