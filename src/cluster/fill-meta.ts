// The metadata a fill carries besides the body (log/codec.ts keeps it opaque; its version is
// the fill payload's). Like every decoder of sidecache's, decodeFillMeta trusts nothing on the
// wire: a field of the wrong type, an out-of-range number or a policy that does not load is
// refused with SC_ERR_LOG naming the field, and the fill is skipped (counted), never stored.
import CachePolicy from 'http-cache-semantics';
import { codecError, describe, encoder, nonNegInt, parseJson, str, strArray } from '../core/wire.js';
import { FILL_VERSION } from '../log/codec.js';
import type { Entry } from '../store/types.js';

export interface FillMeta {
  readonly v: typeof FILL_VERSION;
  readonly key: string;
  readonly varyNames: readonly string[] | null;
  readonly varyValues: readonly string[];
  readonly status: number;
  readonly headers: readonly string[];
  readonly policy: CachePolicy.CachePolicyObject;
  readonly freshness: Entry['freshness'];
  readonly keepUntil: number;
  readonly tags: readonly string[];
  readonly fence: number;
  /** INVAL incarnation `fence` counts in: after a stream reset the seqs restart, and a fill
   *  fenced in the old numbering would pass every check of the new one. */
  readonly incarnation: string;
}

/** A stored entry's fill meta, as published. It carries the entry's secondary key (credentials
 *  only as keyed hashes) and its policy, whose request head is that secondary key and nothing
 *  else (http/storable.ts policyRequestOf): no client header leaves in a fill. */
export function encodeFillMeta(entry: Entry): Uint8Array {
  const meta: FillMeta = {
    v: FILL_VERSION,
    key: entry.key,
    varyNames: entry.varyNames,
    varyValues: entry.varyValues,
    status: entry.status,
    headers: entry.headers,
    policy: entry.policy.toObject(),
    freshness: entry.freshness,
    keepUntil: entry.keepUntil,
    tags: entry.tags,
    fence: entry.fence,
    incarnation: entry.incarnation,
  };
  return encoder.encode(JSON.stringify(meta));
}

const WHAT = 'fill meta';

function finite(obj: Record<string, unknown>, field: string, what = WHAT): number {
  const v = obj[field];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw codecError(what, `${field}: expected a number, got ${describe(v)}`);
  return v;
}

function bool(obj: Record<string, unknown>, field: string, what = WHAT): boolean {
  const v = obj[field];
  if (typeof v !== 'boolean') throw codecError(what, `${field}: expected a boolean, got ${describe(v)}`);
  return v;
}

function object(obj: Record<string, unknown>, field: string): Record<string, unknown> {
  const v = obj[field];
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw codecError(WHAT, `${field}: expected an object, got ${describe(v)}`);
  return v as Record<string, unknown>;
}

/** The meta of a fill, checked field by field. Throws SC_ERR_LOG. */
export function decodeFillMeta(data: Uint8Array): FillMeta & { readonly policyObject: CachePolicy } {
  const obj = parseJson(WHAT, data, FILL_VERSION);
  const key = str(WHAT, obj, 'key');
  const varyNames = obj.varyNames === null ? null : strArray(WHAT, obj, 'varyNames');
  const varyValues = strArray(WHAT, obj, 'varyValues');
  if (varyNames !== null && varyNames.length !== varyValues.length) {
    throw codecError(WHAT, `varyValues: expected ${varyNames.length} values, one per Vary name, got ${varyValues.length}`);
  }
  const status = nonNegInt(WHAT, obj, 'status');
  if (status < 200 || status > 599) throw codecError(WHAT, `status: expected 200 to 599, got ${status}`);
  const headers = strArray(WHAT, obj, 'headers');
  if (headers.length % 2 !== 0) throw codecError(WHAT, `headers: expected name/value pairs, got ${headers.length} strings`);
  const f = object(obj, 'freshness');
  const freshness: Entry['freshness'] = {
    storedAt: finite(f, 'storedAt', `${WHAT} freshness`),
    initialAgeSec: finite(f, 'initialAgeSec', `${WHAT} freshness`),
    freshUntil: finite(f, 'freshUntil', `${WHAT} freshness`),
    staleWhileRevalidateUntil: finite(f, 'staleWhileRevalidateUntil', `${WHAT} freshness`),
    staleIfErrorUntil: finite(f, 'staleIfErrorUntil', `${WHAT} freshness`),
    mustRevalidate: bool(f, 'mustRevalidate', `${WHAT} freshness`),
    hasValidators: bool(f, 'hasValidators', `${WHAT} freshness`),
  };
  const policy = object(obj, 'policy') as unknown as CachePolicy.CachePolicyObject;
  let policyObject: CachePolicy;
  try {
    policyObject = CachePolicy.fromObject(policy);
  } catch (err) {
    throw codecError(WHAT, `policy: expected a stored cache policy, got one that does not load (${(err as Error).message})`, err);
  }
  return {
    v: FILL_VERSION,
    key,
    varyNames,
    varyValues,
    status,
    headers,
    policy,
    policyObject,
    freshness,
    keepUntil: finite(obj, 'keepUntil'),
    tags: strArray(WHAT, obj, 'tags'),
    fence: nonNegInt(WHAT, obj, 'fence'),
    incarnation: str(WHAT, obj, 'incarnation'),
  };
}
