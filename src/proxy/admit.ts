// admit: what a response becomes here. Whether it may be stored (RFC 9111 §3), with which
// freshness and under which fence (DESIGN: fence), the head every response of its flight
// gets, the entry stored when its body is complete, and the entry a 304 refreshes (§4.3.4).
import { decodePeerFence, PEER_FENCE_HEADER } from '../core/peer-fence.js';
import type { Fence } from '../core/types.js';
import { mayCompress, variantTakesGzip, withVaryAcceptEncoding } from '../http/compressible.js';
import { rawGet, rawWithout, toRawHeaders, VIA, type HeaderObject } from '../http/headers.js';
import { admit, CachePolicy, freshnessOf, keepUntilOf, newPolicy, policyRequestOf, receivedAgeSec, revalidatedPolicy } from '../http/storable.js';
import { IMPLICIT_VARY, objectView, secondaryKeyNames } from '../http/vary.js';
import { entrySize, EntrySource, heldBytes, mayKeepParent, type Entry } from '../store/types.js';
import { formSize, gzipForm } from './compress.js';
import type { Pipeline } from './context.js';
import type { StatusParts } from './deliver.js';
import type { Flight, FlightHead } from './flight.js';
import type { FlightFetch } from './flight-fetch.js';

/** At most one warning per this long about peers whose answers carry no fence we can read
 *  (a member of another version during a rolling upgrade sends one with every answer). */
const FENCE_WARN_INTERVAL_MS = 60_000;

/** The body as one Buffer that keeps no more memory alive than it is charged for (heldBytes):
 *  socket chunks are views into the socket read's ArrayBuffer. A body that came in one read is
 *  kept as it is when the rest of that read (the response head) is small: copying it would
 *  allocate a second buffer per fill and leave the read as garbage, which V8 frees late and
 *  which fragments the malloc heap (RSS far past the budget). Anything else is copied into one
 *  exact Buffer, since keeping a slice of a larger read would keep the whole read alive. */
function ownedBody(chunks: readonly Buffer[], bytes: number): Buffer {
  const first = chunks[0];
  if (chunks.length === 1 && first !== undefined && mayKeepParent(bytes, first.buffer.byteLength)) return first;
  const out = Buffer.allocUnsafeSlow(bytes);
  let offset = 0;
  for (const c of chunks) offset += c.copy(out, offset);
  return out;
}

/** The Vary names an entry is charged for (entrySize): IMPLICIT_VARY is one array, shared by
 *  every entry without a Vary of its own and held once, so those entries pay for their values only. */
export function chargedNames(names: readonly string[] | null): readonly string[] | null {
  return names === IMPLICIT_VARY ? null : names;
}

/** Surrogate-Key (space-separated) and Cache-Tag (comma-separated) tags of a response. */
export function tagsOf(headers: HeaderObject): string[] {
  const out: string[] = [];
  const sk = headers['surrogate-key'];
  if (sk !== undefined) for (const t of String(sk).split(/\s+/)) if (t !== '') out.push(t);
  const ct = headers['cache-tag'];
  if (ct !== undefined) for (const t of String(ct).split(',')) if (t.trim() !== '') out.push(t.trim());
  return out;
}

/** The fence of what this sidecar fetches from the origin: the INVAL position when the flight began. */
function ownFenceOf(flight: Flight): Fence {
  return { incarnation: flight.incarnation, seq: flight.fence };
}

export class Admitter {
  readonly #p: Pipeline;
  #fenceWarnedAt = -Infinity;

  constructor(p: Pipeline) {
    this.#p = p;
  }

