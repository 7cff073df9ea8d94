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
//   View          {"v":1,"epoch":n,"prevRevision":r,"members":[{"id","peerUrl","state","partitions","placement"?:"range"}]}
//                 prevRevision: the view bucket's last revision this view was computed from; the
//                 entry counts only if it was stored at prevRevision+1 (see nats/membership/view.ts read).
//   Heartbeat     {"v":1,"id","peerUrl","appliedSeq","at","incarnation"?}
//   Ack           {"v":1,"id","seq","incarnation"?}
//   (The peer fence, an HTTP field between peers, is in core/peer-fence.ts.)
// `incarnation` identifies the INVAL stream the seq belongs to (an id in its description):
// after the stream is deleted and recreated, seqs restart and an old seq must not count.

import { codecError, describe, EMPTY, json, nonNegInt, optBool, optStr, parseJson, str, strArray } from '../core/wire.js';
import type { FillRecord } from './types.js';
import type { Invalidation, Member, MemberState, View } from '../core/types.js';

export const CODEC_VERSION = 1;
export const FILL_VERSION = 3;
/** Header marking a tombstone on a fill subject. */
export const FILL_OP_HEADER = 'SC-Op';
export const FILL_OP_DELETE = 'del';

// ---- Invalidation -------------------------------------------------------------------

export function encodeInvalidation(inval: Invalidation): Uint8Array {
  return json({ v: CODEC_VERSION, ...inval });
}

export function decodeInvalidation(data: Uint8Array): Invalidation {
  const what = 'invalidation';
  const obj = parseJson(what, data, CODEC_VERSION);
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
    members: view.members.map((m) => ({
      id: m.id, peerUrl: m.peerUrl, state: m.state, partitions: m.partitions, ...(m.placement === undefined ? {} : { placement: m.placement }),
    })),
  });
}

export function decodeView(data: Uint8Array): StoredView {
  const what = 'view';
  const obj = parseJson(what, data, CODEC_VERSION);
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
    const placement = optStr(w, m, 'placement');
    if (placement !== undefined && placement !== 'range') throw codecError(w, `placement: expected "range" or nothing, got ${describe(placement)}`);
    return { id: str(w, m, 'id'), peerUrl: str(w, m, 'peerUrl'), state: state as MemberState, partitions, ...(placement === undefined ? {} : { placement }) };
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
  const obj = parseJson(what, data, CODEC_VERSION);
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
  const obj = parseJson(what, data, CODEC_VERSION);
  const incarnation = optStr(what, obj, 'incarnation');
  return {
    id: str(what, obj, 'id'),
    seq: nonNegInt(what, obj, 'seq'),
    ...(incarnation === undefined ? {} : { incarnation }),
  };
}
