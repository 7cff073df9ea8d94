// Appending an invalidation to INVAL: one message id for every retry (a publish that timed out
// may have been stored), retried through a leader election, and a seq that looks reused checked
// for a stream reset before anyone's acknowledgement of it counts.

import { nuid } from '@nats-io/transport-node';
import { logError, redactCredentials } from '../../core/errors.js';
import type { Invalidation } from '../../core/types.js';
import { encodeInvalidation } from '../codec.js';
import { describeError, isRetryable, sleep, type Runtime } from './runtime.js';
import type { LogState } from './state.js';
import type { StreamCheck } from './stream-check.js';

const INVAL_ATTEMPT_TIMEOUT_MS = 2_000;
const INVAL_RETRY_WAIT_MS = 100;

/** `afterBan`: a purge-all was stored (fills.ts empties FILLS). */
export async function publishInvalidation(
  rt: Runtime,
  state: LogState,
  check: StreamCheck,
  afterBan: () => Promise<void>,
  inval: Invalidation,
): Promise<number> {
  const js = rt.js;
  if (!rt.started || rt.closing || js === undefined) {
    throw logError('invalidate: the NATS log is not running');
  }
  if (!rt.attached) {
    throw logError(`NATS is unreachable (${rt.opts.servers.map(redactCredentials).join(', ')}): the invalidation was not logged`);
  }
  const data = encodeInvalidation(inval);
  // One msgID for every retry: a publish that timed out may have been stored, and the
  // retry must then come back as a duplicate with the same seq (§6, §8).
  const msgID = `${rt.self.id}-${nuid.next()}`;
  const budgetMs = rt.opts.invalidateTimeoutMs ?? 10_000;
  const deadline = Date.now() + budgetMs;
  let lastErr: unknown;
  let seq: number | undefined;
  for (let attempt = 0; ; attempt++) {
    const remaining = deadline - Date.now();
    if (remaining <= 0 || rt.closing) break;
    try {
      const ack = await js.publish(rt.names.invalSubject, data, {
        msgID,
        timeout: Math.max(100, Math.min(INVAL_ATTEMPT_TIMEOUT_MS, remaining)),
      });
      if (attempt > 0) rt.log.info({ attempt, seq: ack.seq, duplicate: ack.duplicate }, 'invalidation stored after retry');
      seq = ack.seq;
      break;
    } catch (err) {
      lastErr = err;
      if (!isRetryable(err)) {
        throw logError(`cannot log the invalidation on ${rt.names.invalStream}: ${describeError(err)}`, err);
      }
      const wait = Math.min(INVAL_RETRY_WAIT_MS, deadline - Date.now());
      if (wait > 0) await sleep(wait);
    }
  }
  if (seq === undefined) {
    throw logError(
      `cannot log the invalidation on ${rt.names.invalStream} within ${budgetMs} ms ` +
        `(NATS unreachable or no stream leader): ${describeError(lastErr)}`,
      lastErr,
    );
  }
  // A seq at or below one we applied cannot be new in the stream we know, unless it is this
  // very message, already applied by our consumer (with others after it, when publishes
  // run concurrently): the stream was reset (perhaps recreated from a copy of its
  // configuration, which the id does not show). Find out before anyone's acknowledgement of
  // this seq is counted; if we cannot, the caller must not report it.
  const appliedAs = state.ownApplied.get(msgID);
  state.ownApplied.delete(msgID);
  if (seq <= state.appliedSeq && appliedAs !== seq) {
    try {
      await check.checkGap('publish');
    } catch (err) {
      throw logError(`the invalidation was stored at seq ${seq}, but whether ${rt.names.invalStream} was reset could not be checked: ${describeError(err)}`, err);
    }
  }
  state.publishedSeq = Math.max(state.publishedSeq, seq);
  state.backlog.learn(seq, state.appliedSeq, performance.now());
  if (inval.kind === 'all' && inval.soft !== true) await afterBan();
  return seq;
}
