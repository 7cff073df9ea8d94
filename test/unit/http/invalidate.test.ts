// Invalidation by unsafe methods (RFC 9111 §4.4): which answers invalidate, and what.
import t from 'tap';
import { invalidatesOnResponse, relatedTargets, SAFE_METHODS } from '../../../src/http/invalidate.js';

t.test('invalidate - a non-error answer to any method not known to be safe invalidates (§4.4)', async (t) => {
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE', 'MKCOL', 'PROPPATCH', 'LOCK', 'UNLOCK', 'COPY', 'MOVE', 'PURGE', 'LINK', 'BIND']) {
    for (const status of [200, 201, 204, 301, 303, 399]) t.ok(invalidatesOnResponse(method, status), `${method} ${status}`);
    for (const status of [100, 199, 400, 404, 409, 500, 503]) t.notOk(invalidatesOnResponse(method, status), `${method} ${status}: an error or interim answer`);
  }
  for (const method of ['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', 'REPORT', 'SEARCH', 'QUERY']) {
    t.ok(SAFE_METHODS.has(method), method);
    t.notOk(invalidatesOnResponse(method, 200), `${method}: safe`);
  }
  t.ok(invalidatesOnResponse('get', 200), 'methods are case-sensitive (RFC 9110 §9.1): "get" is not GET');
});

t.test('invalidate - Location and Content-Location of the same origin only', async (t) => {
  t.same(relatedTargets('http://a.example', '/x', '/y', 'http://a.example/z?q'), [
    { keyOrigin: 'http://a.example', target: '/y' },
    { keyOrigin: 'http://a.example', target: '/z?q' },
  ]);
  t.same(relatedTargets('http://a.example', '/x', 'http://b.example/y', undefined), [], 'another host');
  t.same(relatedTargets('http://a.example', '/x', '%zz', undefined), [], 'a malformed reference names nothing');
});
