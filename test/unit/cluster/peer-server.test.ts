// The peer port's refusal log: bounded per reason and window, whatever the request rate.
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import t from 'tap';
import { RefusalLog } from '../../../src/cluster/peer-server.js';

function capture(): { lines: Array<Record<string, unknown>>; logger: Logger } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({ write(chunk, _enc, done) { lines.push(JSON.parse(String(chunk))); done(); } });
  return { lines, logger: pino({ level: 'warn' }, sink) };
}

t.test('peer server - refusals are logged at most once per reason per window, with the unlogged count', async (t) => {
  const { lines, logger } = capture();
  const log = new RefusalLog(logger, 10_000);
  const t0 = 1_700_000_000_000;
  for (let i = 0; i < 1_000; i++) log.note('wrong-cluster', '10.0.0.1', t0 + i);
  for (let i = 0; i < 10; i++) log.note('stale', '10.0.0.2', t0 + i);
  log.note('wrong-cluster', '10.0.0.1', t0 + 10_000);
  await new Promise((r) => setImmediate(r));
  t.same(lines.map((l) => [l.reason, l.unloggedBefore]), [['wrong-cluster', 0], ['stale', 0], ['wrong-cluster', 999]]);
  t.equal(lines[0]!.msg, 'peer request refused');
});
