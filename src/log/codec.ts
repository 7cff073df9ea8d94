// Typed, versioned encodings of everything sidecache writes to NATS: invalidations (INVAL),
// fills (FILLS), the membership view and heartbeats (KV) and applied-seq acks (core NATS).
// Decoders never trust the wire: an unknown version or kind, or a malformed field, throws a
// SidecacheError(SC_ERR_LOG) naming what was expected and what came in; callers catch it and
// degrade (an undecodable invalidation becomes a gap, a bad view is ignored), never crash.
//
// Wire formats (all JSON is UTF-8):
//   Invalidation  {"v":1,"kind":"url","keys":[..],"soft"?:bool} | {"v":1,"kind":"prefix","prefix":".."}
//                 | {"v":1,"kind":"tags","tags":[..]} | {"v":1,"kind":"all"}
//   Fill          payload = [u8 version=3][u32 big-endian meta length][meta][body]; no headers.
//                 Version 2: the meta's secondary key is what the origin received, with the
//                 implicit forwarded-host/-proto fields and credentials as keyed hashes, and its
//                 policy holds no request head beyond that key. A version-1 fill would key its
//                 entry differently (and carry client headers): refused, never misread.
//                 Version 3 adds the INVAL incarnation the meta's fence counts in
//                 (`incarnation`): a fence without one cannot be checked after a stream reset.
//                 The meta is JSON owned by cluster/node.ts, with the same "v".
//   Tombstone     empty payload with header `SC-Op: del` (NATS-2.9.md §4: stored and replayed
//                 as is by last_per_subject).
//   View          {"v":1,"epoch":n,"prevRevision":r,"members":[{"id","peerUrl","state","partitions"}]}
//                 prevRevision: the view bucket's last revision this view was computed from; the
//                 entry counts only if it was stored at prevRevision+1 (see nats-log.ts #readView).
//   Heartbeat     {"v":1,"id","peerUrl","appliedSeq","at","incarnation"?}
//   Ack           {"v":1,"id","seq","incarnation"?}
//   Peer fence    HTTP field `x-sidecache-fence: 1:<seq>:<incarnation>` on responses to peers
//                 only (version 1, the seq in decimal, the incarnation percent-encoded UTF-8):
//                 the fence of the entry or fetch the body came from (DESIGN invariant 1).
// `incarnation` identifies the INVAL stream the seq belongs to (an id in its description):
// after the stream is deleted and recreated, seqs restart and an old seq must not count.

import { ErrorCode, SidecacheError } from '../errors.js';
import type { Fence, FillRecord, Invalidation, Member, MemberState, View } from './types.js';

export const CODEC_VERSION = 1;
export const FILL_VERSION = 3;
export const PEER_FENCE_VERSION = 1;
/** Response field, peer port only, carrying the fence of the body (encodePeerFence). */
export const PEER_FENCE_HEADER = 'x-sidecache-fence';
/** Header marking a tombstone on a fill subject. */
export const FILL_OP_HEADER = 'SC-Op';
export const FILL_OP_DELETE = 'del';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });
const EMPTY = new Uint8Array(0);

function codecError(what: string, message: string, cause?: unknown): SidecacheError {
  return new SidecacheError(ErrorCode.log, `${what}: ${message}`, { cause });
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s === undefined ? typeof v : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function parseJson(what: string, data: Uint8Array): Record<string, unknown> {
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
  if (obj.v !== CODEC_VERSION) {
    throw codecError(what, `expected version v=${CODEC_VERSION}, got v=${describe(obj.v)}`);
  }
  return obj;
}

function json(value: object): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

function str(what: string, obj: Record<string, unknown>, field: string): string {
  const v = obj[field];
  if (typeof v !== 'string') throw codecError(what, `${field}: expected a string, got ${describe(v)}`);
  return v;
}

function strArray(what: string, obj: Record<string, unknown>, field: string): string[] {
  const v = obj[field];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    throw codecError(what, `${field}: expected an array of strings, got ${describe(v)}`);
  }
  return v as string[];
}

function nonNegInt(what: string, obj: Record<string, unknown>, field: string): number {
  const v = obj[field];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw codecError(what, `${field}: expected an integer >= 0, got ${describe(v)}`);
  }
  return v;
}

function optBool(what: string, obj: Record<string, unknown>, field: string): boolean | undefined {
  const v = obj[field];
  if (v === undefined || typeof v === 'boolean') return v;
  throw codecError(what, `${field}: expected a boolean or nothing, got ${describe(v)}`);
}

