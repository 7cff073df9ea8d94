// What a fill publishes about a stored entry: its secondary key and policy, and no client
// header (cookies, API keys, a peer's signature) in the bytes that go to the log.
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { decodeFillMeta, encodeFillMeta } from '../../../src/cluster/fill-meta.js';
import { variantSubjectKey } from '../../../src/cluster/node.js';
import { SidecacheError } from '../../../src/core/errors.js';
import { upstreamRequestHeaders } from '../../../src/http/headers.js';
import { admit, CachePolicy, policyRequestOf, POLICY_OPTIONS } from '../../../src/http/storable.js';
import { objectView, SecondaryKey, secondaryKeyNames } from '../../../src/http/vary.js';
import { decodeFill, encodeFillPayload, FILL_VERSION } from '../../../src/log/codec.js';
import { entrySize, EntrySource, sameVariant, type Entry } from '../../../src/store/types.js';

/** The headers of a request a peer forwarded: a client's credentials and our signature. */
const REQUEST = {
  host: 'app.example',
  cookie: 'sid=COOKIE-SECRET-1',
  'x-api-key': 'APIKEY-SECRET-2',
  'accept-language': 'de',
  'x-sidecache-signature': 'SIGNATURE-3',
  'x-sidecache-ts': '1700000000000',
  'x-sidecache-nonce': 'NONCE-4',
  'x-sidecache-from': 'member-a',
  'x-sidecache-cluster': 'CLUSTER-NAME-5',
};
/** What a cacheable fetch drops before the origin (proxy/lookup.ts CACHEABLE_FETCH_DROP's peer fields). */
const DROP = new Set(['x-sidecache-signature', 'x-sidecache-ts', 'x-sidecache-nonce', 'x-sidecache-from', 'x-sidecache-epoch', 'x-sidecache-cluster']);

/** An entry made the way the handler makes one from that request and a Vary response. */
function entryFor(keys: SecondaryKey): Entry {
  const resHeaders = { vary: 'Cookie, X-Api-Key, Accept-Language, X-Sidecache-Signature', 'cache-control': 'public, max-age=60', date: new Date().toUTCString() };
  const sent = upstreamRequestHeaders(REQUEST, '10.0.0.7', DROP);
  const names = secondaryKeyNames(resHeaders.vary);
  const values = keys.values(names, objectView, sent);
  const policy = new CachePolicy(policyRequestOf('/p', names, values), { status: 200, headers: resHeaders }, POLICY_OPTIONS);
  const admission = admit(policy, { status: 200, headers: resHeaders }, Date.now(), 0);
  if (!admission.storable) throw new Error('expected a storable response');
  const headers = ['cache-control', 'public, max-age=60', 'vary', resHeaders.vary, 'content-length', '4'];
  const body = Buffer.from('body');
  return {
    key: 'http://app.example/p', varyNames: names, varyValues: values, status: 200, headers, body, policy,
    freshness: admission.freshness, keepUntil: admission.keepUntil, tags: [], fence: 3, incarnation: 'i1', etag: undefined, lastModified: undefined,
    source: EntrySource.local, fillSeq: 0, size: entrySize('http://app.example/p', headers, 4, names, values), softPurged: false,
  };
}

t.test('fill meta - no cookie, API key or peer signature in the encoded fill', async (t) => {
  const keys = new SecondaryKey(randomBytes(32));
  const entry = entryFor(keys);
  const bytes = Buffer.from(encodeFillPayload({ partition: 1, subjectKey: 'k', meta: encodeFillMeta(entry), body: entry.body }));
  const text = bytes.toString('latin1');
  for (const secret of ['COOKIE-SECRET-1', 'APIKEY-SECRET-2', 'SIGNATURE-3', 'NONCE-4', 'CLUSTER-NAME-5', 'member-a', 'x-sidecache-ts', 'x-sidecache-from']) {
    t.equal(text.includes(secret), false, `no ${secret}`);
  }
  t.equal(text.includes('app.example"'), false, 'not even the Host');
  t.equal(text.includes('"de"'), true, 'a field that is no credential is kept as it was sent');
  t.equal(bytes[0], FILL_VERSION);
  const meta = JSON.parse(Buffer.from(decodeFill(1, 'k', bytes, false).meta).toString()) as { varyNames: string[]; varyValues: string[] };
  t.ok(keys.matches(meta.varyNames, meta.varyValues, objectView, upstreamRequestHeaders(REQUEST, '10.0.0.7', DROP)),
    'the published key still matches the same request under the cluster key');
  t.notOk(keys.matches(meta.varyNames, meta.varyValues, objectView, upstreamRequestHeaders({ ...REQUEST, cookie: 'sid=other' }, '10.0.0.7', DROP)),
    "and not another client's");
});

