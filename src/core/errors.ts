// Every error sidecache raises on purpose: a stable code, a cause, the fields callers need.

export const ErrorCode = {
  config: 'SC_ERR_CONFIG',
  badRequest: 'SC_ERR_BAD_REQUEST',
  forbidden: 'SC_ERR_FORBIDDEN',
  unauthorized: 'SC_ERR_UNAUTHORIZED',
  upstream: 'SC_ERR_UPSTREAM',
  upstreamTimeout: 'SC_ERR_UPSTREAM_TIMEOUT',
  peer: 'SC_ERR_PEER',
  log: 'SC_ERR_LOG',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface SidecacheErrorFields {
  readonly cause?: unknown;
  readonly status?: number;
  readonly key?: string;
  readonly peer?: string;
}

export class SidecacheError extends Error {
  override name = 'SidecacheError';
  readonly code: ErrorCode;
  readonly status: number | undefined;
  readonly key: string | undefined;
  readonly peer: string | undefined;

  constructor(code: ErrorCode, message: string, fields: SidecacheErrorFields = {}) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.code = code;
    this.status = fields.status;
    this.key = fields.key;
    this.peer = fields.peer;
  }
}

/** One bad SIDECACHE_* variable; ConfigErrors collects all of them for one report. */
export class ConfigError extends SidecacheError {
  override name = 'ConfigError';
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(ErrorCode.config, `${variable}: ${message}`);
    this.variable = variable;
  }
}

export class ConfigErrors extends SidecacheError {
  override name = 'ConfigErrors';
  readonly errors: readonly ConfigError[];
  constructor(errors: readonly ConfigError[]) {
    super(ErrorCode.config, errors.map((e) => e.message).join('\n'));
    this.errors = errors;
  }
}

export function logError(message: string, cause?: unknown): SidecacheError {
  return new SidecacheError(ErrorCode.log, message, { cause, status: 503 });
}

/** A URL as it may appear in a message or log line: credentials in it replaced by "***". */
export function redactCredentials(url: string): string {
  return url.replace(/^([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)[^@/\s]*@/, '$1***@');
}