  /**
   * A final response other than a 304 for the stored entry: sets the fetch's head, policy and
   * admission, and returns the Cache-Status parts of the client that started it; undefined when
   * the answer may not be used at all (a peer's copy older than a purge we applied): the
   * caller fetches from the origin instead.
   */
  admit(f: FlightFetch, status: number, headers: HeaderObject, now: number): StatusParts | undefined {
    const { flight, viaPeer } = f;
    const { req, target } = f.x;
    const s = this.#p.s;
    // A peer's answer is as fresh as what the peer had applied, not as what we had: an owner
    // behind on INVAL serves what a purge we already applied removed. So its fence is the
    // peer's; ours stands for what we fetch from the origin.
    const ownFence = ownFenceOf(flight);
    const upstreamStatus = headers['cache-status'];
    const names = secondaryKeyNames(headers.vary);
    const values = this.#p.secondary.values(names, objectView, f.upstream);
    // RFC 9111 §3.5: the answer to a request with Authorization is kept and shared only when
    // public, s-maxage or must-revalidate say so (the policy's storable()); else it is passed.
    const authorized = req.headers.authorization !== undefined;
    const policy = newPolicy(policyRequestOf(target.path, names, values, authorized), { status, headers: headers as Record<string, string> }, now);
    const admission = admit(policy, { status, headers: headers as Record<string, string> }, now, s.config.defaultTtlMs);
    const cl = headers['content-length'];
    const tooBig = cl !== undefined && Number(cl) > s.config.maxEntryBytes;
    const storable = admission.storable && !tooBig;
    const tags = tagsOf(headers);
    // Only an answer we may keep needs the peer's fence (a peer's error page has none to give).
    const fence = !viaPeer ? ownFence : storable ? this.#peerFence(headers) : undefined;
    // A peer's copy older than a purge we applied that matches it: the owner has not applied
    // that purge yet (lagging, or cut off and listed as missing). If we had applied it when this
    // flight began, its requests came after it, and we may have acknowledged it: we neither keep
    // nor serve the copy, the origin is asked (read-your-purge holds here). A flight overtaken by
    // a matching purge serves only requests from before that purge: the copy is served to them,
    // and not kept. (The history keeps the last seq of each key and tag, so a first purge before
    // the flight and a second during it look like the second alone.)
    if (viaPeer && fence !== undefined && fence.incarnation === s.log.incarnation && !flight.overtaken &&
        s.cache.isInvalidatedSince({ key: f.x.key, tags, fence: fence.seq, incarnation: fence.incarnation })) {
      s.metrics.fencesUntrusted.labels('peer', 'predates-purge').inc();
      s.metrics.degradedFetches.inc();
      return undefined;
    }
    // Age is always ours here (added per response from the policy's age): never the origin's too.
    let raw = toRawHeaders(headers, this.#p.dropOnStore);
    raw.push('via', headers.via === undefined ? VIA : `${String(headers.via)}, ${VIA}`);
    // It may be kept in two codings (compress.ts): every response of it says so, this one (as
    // it streams) included, so that caches after us key it by Accept-Encoding (RFC 9110 §12.5.5).
    if (storable && mayCompress(status, raw, s.config) && variantTakesGzip(names, values)) raw = withVaryAcceptEncoding(raw);
    f.head = {
      status,
      headers: raw,
      shareable: storable,
      varyNames: names,
      varyValues: values,
      tags,
      initialAgeSec: receivedAgeSec(headers as Record<string, string>),
      receivedAt: now,
      fence,
    };
    f.policy = policy;
    f.admission = admission;
    f.storable = storable;
    const detail = storable ? undefined : admission.storable ? 'too large' : admission.reason;
    if (detail !== undefined) s.onNotStored?.(f.x.key, detail);
    return {
      fwd: f.fwd,
      fwdStatus: status,
      stored: storable,
      ...(detail === undefined ? {} : { detail }),
      ...(typeof upstreamStatus === 'string' && viaPeer ? { upstream: upstreamStatus } : {}),
    };
  }

  /** The whole body arrived: store it when it may be. */
  store(f: FlightFetch): void {
    const s = this.#p.s;
    const flight = f.flight;
    const fence = f.head?.fence;
    if (f.storable && this.#p.flights.writtenSince(flight.key, flight.writeSeq)) {
      s.onNotStored?.(f.x.key, 'a write through this sidecar removed the key while it was fetched');
    } else if (f.storable && flight.capturing && f.admission!.storable && fence !== undefined && (!f.viaPeer || this.#isOurNumbering(fence))) {
      const bodyBuf = ownedBody(flight.chunks, flight.bytes);
      const entry = this.#makeEntry(f.x.key, f.head!, bodyBuf, f.policy!, f.admission!.freshness, f.admission!.keepUntil, fence,
        f.notOwner ? EntrySource.hot : EntrySource.local);
      if (s.cache.store(entry, f.viaPeer, flight.generation)) {
        // Replicas get the origin's bytes; each member makes its own gzip form.
        if (!f.viaPeer) s.onStored?.(entry);
        this.#p.compressor.consider(entry);
      } else {
        s.metrics.fillsRejected.inc();
        s.onNotStored?.(f.x.key, 'an invalidation applied since the fetch began matches it, or the cache was flushed');
      }
    } else if (f.storable) {
      s.onNotStored?.(f.x.key, flight.capturing ? 'the owner sent no fence this member can check' : 'body larger than SIDECACHE_MAX_ENTRY_BYTES');
    }
  }

  /** A 304 that is an update for the stored entry (isUpdateFor): the entry it refreshes, stored
   *  when it may be; the stale entry itself when the refreshed one may not be kept. */
  revalidated(f: FlightFetch, headers: HeaderObject, now: number): Entry {
    const { req, target, stale } = f.x;
    const update = { status: 304, headers: headers as Record<string, string> };
    const preq = policyRequestOf(target.path, stale!.varyNames, stale!.varyValues, req.headers.authorization !== undefined);
    const { policy } = revalidatedPolicy(stale!.policy, preq, update, now);
    return this.#refresh(stale!, policy, f.flight, f.viaPeer ? this.#peerFence(headers) : ownFenceOf(f.flight), now);
  }

  /** The fence a peer sent with its answer; undefined (counted, and warned about now and then)
   *  when it sent none we can read: an owner of another version, or no owner at all. */
  #peerFence(headers: HeaderObject): Fence | undefined {
    const value = headers[PEER_FENCE_HEADER];
    try {
      return decodePeerFence(value);
    } catch (err) {
      this.#p.s.metrics.fencesUntrusted.labels('peer', value === undefined ? 'missing' : 'unreadable').inc();
      const now = performance.now();
      if (now - this.#fenceWarnedAt >= FENCE_WARN_INTERVAL_MS) {
        this.#fenceWarnedAt = now;
        this.#p.s.logger.warn({ err: (err as Error).message }, 'a peer answered without a fence we can read: its answer is served, not kept');
      }
      return undefined;
    }
  }

