// The versioned wire formats that fences travel in: the peer fence field and the fill payload.
// A message of another version is refused with both versions named, never misread.
import t, { type Test } from 'tap';
import { FILL_VERSION, decodeFill, encodeFillPayload } from '../../../src/log/codec.js';
import { PEER_FENCE_VERSION, decodePeerFence, encodePeerFence } from '../../../src/core/peer-fence.js';
import { SidecacheError } from '../../../src/core/errors.js';

function codecError(t: Test, fn: () => unknown, message: RegExp, what: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  t.ok(caught instanceof SidecacheError && caught.code === 'SC_ERR_LOG', `${what}: a log codec error`);
  t.match((caught as Error | undefined)?.message, message, what);
}

t.test('peer fence - round trip of seq and incarnation, whatever the incarnation holds', async (t) => {
  for (const incarnation of ['', 'Jq8aX3yWq1m7B0cQ2r4T5v', 'recreated by hand', 'a:b%c/é 😀', '1:2:3']) {
    for (const seq of [0, 1, 4711, Number.MAX_SAFE_INTEGER]) {
      const value = encodePeerFence({ incarnation, seq });
      t.match(value, /^[\x21-\x7e]+$/, `a valid field value for ${JSON.stringify(incarnation)}`);
      t.same(decodePeerFence(value), { incarnation, seq });
    }
  }
  t.equal(encodePeerFence({ incarnation: 'abc', seq: 12 }), `${PEER_FENCE_VERSION}:12:abc`);
});

t.test('peer fence - missing, repeated, malformed or of another version: refused, saying what came in', async (t) => {
  codecError(t, () => decodePeerFence(undefined), /expected a x-sidecache-fence field, got nothing/, 'missing');
  codecError(t, () => decodePeerFence(['1:1:a', '1:2:a']), /expected one x-sidecache-fence field, got 2/, 'repeated');
  codecError(t, () => decodePeerFence('2:5:abc'), new RegExp(`expected version ${PEER_FENCE_VERSION}, got 2`), 'another version names both');
  codecError(t, () => decodePeerFence('99999:5:abc'), /expected version 1, got 99999/, 'a far future version');
  for (const bad of ['', 'x', '1', '1:', '1::abc', '1:-1:abc', '1:01:abc', '1:1.5:abc', '1:99999999999999999:abc', '1:5:a b', '1:5:a\u00e9']) {
    codecError(t, () => decodePeerFence(bad), /peer fence: expected/, `malformed ${JSON.stringify(bad)}`);
  }
  codecError(t, () => decodePeerFence('1:5:%E9'), /incarnation: expected percent-encoded UTF-8/, 'bad percent-encoding');
  codecError(t, () => decodePeerFence(`1:5:${'a'.repeat(5000)}`), /expected at most 4096 characters, got 5004/, 'too long');
});

t.test('fill - the payload carries its version; another version is refused naming both', async (t) => {
  const meta = new TextEncoder().encode(`{"v":${FILL_VERSION}}`);
  const body = new TextEncoder().encode('hello');
  const payload = encodeFillPayload({ partition: 3, subjectKey: 'ab', meta, body });
  t.equal(payload[0], FILL_VERSION, 'version byte first');
  const back = decodeFill(3, 'ab', payload, false);
  t.same(Buffer.from(back.meta).toString(), `{"v":${FILL_VERSION}}`);
  t.same(Buffer.from(back.body).toString(), 'hello');
  for (const version of [1, 2]) {
    const older = Uint8Array.from(payload);
    older[0] = version;
    codecError(t, () => decodeFill(3, 'ab', older, false), new RegExp(`fill: expected version ${FILL_VERSION}, got version ${version}`),
      `a version ${version} fill (no fence incarnation)`);
  }
  codecError(t, () => decodeFill(3, 'ab', payload.subarray(0, 3), false), /expected at least 5 bytes, got 3/, 'truncated');
  t.equal(decodeFill(3, 'ab', new Uint8Array(0), true).tombstone, true, 'tombstones have no payload to version');
});

t.test('view - a member\'s placement travels only when it is range; anything else is refused', async (t) => {
  const { decodeView, encodeView } = await import('../../../src/log/codec.js');
  const members = [
    { id: 'a', peerUrl: 'http://a', state: 'active' as const, partitions: 8 },
    { id: 'b', peerUrl: 'http://b', state: 'active' as const, partitions: 8, placement: 'range' as const },
  ];
  const bytes = encodeView({ view: { epoch: 3, members }, prevRevision: 2 });
  t.notOk(Buffer.from(bytes).toString().includes('"placement":"hash"'), 'hash (the default) is not written: older members read the view as before');
  t.same(decodeView(bytes).view.members, members, 'round trip');
  const bad = Buffer.from(Buffer.from(bytes).toString().replace('"placement":"range"', '"placement":"zigzag"'));
  codecError(t, () => decodeView(bad), /placement: expected "range" or nothing, got "zigzag"/, 'an unknown placement');
});
