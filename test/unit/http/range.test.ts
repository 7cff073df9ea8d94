// Byte ranges answered from a stored full response (RFC 9110 §14).
import t from 'tap';
import { ifRangeHolds, isStrongETag, parseContentRange, parseRange } from '../../../src/http/range.js';

t.test('range - one satisfiable range is partial', async (t) => {
  t.same(parseRange('bytes=0-4', 10), { kind: 'partial', start: 0, end: 4 });
  t.same(parseRange('bytes=5-', 10), { kind: 'partial', start: 5, end: 9 });
  t.same(parseRange('bytes=-3', 10), { kind: 'partial', start: 7, end: 9 }, 'suffix');
  t.same(parseRange('bytes=-30', 10), { kind: 'partial', start: 0, end: 9 }, 'suffix longer than the body');
  t.same(parseRange('bytes=8-100', 10), { kind: 'partial', start: 8, end: 9 }, 'end clamped');
  t.same(parseRange(' Bytes = 2 - 3 ', 10), { kind: 'partial', start: 2, end: 3 }, 'whitespace and case');
});

t.test('range - several ranges or an unreadable header get the full response', async (t) => {
  t.same(parseRange('bytes=0-1,3-4', 10), { kind: 'full' });
  t.same(parseRange('items=0-4', 10), { kind: 'full' });
  t.same(parseRange('bytes=-', 10), { kind: 'full' });
  t.same(parseRange('bytes=5-2', 10), { kind: 'full' }, 'last before first: invalid, ignored');
  t.same(parseRange('garbage', 10), { kind: 'full' });
});

t.test('range - unsatisfiable', async (t) => {
  t.same(parseRange('bytes=10-', 10), { kind: 'unsatisfiable' });
  t.same(parseRange('bytes=10-20', 10), { kind: 'unsatisfiable' });
  t.same(parseRange('bytes=-0', 10), { kind: 'unsatisfiable' });
  t.same(parseRange('bytes=0-', 0), { kind: 'unsatisfiable' }, 'empty body');
});

t.test('range - a suffix range of an empty body is answered in full, never with a negative range', async (t) => {
  t.same(parseRange('bytes=-5', 0), { kind: 'full' });
});

t.test('range - Content-Range of a single-part 206 (RFC 9110 §14.4): only bytes a-b/N with a known length', async (t) => {
  t.same(parseContentRange('bytes 0-9/36'), { start: 0, end: 9, length: 36 });
  t.same(parseContentRange('Bytes  35-35/36'), { start: 35, end: 35, length: 36 });
  for (const v of ['bytes 0-9/*', 'bytes */36', 'bytes 9-0/36', 'bytes 0-36/36', 'items 0-9/36', 'bytes 0-9/36, bytes 10-11/36', 'bytes=0-9/36', '']) {
    t.equal(parseContentRange(v), undefined, v);
  }
  t.equal(parseContentRange(['bytes 0-9/36', 'bytes 0-9/36']), undefined, 'two fields');
  t.equal(parseContentRange(undefined), undefined);
});

t.test('range - If-Range (RFC 9110 §13.1.5): strong comparison for tags, an exact date for Last-Modified', async (t) => {
  const lm = 'Thu, 01 Jan 2026 00:00:00 GMT';
  t.ok(ifRangeHolds(undefined, undefined, undefined), 'none: the range applies');
  t.ok(ifRangeHolds('"a"', '"a"', undefined));
  t.notOk(ifRangeHolds('"a"', '"b"', undefined));
  t.notOk(ifRangeHolds('W/"a"', 'W/"a"', undefined), 'weak tags never match strongly');
  t.notOk(ifRangeHolds('"a"', 'W/"a"', undefined));
  t.notOk(ifRangeHolds('"a"', undefined, lm));
  t.ok(ifRangeHolds(lm, '"a"', lm));
  t.notOk(ifRangeHolds('Fri, 02 Jan 2026 00:00:00 GMT', '"a"', lm));
  t.notOk(ifRangeHolds(lm, '"a"', undefined));
  t.ok(isStrongETag('"x"'));
  t.notOk(isStrongETag('W/"x"'));
  t.notOk(isStrongETag('x'));
});
