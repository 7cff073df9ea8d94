// Decoding helpers shared by every wire format sidecache reads (log messages, the peer fence,
// fill metadata): each names what it expected and what came in, and throws SC_ERR_LOG.

import { ErrorCode, SidecacheError } from './errors.js';

export const encoder = new TextEncoder();
export const decoder = new TextDecoder('utf-8', { fatal: true });
export const EMPTY = new Uint8Array(0);

export function codecError(what: string, message: string, cause?: unknown): SidecacheError {
  return new SidecacheError(ErrorCode.log, `${what}: ${message}`, { cause });
}

export function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s === undefined ? typeof v : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** A JSON object whose "v" is `version`. */
export function parseJson(what: string, data: Uint8Array, version: number): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(data));
  } catch (err) {
    throw codecError(what, `expected UTF-8 JSON, got ${data.length} bytes that are not`, err);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw codecError(what, `expected a JSON object, got ${describe(parsed)}`);
  }
  const obj = parsed as Record<string, unknown>;
  if (obj.v !== version) {
    throw codecError(what, `expected version v=${version}, got v=${describe(obj.v)}`);
  }
  return obj;
}

export function json(value: object): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

export function str(what: string, obj: Record<string, unknown>, field: string): string {
  const v = obj[field];
  if (typeof v !== 'string') throw codecError(what, `${field}: expected a string, got ${describe(v)}`);
  return v;
}

export function strArray(what: string, obj: Record<string, unknown>, field: string): string[] {
  const v = obj[field];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    throw codecError(what, `${field}: expected an array of strings, got ${describe(v)}`);
  }
  return v as string[];
}

export function nonNegInt(what: string, obj: Record<string, unknown>, field: string): number {
  const v = obj[field];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw codecError(what, `${field}: expected an integer >= 0, got ${describe(v)}`);
  }
  return v;
}

export function optBool(what: string, obj: Record<string, unknown>, field: string): boolean | undefined {
  const v = obj[field];
  if (v === undefined || typeof v === 'boolean') return v;
  throw codecError(what, `${field}: expected a boolean or nothing, got ${describe(v)}`);
}

export function optStr(what: string, obj: Record<string, unknown>, field: string): string | undefined {
  const v = obj[field];
  if (v === undefined || typeof v === 'string') return v;
  throw codecError(what, `${field}: expected a string or nothing, got ${describe(v)}`);
}
