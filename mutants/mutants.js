// The promises sidecache makes, each with the smallest change that breaks it and the tests that
// must catch that change. `find` must stand exactly once in `file` (source, not built output:
// unit tests load the TypeScript, process tests the build made from it).
export const MUTANTS = [
  {
    name: 'purge-answers-at-once',
    promise: 'read-your-purge: a purge returns only after every active member applied it',
    edits: [{
      file: 'src/admin/server.ts',
      find: 'await d.log.waitApplied(seq, d.config.purgeTimeoutMs)',
      replace: '{ acknowledged: d.log.view.members.map((m) => m.id), missing: [] as string[] }',
    }],
    tests: [{ file: 'test/integration/cluster-read-your-purge.test.ts', grep: 'url' }],
  },
  {
    name: 'fill-without-fence-check',
    promise: 'no resurrection: a fill older than a matching invalidation is never stored',
    edits: [{
      file: 'src/store/cache.ts',
      find: 'if (this.isInvalidatedSince(entry)) return false;',
      replace: '',
    }],
    tests: [{ file: 'test/integration/cluster-invalidation.test.ts', grep: 'no resurrection' }],
  },
  {
    name: 'gap-detection-off',
    promise: 'no silent gap: a member that finds the log no longer holds what it missed flushes',
    edits: [{
      file: 'src/log/nats/stream-check.ts',
      find: '#checkGapWith(info: StreamInfo, sameStream: boolean, when: string): boolean {',
      replace: '#checkGapWith(info: StreamInfo, sameStream: boolean, when: string): boolean {\n    if (Math.random() >= 0) return false;',
    }],
    tests: [{ file: 'test/integration/log-nats-gap.test.ts', grep: 'gap - a member restarted' }],
  },
  {
    name: 'lease-off',
    promise: 'a member cut off from NATS stops trusting its cache before its peers drop it',
    edits: [{
      file: 'src/log/nats/membership/lease.ts',
      find: 'mustRevalidate(): boolean {',
      replace: 'mustRevalidate(): boolean {\n    if (Math.random() >= 0) return false;',
    }],
    tests: [{ file: 'test/integration/cluster-nats-trouble.test.ts', grep: 'cut off from NATS' }],
  },
  {
    name: 'behind-bound-off',
    promise: 'a member whose invalidations stop arriving while it stays attached stops trusting its cache after SIDECACHE_MAX_STALE_DETACHED',
    edits: [{
      file: 'src/sidecar.ts',
      find: ' ||\n        this.log.behindMs() > config.maxStaleDetachedMs,',
      replace: ',',
    }],
    tests: [{ file: 'test/integration/cluster-nats-trouble.test.ts', grep: 'invalidations stop arriving' }],
  },
  {
    name: 'join-without-replay',
    promise: 'handoff before cutover: a joining member replays its partitions before it is active',
    edits: [{
      file: 'src/cluster/node.ts',
      find: "if (this.#d.config.handoff && gaining.size > 0) await this.#replay(gaining, 'join');",
      replace: '',
    }],
    tests: [{ file: 'test/integration/cluster-membership.test.ts', grep: 'lags' }],
  },
  {
    name: 'peer-signature-unchecked',
    promise: 'the peer port accepts only signed requests of the same cluster',
    edits: [{
      file: 'src/cluster/peer-auth.ts',
      find: 'if (given.length !== expected.length || !timingSafeEqual(given, expected)) {',
      replace: 'if (given.length !== expected.length && !timingSafeEqual(given, given)) {',
    }],
    tests: [{ file: 'test/unit/cluster/peer-auth.test.ts' }],
  },
  {
    name: 'peer-tls-no-client-certificate',
    promise: 'the peer port on TLS serves only callers with a certificate of the cluster\'s CA',
    edits: [{
      file: 'src/cluster/peer-server.ts',
      find: 'requestCert: true, rejectUnauthorized: true,',
      replace: 'requestCert: false, rejectUnauthorized: false,',
    }],
    tests: [{ file: 'test/integration/cluster-tls.test.ts', grep: 'refuses plaintext' }],
  },
  {
    name: 'peer-tls-unverified',
    promise: 'a sidecar on peer TLS sends requests only to peers whose certificate the cluster\'s CA signed',
    edits: [{
      file: 'src/cluster/peers.ts',
      find: 'ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: true,',
      replace: 'ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: false,',
    }],
    tests: [{ file: 'test/integration/cluster-tls.test.ts', grep: 'cannot be verified' }],
  },
  {
    name: 'allow-list-unchecked',
    promise: 'forward mode serves only allowed hosts: never an open proxy',
    edits: [{
      file: 'src/proxy/recv.ts',
      find: 'const h = host.toLowerCase();',
      replace: 'const h = host.toLowerCase();\n  if (Math.random() >= 0) return true;',
    }],
    tests: [{ file: 'test/integration/standalone-forward.test.ts', grep: 'not allowed' }],
  },
  {
    name: 'set-cookie-stored',
    promise: 'nothing private is shared: a response with Set-Cookie is never stored',
    edits: [{
      file: 'src/http/storable.ts',
      find: "if (res.headers['set-cookie'] !== undefined) return { storable: false, reason: 'set-cookie' };",
      replace: '',
    }],
    tests: [{ file: 'test/integration/standalone-caching-storage.test.ts', grep: 'Set-Cookie' }],
  },
  {
    name: 'variants-unbounded',
    promise: 'a key keeps at most SIDECACHE_MAX_VARIANTS Vary variants, the least recently used evicted',
    edits: [{
      file: 'src/store/memory.ts',
      find: 'while (slots.length >= this.#maxVariants) {',
      replace: 'while (slots.length >= Infinity) {',
    }],
    tests: [{ file: 'test/integration/standalone-bounds.test.ts', grep: 'variants' }],
  },
  {
    name: 'inval-history-unbounded',
    promise: 'the invalidation history stays within SIDECACHE_INVAL_HISTORY_BYTES',
    edits: [{
      file: 'src/store/cache.ts',
      find: 'while (this.historyBytes > this.#historyMaxBytes) {',
      replace: 'while (this.historyBytes > Infinity) {',
    }],
    tests: [{ file: 'test/integration/standalone-bounds.test.ts', grep: 'history' }],
  },
  {
    name: 'forgotten-invalidation-admits-old-fills',
    promise: 'no resurrection past the history bound: a fill fenced before a forgotten invalidation is refused',
    edits: [{
      file: 'src/store/history.ts',
      find: 'if (seq > this.#floor) this.#floor = seq;',
      replace: '',
    }],
    tests: [{ file: 'test/unit/store/cache.test.ts' }],
  },
  {
    name: 'inval-stream-unbounded',
    promise: 'INVAL is bounded in bytes, and what the bound discards is a gap, never a silent loss',
    edits: [{
      file: 'src/log/nats/provision.ts',
      find: "{ field: 'max_bytes', value: o.invalMaxBytes ?? -1, critical: false },",
      replace: '',
    }],
    tests: [{ file: 'test/integration/log-nats-gap.test.ts', grep: 'INVAL is bounded' }],
  },
  {
    name: 'set-cookie-kept-on-304',
    promise: 'nothing private is shared: a 304 that sets a cookie refreshes the stored entry without it',
    edits: [{
      file: 'src/http/storable.ts',
      find: "const NEVER_STORED: ReadonlySet<string> = new Set(['set-cookie']);",
      replace: 'const NEVER_STORED: ReadonlySet<string> = new Set<string>();',
    }],
    tests: [{ file: 'test/integration/standalone-stored.test.ts', grep: 'set-cookie on a 304' }],
  },
  {
    name: 'request-head-in-fills',
    promise: 'nothing private is shared: no client credential or peer signature is published in a fill',
    edits: [{
      file: 'src/proxy/admit.ts',
      find: 'newPolicy(policyRequestOf(target.path, names, values, authorized),',
      replace: "newPolicy({ method: 'GET', url: target.path, headers: req.headers as Record<string, string> },",
    }],
    tests: [{ file: 'test/integration/cluster-private.test.ts', grep: 'holds no cookie' }],
  },
  {
    name: 'hot-copy-own-fence',
    promise: 'read-your-purge: a copy fetched from a peer is fenced with the seq its source had applied, not ours',
    edits: [{
      file: 'src/proxy/admit.ts',
      find: 'const fence = !viaPeer ? ownFence : storable ? this.#peerFence(headers) : undefined;',
      replace: 'const fence = !viaPeer ? ownFence : storable ? ownFence : undefined;',
    }],
    tests: [{ file: 'test/integration/cluster-fences.test.ts', grep: 'hot copy' }],
  },
  {
    name: 'refresh-takes-peer-fence',
    promise: 'no resurrection: a 304 from a peer ahead on INVAL does not keep our body past a hard purge we have not applied yet',
    edits: [{
      file: 'src/proxy/admit.ts',
      find: ': { incarnation: own.incarnation, seq: Math.min(own.seq, fence.seq) };',
      replace: ': { incarnation: own.incarnation, seq: Math.max(own.seq, fence.seq) };',
    }],
    tests: [{ file: 'test/integration/cluster-fences.test.ts', grep: '304 after a hard purge' }],
  },
  {
    name: 'peer-copy-predating-purge-served',
    promise: 'read-your-purge: a member that applied a purge does not pass on an owner\'s copy fenced before it (the owner lagging or listed as missing)',
    edits: [{
      file: 'src/proxy/admit.ts',
      find: 'if (viaPeer && fence !== undefined && fence.incarnation === s.log.incarnation &&',
      replace: 'if (Math.random() < 0 && viaPeer && fence !== undefined && fence.incarnation === s.log.incarnation &&',
    }],
    tests: [{ file: 'test/integration/cluster-fences.test.ts', grep: 'listed as missing' }],
  },
  {
    name: 'fence-ignores-incarnation',
    promise: 'no resurrection across an INVAL stream reset: a fence counts only in the stream it was taken in',
    edits: [{
      file: 'src/store/cache.ts',
      find: 'if (entry.incarnation !== this.#incarnation()) return true;',
      replace: '',
    }, {
      file: 'src/cluster/node.ts',
      find: 'if (meta.incarnation !== this.#d.log.incarnation) {',
      replace: 'if (meta.incarnation === undefined) {',
    }],
    tests: [{ file: 'test/integration/cluster-fences.test.ts', grep: 'reset' }],
  },
  {
    name: 'join-before-catch-up',
    promise: 'a joining member applies the retained invalidations before it replays and serves fills',
    edits: [{
      file: 'src/cluster/node.ts',
      find: 'const caughtUp = await this.#d.log.catchUp();',
      replace: 'const caughtUp = this.#d.log.appliedSeq;',
    }],
    tests: [{ file: 'test/integration/cluster-join.test.ts', grep: 'applies the retained' }],
  },
  {
    name: 'lapsed-lease-serves-swr',
    promise: 'a member whose lease lapsed or that was dropped serves no stale-while-revalidate entry unasked',
    edits: [{
      file: 'src/proxy/lookup.ts',
      find: 'if (this.#mustRevalidateAll?.() === true) return Verdict.stale;',
      replace: 'if (v === Verdict.fresh && this.#mustRevalidateAll?.() === true) return Verdict.stale;',
    }],
    tests: [
      { file: 'test/unit/proxy/pipeline.test.ts', grep: 'may not trust its cache' },
      { file: 'test/integration/cluster-nats-trouble.test.ts', grep: 'stale-while-revalidate' },
    ],
  },
  {
    name: 'stale-copy-to-peer-as-304',
    promise: 'an owner never confirms a stale copy to a peer with a 304 (the peer would take it as revalidated)',
    edits: [{
      file: 'src/proxy/deliver.ts',
      find: '!(toPeer && (entry.softPurged || verdictOf(entry.freshness, now) !== Verdict.fresh))',
      replace: '!(toPeer && verdictOf(entry.freshness, now) === undefined)',
    }],
    tests: [{ file: 'test/unit/proxy/deliver.test.ts' }],
  },
  {
    name: 'waiter-gets-other-variant',
    promise: 'a request never gets another Vary variant than its own, collapsed or not',
    edits: [{
      file: 'src/proxy/fetch.ts',
      find: 'if (settled.varyNames === null || this.#p.secondary.matches(settled.varyNames, settled.varyValues, asFetched, req)) {',
      replace: 'if (settled.varyNames !== undefined || this.#p.secondary.matches(settled.varyNames, settled.varyValues, asFetched, req)) {',
    }],
    tests: [
      { file: 'test/unit/proxy/pipeline.test.ts', grep: 'another Vary variant' },
      { file: 'test/integration/standalone-collapse.test.ts' },
    ],
  },
  {
    name: 'untrusted-joins-earlier-fetch',
    promise: 'read-your-purge at a member that may have missed a purge (dropped, detached, behind): it answers from no fetch that began before the request (found by the 30-minute checker run, seed 100)',
    edits: [{
      file: 'src/proxy/fetch.ts',
      find: 'const existing = x.res === undefined || alone || untrusted ? undefined : this.#p.flights.get(x.key);',
      replace: 'const existing = x.res === undefined || alone ? undefined : this.#p.flights.get(x.key);',
    }],
    tests: [{ file: 'test/unit/proxy/pipeline.test.ts', grep: 'joins no fetch under way' }],
  },
  {
    name: 'write-invalidation-forgotten',
    promise: 'a write invalidation the log cannot take is kept and published later, never dropped',
    edits: [{
      file: 'src/cluster/write-queue.ts',
      find: "'invalidation after a write could not reach the log; queued until it can');\n      this.#enqueue(inval);",
      replace: "'invalidation after a write could not reach the log; queued until it can');",
    }],
    tests: [{ file: 'test/integration/cluster-write-queue.test.ts', grep: 'writes' }],
  },
  {
    name: 'reset-stream-ack-counted',
    promise: 'read-your-purge across an INVAL reset: an ack counted in the old stream\'s numbering is no ack',
    edits: [{
      file: 'src/log/nats/acks.ts',
      find: 'return a !== undefined && a.seq >= seq && a.seq <= this.#state.knownLastSeq();',
      replace: 'return a !== undefined && a.seq >= seq;',
    }, {
      file: 'src/log/nats/inval-publish.ts',
      find: 'if (seq <= state.appliedSeq && appliedAs !== seq) {',
      replace: 'if (seq < 0) {',
    }],
    tests: [{ file: 'test/integration/log-nats-gap.test.ts', grep: 'no ack' }],
  },
  {
    name: 'drained-serves-unrevalidated',
    promise: 'read-your-purge at a drained member: purges no longer wait for it, so it serves nothing it has not revalidated with an owner',
    edits: [{
      file: 'src/sidecar.ts',
      find: 'mustRevalidateAll: () => this.log.mustRevalidate() || this.#draining ||',
      replace: 'mustRevalidateAll: () => this.log.mustRevalidate() ||',
    }],
    tests: [{ file: 'test/integration/cluster-drain.test.ts', grep: 'lags' }],
  },
];