function optStr(what: string, obj: Record<string, unknown>, field: string): string | undefined {
  const v = obj[field];
  if (v === undefined || typeof v === 'string') return v;
  throw codecError(what, `${field}: expected a string or nothing, got ${describe(v)}`);
}

// ---- Invalidation -------------------------------------------------------------------

export function encodeInvalidation(inval: Invalidation): Uint8Array {
  return json({ v: CODEC_VERSION, ...inval });
}

export function decodeInvalidation(data: Uint8Array): Invalidation {
  const what = 'invalidation';
  const obj = parseJson(what, data);
  const soft = optBool(what, obj, 'soft');
  const withSoft = soft === undefined ? {} : { soft };
  switch (obj.kind) {
    case 'url':
      return { kind: 'url', keys: strArray(what, obj, 'keys'), ...withSoft };
    case 'prefix':
      return { kind: 'prefix', prefix: str(what, obj, 'prefix'), ...withSoft };
    case 'tags':
      return { kind: 'tags', tags: strArray(what, obj, 'tags'), ...withSoft };
    case 'all':
      return { kind: 'all', ...withSoft };
    default:
      throw codecError(what, `kind: expected "url", "prefix", "tags" or "all", got ${describe(obj.kind)}`);
  }
}

// ---- Fill ---------------------------------------------------------------------------

const FILL_HEADER_BYTES = 5;

/** Payload of a (non-tombstone) fill. Tombstones have an empty payload and a header. */
export function encodeFillPayload(record: FillRecord): Uint8Array {
  const { meta, body } = record;
  const out = new Uint8Array(FILL_HEADER_BYTES + meta.length + body.length);
  out[0] = FILL_VERSION;
  new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(1, meta.length, false);
  out.set(meta, FILL_HEADER_BYTES);
  out.set(body, FILL_HEADER_BYTES + meta.length);
  return out;
}

/** Decode a fill's payload. `meta` and `body` are views of ONE fresh copy of the payload:
 *  the caller may keep them without pinning the connection's read buffer. */
export function decodeFill(
  partition: number,
  subjectKey: string,
  data: Uint8Array,
  tombstone: boolean,
): FillRecord {
  if (tombstone) return { partition, subjectKey, meta: EMPTY, body: EMPTY, tombstone: true };
  const what = 'fill';
  if (data.length < FILL_HEADER_BYTES) {
    throw codecError(what, `expected at least ${FILL_HEADER_BYTES} bytes, got ${data.length}`);
  }
  if (data[0] !== FILL_VERSION) {
    throw codecError(what, `expected version ${FILL_VERSION}, got version ${data[0]} (published by a sidecar of another version)`);
  }
  const metaLength = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(1, false);
  if (metaLength > data.length - FILL_HEADER_BYTES) {
    throw codecError(what, `meta length ${metaLength} exceeds the payload (${data.length} bytes)`);
  }
  const own = data.slice(FILL_HEADER_BYTES);
  return { partition, subjectKey, meta: own.subarray(0, metaLength), body: own.subarray(metaLength) };
}

// ---- Peer fence ---------------------------------------------------------------------

/** Longest field value accepted: a nuid incarnation is 22 characters; a description an
 *  operator wrote by hand can be longer, but not this long. */
const PEER_FENCE_MAX_CHARS = 4096;
const HEX = '0123456789ABCDEF';

/** RFC 3986 unreserved characters stay as they are; every other UTF-8 byte is %XX. */
function percentEncode(s: string): string {
  let out = '';
  for (const b of encoder.encode(s)) {
    const unreserved = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) ||
      b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e;
    out += unreserved ? String.fromCharCode(b) : `%${HEX[b >> 4]}${HEX[b & 15]}`;
  }
  return out;
}

export function encodePeerFence(fence: Fence): string {
  return `${PEER_FENCE_VERSION}:${fence.seq}:${percentEncode(fence.incarnation)}`;
}

/** The fence a peer sent with a response. Throws SC_ERR_LOG for a missing, repeated,
 *  malformed or other-version field: such a body must not be stored as if it were fenced. */
