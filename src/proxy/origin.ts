// The client side towards origins: one undici Agent (a keep-alive pool per origin), with
// the configured timeouts, and the mapping of undici's error codes to our statuses.
// Responses are read with undici's dispatch API: chunks go straight to an OriginSink (no
// Readable, promise or AbortSignal per response, which cost most of the miss path's CPU).
import { readFileSync } from 'node:fs';
import { IncomingMessage } from 'node:http';
import { rootCertificates } from 'node:tls';
import type { Readable } from 'node:stream';
import { Agent, errors as undiciErrors, type Dispatcher } from 'undici';
import type { Config } from '../core/config.js';
import { ErrorCode, SidecacheError } from '../core/errors.js';
import type { HeaderObject } from '../http/headers.js';

/** A response as a stream (what a peer answers with). */
export interface OriginResponse {
  readonly status: number;
  readonly headers: HeaderObject;
  readonly body: Readable;
}

/** Flow control of a response body on its way in: a Readable is one, and so is an origin fetch. */
export interface BodyControl {
  pause(): void;
  resume(): void;
  /** Stops the response. Without an error the sink hears nothing more (like Readable.destroy());
   *  with one, the sink's onError gets it. */
  destroy(err?: Error): void;
}

/**
 * Receives one response, in order: onHead once, onData per chunk, then onEnd or onError;
 * or onError alone when there is no response (the error is then a SidecacheError with the
 * status the client should see). Called synchronously from the HTTP parser: must not throw.
 */
export interface OriginSink {
  /** An interim (1xx) response before the head, as it arrives: 102, 103 (not 100, which
   *  undici refuses, nor 101, which is a tunnel's). */
  onInfo?(status: number, headers: HeaderObject): void;
  onHead(status: number, headers: HeaderObject, body: BodyControl): void;
  onData(chunk: Buffer): void;
  onEnd(): void;
  onError(err: unknown): void;
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

/** What the request path fetches through: OriginClient, or a fake origin in unit tests. */
export interface Origin {
  /** Sends `r`; its response goes to `sink`. The BodyControl is usable at once. */
  dispatch(r: OriginRequest, sink: OriginSink): BodyControl;
}

export class OriginClient implements Origin {
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
      // HTTP/1.1 only, said here because undici 8 speaks HTTP/2 to any TLS origin that offers it
      // (ALPN): everything here (interim responses, hop-by-hop handling, keep-alive, the
      // timeouts' tests) is built and tested on HTTP/1.1.
      allowH2: false,
    });
    this.#headersTimeoutMs = config.headersTimeoutMs;
    this.#bodyTimeoutMs = config.bodyTimeoutMs;
  }

  /**
   * Fetches with undici's dispatch API: body chunks go straight to `sink`, with no Readable,
   * promise or abort signal per response. Returns the response's flow control, usable at once
   * (destroy() before the head aborts the request).
   */
  dispatch(r: OriginRequest, sink: OriginSink): BodyControl {
    const handler = new SinkHandler(sink, r.origin, r.body ?? null);
    this.#agent.dispatch({
      origin: r.origin,
      path: r.path,
      method: r.method as Dispatcher.HttpMethod,
      headers: r.headers,
      body: r.body ?? null,
      headersTimeout: this.#headersTimeoutMs,
      bodyTimeout: this.#bodyTimeoutMs,
    }, handler);
    return handler;
  }

  close(): Promise<void> {
    return this.#agent.close();
  }
}

/** undici's DispatchHandler feeding an OriginSink; also the BodyControl of the response. */
class SinkHandler implements Dispatcher.DispatchHandler, BodyControl {
  readonly #sink: OriginSink;
  readonly #origin: string;
  #body: Readable | null;
  #controller: Dispatcher.DispatchController | null = null;
  #head = false;
  #done = false;
  /** Set by destroy() before undici handed us a controller. */
  #abortReason: Error | null = null;
  /** destroy() without an error: the sink hears nothing more. */
  #silent = false;

  constructor(sink: OriginSink, origin: string, body: Readable | null) {
    this.#sink = sink;
    this.#origin = origin;
    this.#body = body;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#abortReason !== null) controller.abort(this.#abortReason);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (this.#done) return;
    if (statusCode < 200) {
      // Informational: the final response follows, and undici does not carry these fields over.
      this.#sink.onInfo?.(statusCode, headers);
      return;
    }
    this.#head = true;
    this.#sink.onHead(statusCode, headers, this);
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.#done) this.#sink.onData(chunk);
  }

  onResponseEnd(): void {
    if (this.#done) return;
    this.#done = true;
    this.#body = null;
    this.#sink.onEnd();
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    const body = this.#body;
    if (body !== null) {
      // As undici's request() does: a request body still streaming goes down with the request,
      // without taking the client's socket with it.
      this.#body = null;
      if (!body.destroyed) {
        if (body instanceof IncomingMessage) (body as { socket: unknown }).socket = null;
        body.on('error', noop);
        body.destroy(err);
      }
    }
    if (this.#done) return;
    this.#done = true;
    if (this.#silent) return;
    this.#sink.onError(this.#head ? err : upstreamError(err, this.#origin));
  }

  pause(): void {
    this.#controller?.pause();
  }

  resume(): void {
    this.#controller?.resume();
  }

  destroy(err?: Error): void {
    if (this.#done || this.#abortReason !== null) return;
    this.#silent = err === undefined;
    const reason = err ?? new undiciErrors.RequestAbortedError();
    this.#abortReason = reason;
    if (this.#controller !== null) this.#controller.abort(reason);
  }
}

function noop(): void {}

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
