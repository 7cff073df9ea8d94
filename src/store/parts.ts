// The byte ranges held of one representation (RFC 9111 §3.3, §3.4): a partial entry's body.
// Pure: parts are kept sorted, and overlapping or adjacent parts are merged into one, so a
// range that lies wholly inside what is held lies inside one part and is served as a view of
// its bytes. A client asking for many tiny scattered ranges makes many parts: their count is
// bounded (MAX_PARTS), and a part set past it is refused rather than grown.

export interface Part {
  /** First byte's offset in the representation. */
  readonly start: number;
  /** The bytes start..start+bytes.length-1; never empty. */
  readonly bytes: Buffer;
}

export interface PartSet {
  /** The complete length of the representation (the `/N` of Content-Range). */
  readonly length: number;
  /** Sorted by start, disjoint and not adjacent (merged), each inside 0..length-1. */
  readonly parts: readonly Part[];
}

/** Parts one entry may hold: what a client can make us keep per key with scattered ranges.
 *  Each part costs its bytes and PART_OVERHEAD_BYTES in the budget. */
export const MAX_PARTS = 32;

/** Budget charge per part beyond its bytes: the object, its Buffer header, the array slot. */
export const PART_OVERHEAD_BYTES = 128;

/**
 * The set with bytes `start..start+bytes.length-1` added, merged with every part it overlaps
 * or touches. Where the new bytes overlap held ones, the new bytes win (they are the newest
 * response's; with equal strong validators they are the same bytes anyway, §3.4). Returns
 * undefined when the range is not inside 0..length-1, is empty, or the merged set would hold
 * more than `maxParts` parts. A merge copies the merged bytes into one Buffer.
 */
export function addPart(set: PartSet | undefined, length: number, start: number, bytes: Buffer, maxParts = MAX_PARTS): PartSet | undefined {
  if (bytes.length === 0 || start < 0 || !Number.isSafeInteger(start) || start + bytes.length > length) return undefined;
  if (set !== undefined && set.length !== length) return undefined;
  const held = set?.parts ?? [];
  const end = start + bytes.length; // exclusive
  const before: Part[] = [];
  const after: Part[] = [];
  const touching: Part[] = [];
  for (const p of held) {
    const pEnd = p.start + p.bytes.length;
    if (pEnd < start) before.push(p);
    else if (p.start > end) after.push(p);
    else touching.push(p);
  }
  let merged: Part;
  if (touching.length === 0) {
    merged = { start, bytes };
  } else {
    const mStart = Math.min(start, touching[0]!.start);
    const last = touching[touching.length - 1]!;
    const mEnd = Math.max(end, last.start + last.bytes.length);
    const out = Buffer.allocUnsafeSlow(mEnd - mStart);
    for (const p of touching) p.bytes.copy(out, p.start - mStart);
    bytes.copy(out, start - mStart);
    merged = { start: mStart, bytes: out };
  }
  const parts = [...before, merged, ...after];
  if (parts.length > maxParts) return undefined;
  return { length, parts };
}

/** The held bytes first..last (inclusive), as a view, when one part holds all of them. */
export function sliceOf(set: PartSet, first: number, last: number): Buffer | undefined {
  if (first < 0 || last < first || last >= set.length) return undefined;
  for (const p of set.parts) {
    if (p.start > first) return undefined;
    if (p.start + p.bytes.length > last) return p.bytes.subarray(first - p.start, last - p.start + 1);
  }
  return undefined;
}

/** Do the parts hold every byte, 0..length-1? Then the one part is the whole body. */
export function isComplete(set: PartSet): boolean {
  return set.parts.length === 1 && set.parts[0]!.start === 0 && set.parts[0]!.bytes.length === set.length;
}

/** Bytes charged for the parts: their bytes and a fixed overhead each. */
export function partsSize(set: PartSet): number {
  let n = 0;
  for (const p of set.parts) n += p.bytes.length + PART_OVERHEAD_BYTES;
  return n;
}

/** Bytes held (without overhead). */
export function heldPartBytes(set: PartSet): number {
  let n = 0;
  for (const p of set.parts) n += p.bytes.length;
  return n;
}