  /** Does a fence count in the seqs of the INVAL stream we apply? After a reset, one of the old
   *  stream cannot be checked against the purges of the new one (counted, not stored). */
  #isOurNumbering(fence: Fence): boolean {
    if (fence.incarnation === this.#p.s.log.incarnation) return true;
    this.#p.s.metrics.fencesUntrusted.labels('peer', 'incarnation').inc();
    return false;
  }

  #makeEntry(
    key: string, head: FlightHead, body: Buffer, policy: CachePolicy, freshness: Entry['freshness'], keepUntil: number,
    fence: Fence, source: EntrySource,
  ): Entry {
    const headers = rawWithout(head.headers, 'content-length');
    headers.push('content-length', String(body.length));
    return {
      key,
      varyNames: head.varyNames,
      varyValues: head.varyValues,
      status: head.status,
      headers,
      body,
      policy,
      freshness,
      keepUntil,
      tags: head.tags,
      fence: fence.seq,
      incarnation: fence.incarnation,
      etag: rawGet(headers, 'etag'),
      lastModified: rawGet(headers, 'last-modified'),
      source,
      fillSeq: 0,
      size: entrySize(key, headers, heldBytes(body), chargedNames(head.varyNames), head.varyValues, head.tags),
      softPurged: false,
      gzip: undefined,
    };
  }

  /** The stored entry after a 304: new policy, times and headers (§4.3.4), same body. */
  #refresh(stale: Entry, policy: CachePolicy, flight: Flight, fence: Fence | undefined, now: number): Entry {
    // Two facts meet here, and the entry is fenced with the earlier: the body is ours, clean of
    // every purge applied when the flight began (it was still stored then), and the 304 says its
    // validators are current as of its source's fence (ours for the origin, the owner's for a
    // peer). A peer ahead of us vouches for nothing about our body: a hard purge it applied and
    // we have not yet must still remove the body when we apply it, whatever the validators say
    // (DESIGN invariant 2). A peer behind us has not seen a soft purge we applied: its 304 is no
    // revalidation after it. A fence we cannot read, or of another stream, leaves the 304
    // served to this flight and the entry not stored.
    const own: Fence = {
      incarnation: flight.incarnation,
      seq: stale.incarnation === flight.incarnation ? Math.max(stale.fence, flight.fence) : flight.fence,
    };
    const kept: Fence | undefined = fence === undefined || fence.incarnation !== own.incarnation
      ? undefined
      : { incarnation: own.incarnation, seq: Math.min(own.seq, fence.seq) };
    const updated = policy.responseHeaders() as Record<string, string>;
    const freshness = freshnessOf(policy, updated, now, this.#p.s.config.defaultTtlMs);
    const headers = toRawHeaders(updated, this.#p.dropOnStore);
    headers.push('via', VIA);
    let withLength = rawWithout(headers, 'content-length');
    withLength.push('content-length', String(stale.body.length));
    // The policy holds the origin's fields: the Vary we add to what we may compress goes back
    // in, and the gzip form (same bytes) gets the updated fields too.
    // The refreshed fields decide anew (RFC 9111 §4.3.4): a 304 that now says no-transform, or
    // names a type not compressed, drops the gzip form, and the Vary added for it with it.
    const rules = this.#p.s.config;
    const compressible = mayCompress(stale.status, withLength, rules, stale.body.length) &&
      variantTakesGzip(stale.varyNames, stale.varyValues);
    if (compressible) withLength = withVaryAcceptEncoding(withLength);
    const gzip = stale.gzip === undefined || !compressible ? undefined : gzipForm(withLength, stale.gzip.body);
    const entry: Entry = {
      ...stale,
      headers: withLength,
      gzip,
      policy,
      freshness,
      keepUntil: keepUntilOf(freshness),
      incarnation: (kept ?? own).incarnation,
      fence: (kept ?? own).seq,
      etag: rawGet(withLength, 'etag'),
      lastModified: rawGet(withLength, 'last-modified'),
      size: entrySize(stale.key, withLength, heldBytes(stale.body), chargedNames(stale.varyNames), stale.varyValues, stale.tags) +
        (gzip === undefined ? 0 : formSize(gzip)),
      softPurged: false,
    };
    const hot = stale.source === EntrySource.hot;
    if (kept !== undefined && !this.#p.flights.writtenSince(flight.key, flight.writeSeq) && this.#p.s.cache.store(entry, hot, flight.generation)) {
      if (!hot) this.#p.s.onStored?.(entry);
      this.#p.compressor.consider(entry);
      return entry;
    }
    return stale;
  }
}
