// The time freshness and age are decided by (RFC 9111 §4.2): the proxy and the store read it
// through a Clock, so tests can run the request path against a clock they move by hand.

/** Wall-clock time in epoch-ms. */
export interface Clock {
  now(): number;
}

/** The system clock: Date.now(). */
export const systemClock: Clock = { now: Date.now };
