// Parsers of SIDECACHE_* values: each takes the raw string and returns the value or throws an
// Error saying what is allowed and what came in (loadConfig names the variable).
import { redactCredentials } from './errors.js';

export interface HostPattern {
  /** Lower-cased host name, or a suffix starting with "." for `*.suffix` entries. */
  readonly host: string;
  readonly suffix: boolean;
  /** undefined: port 80 and SIDECACHE_TLS_PORTS. */
  readonly port: number | undefined;
}

export interface Listen {
  readonly host: string;
  readonly port: number;
}

export type Parser<T> = (raw: string, name: string) => T;

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, kb: 1000, mb: 1000 ** 2, gb: 1000 ** 3 };
const TIME_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Largest size accepted: byte counts stay exact integers. */
const MAX_SIZE = Number.MAX_SAFE_INTEGER;
/** Longest timer Node honours (2^31-1 ms, about 24.8 days): a longer setTimeout fires after
 *  1 ms, so a timeout set too long would act as one far too short. */
export const MAX_TIMER_MS = 2 ** 31 - 1;
/** Longest stream age: JetStream takes it in nanoseconds, as a JSON integer in an int64. */
const MAX_STREAM_AGE_MS = 10 * 365 * 24 * 3_600_000;

export const parseSize: Parser<number> = (raw) => {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(raw.trim());
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`expected a size in bytes, KiB, MiB or GiB (e.g. 64MiB), got "${raw}"`);
  const bytes = Math.floor(Number(m[1]) * unit);
  if (!(bytes <= MAX_SIZE)) throw new Error(`expected a size up to ${MAX_SIZE} bytes, got "${raw}"`);
  return bytes;
};

function durationUpTo(maxMs: number, maxText: string): Parser<number> {
  return (raw) => {
    const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(raw.trim());
    if (!m) throw new Error(`expected a duration in ms, s, m or h (e.g. 5s), got "${raw}"`);
    if (m[2] === undefined && m[1] !== '0') throw new Error(`expected a duration with a unit ms, s, m or h (e.g. 5s), got "${raw}"`);
    const ms = Math.round(Number(m[1]) * TIME_UNITS[m[2] ?? 'ms']!);
    if (!(ms <= maxMs)) throw new Error(`expected a duration up to ${maxText}, got "${raw}"`);
    return ms;
  };
}

/** A duration used as a timer: at most MAX_TIMER_MS. */
export const parseDuration: Parser<number> = durationUpTo(MAX_TIMER_MS, '596h (2^31-1 ms)');
export const parseStreamAge: Parser<number> = durationUpTo(MAX_STREAM_AGE_MS, '87600h (10 years)');

export const positiveSize: Parser<number> = (raw, name) => {
  const bytes = parseSize(raw, name);
  if (bytes <= 0) throw new Error(`expected a size above 0 (e.g. 64MiB), got "${raw}"`);
  return bytes;
};

export const positiveDuration: Parser<number> = (raw, name) => {
  const ms = parseDuration(raw, name);
  if (ms <= 0) throw new Error(`expected a duration above 0 (e.g. 5m), got "${raw}"`);
  return ms;
};

export const parseBool: Parser<boolean> = (raw) => {
  const v = raw.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  throw new Error(`expected true or false, got "${raw}"`);
};

export const parseList: Parser<string[]> = (raw) => raw.split(',').map((s) => s.trim()).filter((s) => s !== '');

export function intIn(min: number, max: number): Parser<number> {
  return (raw) => {
    if (!/^\d+$/.test(raw.trim())) throw new Error(`expected an integer from ${min} to ${max}, got "${raw}"`);
    const n = Number(raw);
    if (n < min || n > max) throw new Error(`expected an integer from ${min} to ${max}, got "${raw}"`);
    return n;
  };
}

export const parseListen: Parser<Listen> = (raw) => {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(raw.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`expected host:port (e.g. 127.0.0.1:3128), got "${raw}"`);
  return { host: m[1] ?? m[2]!, port };
};

export function parseHttpUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new Error(`expected an http(s) URL, got "${redactCredentials(raw)}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`expected an http(s) URL, got "${redactCredentials(raw)}"`);
  if (url.search || url.hash || url.username || url.password) throw new Error(`expected an origin URL without query, fragment or credentials, got "${redactCredentials(raw)}"`);
  return url;
}

export const parseHostPatterns: Parser<HostPattern[]> = (raw) =>
  parseList(raw, '').map((entry) => {
    const m = /^(\*\.)?([a-zA-Z0-9.-]+|\[[0-9a-fA-F:.]+\])(?::(\d{1,5}))?$/.exec(entry);
    if (!m || (m[3] !== undefined && Number(m[3]) > 65535)) {
      throw new Error(`expected host[:port] or *.suffix entries, got "${entry}"`);
    }
    const host = m[2]!.toLowerCase();
    return { host: m[1] ? `.${host}` : host, suffix: Boolean(m[1]), port: m[3] === undefined ? undefined : Number(m[3]) };
  });

/** A size of at least `min` bytes. */
export function sizeAtLeast(min: number): Parser<number> {
  return (raw, name) => {
    const n = parseSize(raw, name);
    if (n < min) throw new Error(`expected a size of at least ${min} bytes, got "${raw}"`);
    return n;
  };
}

/** A fraction from 0 to 1 in decimal notation (0, 1, 0.25, .5). */
export const parseFraction: Parser<number> = (raw) => {
  const v = raw.trim();
  const n = Number(v);
  if (!/^(?:\d+(?:\.\d*)?|\.\d+)$/.test(v) || !(n >= 0 && n <= 1)) throw new Error(`expected a fraction from 0 to 1 (e.g. 0.01), got "${raw}"`);
  return n;
};

export const parsePorts: Parser<number[]> = (raw) => parseList(raw, '').map((p) => intIn(1, 65535)(p, ''));

/** One of a fixed set of words. */
export function oneOf<T extends string>(...words: readonly T[]): Parser<T> {
  return (raw) => {
    const v = raw.trim().toLowerCase();
    if ((words as readonly string[]).includes(v)) return v as T;
    throw new Error(`expected ${words.slice(0, -1).join(', ')} or ${words[words.length - 1]}, got "${raw}"`);
  };
}
