// The peer fence: an HTTP field on responses to peers only, `x-sidecache-fence:
// 1:<seq>:<incarnation>` (version 1, the seq in decimal, the incarnation percent-encoded UTF-8):
// the fence of the entry or fetch the body came from (DESIGN invariant 1).

import type { Fence } from './types.js';
import { codecError, describe, encoder } from './wire.js';

export const PEER_FENCE_VERSION = 1;
/** Response field, peer port only, carrying the fence of the body (encodePeerFence). */
export const PEER_FENCE_HEADER = 'x-sidecache-fence';

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
