// Request smuggling and malformed framing over raw sockets. Each request is one an attacker
// would send to make the sidecar and the origin disagree on where a request ends; the user
// must see a 400 for it, the origin must never see the request hidden inside it, and the
// sidecar must go on serving.
import t from 'tap';
import { startOrigin, type TestOrigin } from '../../support/origin.js';
import { parseResponse, rawExchange } from '../helpers/raw-http.js';
import { startSidecar, waitFor, type SidecarProcess } from '../../support/sidecar.js';

let origin: TestOrigin;
let sc: SidecarProcess;
let port: number;

t.before(async () => {
  origin = await startOrigin();
  sc = await startSidecar({ env: { SIDECACHE_UPSTREAM: origin.url } });
  port = Number(new URL(sc.url).port);
});
t.teardown(async () => {
  await sc.stop();
  await origin.close();
});

/** The request each case hides; the test gives every case its own path, so counts never mix. */
const SMUGGLED = 'GET /smuggled-0 HTTP/1.1\r\nHost: x\r\n\r\n';

/** name, raw bytes: each must be refused with 400 as a whole. A body whose framing breaks
 *  only after its head (a bad chunk) may already be on its way to the origin when the error
 *  is found: that request must then be cut, never completed. */
const HOSTILE: ReadonlyArray<readonly [string, string] | readonly [string, string, 'cut']> = [
  ['CL and TE together', `POST /h HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`],
  ['TE then CL', `POST /h HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n${SMUGGLED}`],
  ['two different Content-Lengths', `POST /h HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 38\r\n\r\n${SMUGGLED}`],
  ['a Content-Length list', `POST /h HTTP/1.1\r\nHost: x\r\nContent-Length: 0, 38\r\n\r\n${SMUGGLED}`],
  ['a signed Content-Length', `POST /h HTTP/1.1\r\nHost: x\r\nContent-Length: +38\r\n\r\n${SMUGGLED}`],
  ['a negative Content-Length', `POST /h HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n${SMUGGLED}`],
  ['a Content-Length with letters', `POST /h HTTP/1.1\r\nHost: x\r\nContent-Length: 3a\r\n\r\n${SMUGGLED}`],
  ['TE with a space before the colon', `POST /h HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${SMUGGLED}`],
  ['TE chunked not last', `POST /h HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${SMUGGLED}`],
  ['an unknown TE', `POST /h HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${SMUGGLED}`],
  ['TE folded onto the next line', `POST /h HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`],
  ['an obs-fold header', `GET /h HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n${SMUGGLED}`],
  ['a chunk size that is not hex', `POST /h HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n${SMUGGLED}`, 'cut'],
  ['a chunk size past 64 bits', `POST /h HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1${'0'.repeat(17)}\r\nhello\r\n0\r\n\r\n${SMUGGLED}`, 'cut'],
  ['a chunk extension with a bare CR', `POST /h HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\rc\r\nhello\r\n0\r\n\r\n${SMUGGLED}`, 'cut'],
  ['a chunk without its CRLF', `POST /h HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n${SMUGGLED}`, 'cut'],
  ['a NUL in the path', `GET /h\0x HTTP/1.1\r\nHost: x\r\n\r\n${SMUGGLED}`],
  ['a CR in a header value', `GET /h HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n${SMUGGLED}`],
  ['a NUL in a header value', `GET /h HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n${SMUGGLED}`],
  ['a space in a header name', `GET /h HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n${SMUGGLED}`],
  ['a bare LF ending a header line', `GET /h HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n${SMUGGLED}`],
  ['a request line with bare LF', `GET /h HTTP/1.1\nHost: x\r\n\r\n${SMUGGLED}`],
  ['two Host fields', `GET /h HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n${SMUGGLED}`],
  ['HTTP/1.1 without Host', `GET /h HTTP/1.1\r\nX-A: b\r\n\r\n${SMUGGLED}`],
];

for (const [i, [name, raw, cut]] of HOSTILE.entries()) {
  t.test(`smuggling - ${name}: 400, and the hidden request never reaches the origin`, async (t) => {
    const before = origin.requests.length;
    const got = await rawExchange(port, raw.replaceAll('/smuggled-0 ', `/smuggled-${i + 1} `), 3_000);
    const r = parseResponse(got);
    t.equal(r.status, 400, 'refused as a whole');
    t.notOk(/HTTP\/1\.1 200/.test(r.rest.toString('latin1')), 'no second response on the connection');
    t.equal(origin.count(`/smuggled-${i + 1}`), 0, 'nothing smuggled through');
    const seen = origin.requests.slice(before);
    if (cut === undefined) t.same(seen.map((q) => q.url), [], 'the origin saw nothing of it');
    else {
      t.ok(seen.every((q) => q.url === '/h'), 'the origin saw at most the head of the request');
      await waitFor(() => seen.every((q) => q.socket.destroyed), 5_000, 'the connection to the origin to be cut');
      t.ok(seen.every((q) => !q.complete), 'and never a complete request');
    }
    const alive = await fetch(`${sc.url}/alive-${name.replace(/\W+/g, '-')}`);
    t.equal(alive.status, 200, 'still serving');
    await alive.text();
  });
}

t.test('smuggling - pipelined garbage after a good request: the good one is served, the rest refused', async (t) => {
  const before = origin.requests.length;
  const got = await rawExchange(port, `GET /pipelined-ok HTTP/1.1\r\nHost: x\r\n\r\n\x01\x02GARBAGE /x HTTP/7\r\n\r\nGET /smuggled-p HTTP/1.1\r\nHost: x\r\n\r\n`, 3_000);
  const first = parseResponse(got);
  t.equal(first.status, 200);
  // Node answers garbage with 400 when no response is pending, and closes the connection
  // when one is: either way nothing after the garbage is read as a request.
  t.notOk(/^HTTP\/1\.1 [23]/.test(first.rest.toString('latin1')), 'nothing after the garbage is answered as a request');
  t.same(origin.requests.slice(before).map((q) => q.url), ['/pipelined-ok'], 'the origin saw only the good request');
});

t.test('smuggling - a body on a GET is not a second request', async (t) => {
  // A "fat GET": its body is framed by Content-Length and never read as the next request.
  const before = origin.requests.length;
  const body = 'GET /smuggled-f HTTP/1.1\r\nHost: x\r\n\r\n';
  const got = await rawExchange(port, `GET /fat-get HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`, 3_000);
  t.equal(parseResponse(got).status, 200);
  t.equal(origin.count('/smuggled-f'), 0, 'the body was not taken for a request');
  t.equal(origin.count('/fat-get'), 1);
});
