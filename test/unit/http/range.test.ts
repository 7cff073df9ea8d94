// Byte ranges answered from a stored full response (RFC 9110 §14).
import t from 'tap';
import { parseRange } from '../../../src/http/range.js';

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