t.test('fill meta - the secondary key is charged to the entry', async (t) => {
  const entry = entryFor(new SecondaryKey(randomBytes(32)));
  t.ok(entry.size > entrySize(entry.key, entry.headers, entry.body.length), 'more than key, headers and body');
});

t.test('fill meta - a fill of another version is refused with both versions named', async (t) => {
  const bytes = encodeFillPayload({ partition: 1, subjectKey: 'k', meta: new Uint8Array(2), body: new Uint8Array(0) });
  bytes[0] = 1;
  t.throws(() => decodeFill(1, 'k', bytes, false), { message: new RegExp(`expected version ${FILL_VERSION}, got version 1`) });
});

t.test('fill meta - decoded as encoded; every malformed field refused with its name, never stored', async (t) => {
  const entry = entryFor(new SecondaryKey(randomBytes(32)));
  const bytes = encodeFillMeta(entry);
  const meta = decodeFillMeta(bytes);
  t.same({ ...meta, policyObject: undefined }, { ...JSON.parse(Buffer.from(bytes).toString()), policyObject: undefined }, 'round trip');
  t.ok(meta.policyObject.satisfiesWithoutRevalidation !== undefined, 'the policy loads');
  const good = JSON.parse(Buffer.from(bytes).toString()) as Record<string, unknown>;
  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['key', { key: 7 }, /key: expected a string/],
    ['vary names', { varyNames: 'cookie' }, /varyNames: expected/],
    ['vary values one short', { varyValues: (good.varyValues as string[]).slice(1) }, /varyValues: expected \d+ values/],
    ['status', { status: 99 }, /status: expected 200 to 599/],
    ['headers odd', { headers: ['a'] }, /headers: expected name\/value pairs/],
    ['freshness', { freshness: { ...(good.freshness as object), freshUntil: 'later' } }, /freshUntil: expected a number/],
    ['freshness missing', { freshness: null }, /freshness: expected an object/],
    ['keepUntil', { keepUntil: null }, /keepUntil: expected a number/],
    ['tags', { tags: [1] }, /tags: expected/],
    ['fence', { fence: -1 }, /fence: expected an integer >= 0/],
    ['incarnation', { incarnation: undefined }, /incarnation: expected a string/],
    ['version', { v: 2 }, /expected version v=3/],
    ['policy', { policy: 'x' }, /policy: expected an object/],
  ];
  for (const [what, change, message] of bad) {
    const data = Buffer.from(JSON.stringify({ ...good, ...change }));
    let caught: unknown;
    try {
      decodeFillMeta(data);
    } catch (err) {
      caught = err;
    }
    t.ok(caught instanceof SidecacheError && message.test(caught.message), `${what}: ${(caught as Error | undefined)?.message ?? 'accepted'}`);
  }
  t.throws(() => decodeFillMeta(Buffer.from('not json')), /expected UTF-8 JSON/, 'not JSON');
});

t.test('fills - variants of one key that vary on different fields have different subjects, even with equal values', async (t) => {
  const k = 'http://app.example/p';
  const a = variantSubjectKey(k, ['accept-language', 'x-forwarded-host', 'x-forwarded-proto'], ['en', '', '']);
  const b = variantSubjectKey(k, ['accept-encoding', 'x-forwarded-host', 'x-forwarded-proto'], ['en', '', '']);
  t.not(a, b, 'FILLS compaction keeps both');
  t.equal(a, variantSubjectKey(k, ['accept-language', 'x-forwarded-host', 'x-forwarded-proto'], ['en', '', '']), 'stable');
  t.not(variantSubjectKey(k, null, []), a);
  t.ok(sameVariant({ varyNames: ['a'], varyValues: ['1'] }, { varyNames: ['a'], varyValues: ['1'] }));
  t.notOk(sameVariant({ varyNames: ['a'], varyValues: ['1'] }, { varyNames: ['b'], varyValues: ['1'] }), 'names matter to replicas too');
});
