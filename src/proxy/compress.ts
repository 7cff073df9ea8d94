// Compression on store: a compressible body the origin sent uncompressed is gzipped once, when
// its entry is made (miss path), and kept so; deliver.ts serves it as it is to clients that
// accept gzip and decompresses it for the others. The rules are http/encoding.ts mayCompress.
import { gunzipSync, gzipSync } from 'node:zlib';
import { gzipHeaders } from '../http/encoding.js';
import type { Entry } from '../store/types.js';

/** Bodies that shrink less than this are kept as they came: decompressing them for identity
 *  clients would cost more than the bytes saved. */
const MAX_RATIO = 0.9;

/** The gzip of a body, as a Buffer that owns exactly its bytes; undefined when it does not
 *  shrink enough to be worth keeping. */
export function gzipBody(body: Buffer): Buffer | undefined {
  const gz = gzipSync(body);
  if (gz.length > body.length * MAX_RATIO) return undefined;
  // zlib may hand back a view of a larger buffer: keep only the bytes the budget is charged for.
  return gz.buffer.byteLength === gz.length ? gz : Buffer.from(gz);
}

/** The fields of the gzip representation, for identity fields (with Content-Length). */
export { gzipHeaders };

/** The identity body of an entry stored compressed. */
export function identityBody(entry: Entry): Buffer {
  return gunzipSync(entry.body);
}

/** The entry as the origin sent it: itself when stored as it came, else its identity fields and
 *  body (decompressed unless given). Fills carry this form: the log holds the origin's bytes,
 *  and a member of any version stores them as they are. */
export function asSent(entry: Entry, body?: Buffer): Entry {
  const id = entry.identity;
  if (id === undefined) return entry;
  const { identity: _, ...rest } = entry;
  return { ...rest, headers: id.headers, body: body ?? identityBody(entry) };
}