export function decodePeerFence(value: string | readonly string[] | undefined): Fence {
  const what = 'peer fence';
  if (value === undefined) throw codecError(what, `expected a ${PEER_FENCE_HEADER} field, got nothing`);
  if (typeof value !== 'string') throw codecError(what, `expected one ${PEER_FENCE_HEADER} field, got ${value.length}`);
  if (value.length > PEER_FENCE_MAX_CHARS) {
    throw codecError(what, `expected at most ${PEER_FENCE_MAX_CHARS} characters, got ${value.length}`);
  }
  const v = /^(\d{1,6}):/.exec(value);
  if (v === null) throw codecError(what, `expected "<version>:<seq>:<incarnation>", got ${describe(value)}`);
  if (Number(v[1]) !== PEER_FENCE_VERSION) {
    throw codecError(what, `expected version ${PEER_FENCE_VERSION}, got ${v[1]}`);
  }
  const m = /^\d+:(0|[1-9]\d{0,15}):([A-Za-z0-9\-._~%]*)$/.exec(value);
  const seq = m === null ? NaN : Number(m[1]);
  if (m === null || !Number.isSafeInteger(seq)) {
    throw codecError(what, `expected "${PEER_FENCE_VERSION}:<seq>:<incarnation>", got ${describe(value)}`);
  }
  let incarnation: string;
  try {
    incarnation = decodeURIComponent(m[2]!);
  } catch (err) {
    throw codecError(what, `incarnation: expected percent-encoded UTF-8, got ${describe(m[2])}`, err);
  }
  return { incarnation, seq };
}

// ---- View ---------------------------------------------------------------------------

const memberStates: ReadonlySet<string> = new Set<MemberState>(['joining', 'warming', 'active', 'draining']);

/** A view as stored in the view bucket: the view plus the revision it replaced. */
export interface StoredView {
  readonly view: View;
  readonly prevRevision: number;
}

export function encodeView(stored: StoredView): Uint8Array {
  const { view, prevRevision } = stored;
  return json({
    v: CODEC_VERSION,
    epoch: view.epoch,
    prevRevision,
    members: view.members.map((m) => ({ id: m.id, peerUrl: m.peerUrl, state: m.state, partitions: m.partitions })),
  });
}

export function decodeView(data: Uint8Array): StoredView {
  const what = 'view';
  const obj = parseJson(what, data);
  const epoch = nonNegInt(what, obj, 'epoch');
  const prevRevision = nonNegInt(what, obj, 'prevRevision');
  if (!Array.isArray(obj.members)) throw codecError(what, `members: expected an array, got ${describe(obj.members)}`);
  const members: Member[] = obj.members.map((raw: unknown, i: number): Member => {
    const w = `${what} member ${i}`;
    if (raw === null || typeof raw !== 'object') throw codecError(w, `expected an object, got ${describe(raw)}`);
    const m = raw as Record<string, unknown>;
    const state = str(w, m, 'state');
    if (!memberStates.has(state)) {
      throw codecError(w, `state: expected joining, warming, active or draining, got ${describe(state)}`);
    }
    const partitions = nonNegInt(w, m, 'partitions');
    if (partitions === 0) throw codecError(w, 'partitions: expected an integer >= 1, got 0');
    return { id: str(w, m, 'id'), peerUrl: str(w, m, 'peerUrl'), state: state as MemberState, partitions };
  });
  return { view: { epoch, members }, prevRevision };
}

// ---- Heartbeat and ack --------------------------------------------------------------

export interface Heartbeat {
  readonly id: string;
  readonly peerUrl: string;
  /** Last INVAL seq the member applied, in INVAL incarnation `incarnation`. */
  readonly appliedSeq: number;
  /** The member's clock when it wrote the heartbeat (epoch ms); informational only. */
  readonly at: number;
  readonly incarnation?: string;
}

export function encodeHeartbeat(hb: Heartbeat): Uint8Array {
  return json({ v: CODEC_VERSION, ...hb });
}

export function decodeHeartbeat(data: Uint8Array): Heartbeat {
  const what = 'heartbeat';
  const obj = parseJson(what, data);
  const incarnation = optStr(what, obj, 'incarnation');
  return {
    id: str(what, obj, 'id'),
    peerUrl: str(what, obj, 'peerUrl'),
    appliedSeq: nonNegInt(what, obj, 'appliedSeq'),
    at: nonNegInt(what, obj, 'at'),
    ...(incarnation === undefined ? {} : { incarnation }),
  };
}

export interface AppliedAck {
  readonly id: string;
  readonly seq: number;
  readonly incarnation?: string;
}

export function encodeAck(ack: AppliedAck): Uint8Array {
  return json({ v: CODEC_VERSION, ...ack });
}

export function decodeAck(data: Uint8Array): AppliedAck {
  const what = 'ack';
  const obj = parseJson(what, data);
  const incarnation = optStr(what, obj, 'incarnation');
  return {
    id: str(what, obj, 'id'),
    seq: nonNegInt(what, obj, 'seq'),
    ...(incarnation === undefined ? {} : { incarnation }),
  };
}
