// The part set of a partial entry (RFC 9111 §3.3, §3.4), pure: against a byte-array model under
// arbitrary additions, and the bound on its parts.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import t from 'tap';
import { addPart, isComplete, MAX_PARTS, partsSize, PART_OVERHEAD_BYTES, sliceOf, type PartSet } from '../../../src/store/parts.js';

const LENGTH = 64;

/** Each byte of the model is the round that wrote it (newest wins), or -1 when not held. */
function check(set: PartSet, model: number[]): void {
  let prevEnd = -2;
  for (const p of set.parts) {
    assert.ok(p.bytes.length > 0, 'no empty part');
    assert.ok(p.start > prevEnd, `sorted, disjoint and not adjacent: ${p.start} after ${prevEnd}`);
    prevEnd = p.start + p.bytes.length;
    assert.ok(prevEnd <= set.length);
  }
  for (let i = 0; i < LENGTH; i++) {
    const held = sliceOf(set, i, i);
    if (model[i] === -1) assert.equal(held, undefined, `byte ${i} not held`);
    else assert.equal(held?.[0], model[i], `byte ${i}`);
  }
  assert.equal(isComplete(set), model.every((b) => b !== -1));
}

t.test('parts props - additions agree with a byte model: held bytes are the newest written, ranges inside one part slice', async () => {
  const add = fc.tuple(fc.nat({ max: LENGTH - 1 }), fc.integer({ min: 1, max: 20 }));
  fc.assert(fc.property(fc.array(add, { minLength: 1, maxLength: 40 }), (adds) => {
    let set: PartSet | undefined;
    const model = new Array<number>(LENGTH).fill(-1);
    for (const [round, [start, len]] of adds.entries()) {
      const n = Math.min(len, LENGTH - start);
      const next = addPart(set, LENGTH, start, Buffer.alloc(n, round), 1000);
      assert.ok(next !== undefined);
      set = next;
      for (let i = start; i < start + n; i++) model[i] = round;
      check(set, model);
    }
    // A range wholly inside what is held is one slice; one touching a hole is none.
    for (let a = 0; a < LENGTH; a += 7) {
      for (let b = a; b < LENGTH; b += 5) {
        const whole = model.slice(a, b + 1).every((x) => x !== -1);
        const s = sliceOf(set!, a, b);
        assert.equal(s !== undefined, whole, `${a}-${b}`);
        if (s !== undefined) assert.deepEqual([...s], model.slice(a, b + 1));
      }
    }
  }), { numRuns: 500 });
});

t.test('parts - out of bounds, empty or another length: refused', async (t) => {
  t.equal(addPart(undefined, 10, 8, Buffer.from('abc')), undefined, 'past the complete length');
  t.equal(addPart(undefined, 10, -1, Buffer.from('a')), undefined);
  t.equal(addPart(undefined, 10, 0, Buffer.alloc(0)), undefined);
  const set = addPart(undefined, 10, 0, Buffer.from('ab'))!;
  t.equal(addPart(set, 11, 5, Buffer.from('x')), undefined, 'parts of another complete length');
  t.equal(sliceOf(set, 1, 2), undefined);
  t.equal(sliceOf(set, 0, 1)!.toString(), 'ab');
});

t.test('parts - at most MAX_PARTS parts; adjacent parts merge, so reading in order keeps one', async (t) => {
  let set: PartSet | undefined;
  for (let i = 0; i < MAX_PARTS; i++) set = addPart(set, 1000, 2 * i, Buffer.from('x'));
  t.equal(set!.parts.length, MAX_PARTS);
  t.equal(addPart(set, 1000, 2 * MAX_PARTS, Buffer.from('x')), undefined, 'one more scattered part: refused');
  t.equal(addPart(set, 1000, 1, Buffer.from('y'))!.parts.length, MAX_PARTS - 1, 'filling a gap merges its neighbours');
  t.equal(partsSize(set!), MAX_PARTS * (1 + PART_OVERHEAD_BYTES), 'each part charged its bytes and overhead');
  let seq: PartSet | undefined;
  for (let i = 0; i < 100; i++) seq = addPart(seq, 100, i, Buffer.from([i]));
  t.equal(seq!.parts.length, 1);
  t.ok(isComplete(seq!));
  t.same([...seq!.parts[0]!.bytes], Array.from({ length: 100 }, (_, i) => i));
});
