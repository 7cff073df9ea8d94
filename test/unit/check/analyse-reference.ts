// What the checker's analysis looks up in a history, found as first written (before
// check/analyse.ts was indexed): every purge, bump and origin response scanned for each
// question. The verdicts themselves (check/verdict.ts) are shared, so this is the oracle for
// exactly what the indexes changed. Quadratic, so only for small histories.
import type { Anomaly, Bounds, HistoryData } from '../../../check/analyse.js';
import type { PurgeOp } from '../../../check/history.js';
import { keysOfPurge } from '../../../check/origin.js';
import { judge, type Lookups } from '../../../check/verdict.js';

function scanning(h: HistoryData): Lookups {
  // Purges that returned, latest first: the most recent one a read breaks makes the smallest slice.
  const purges = h.ops.filter((o): o is PurgeOp => o.type === 'purge' && o.status === 200 && o.end !== undefined && o.seq !== undefined)
    .sort((x, y) => y.end! - x.end!);
  const purgeKeys = new Map(purges.map((p) => [p.id, new Set(keysOfPurge(p.body as Parameters<typeof keysOfPurge>[0]))]));
  return {
    purgesBefore: (op) => purges.filter((p) => p.end! < op.start && purgeKeys.get(p.id)!.has(op.key)),
    acknowledged: (member, by, orAt, after) =>
      purges.find((p) => (p.acknowledged?.includes(member) ?? false) && p.start > after && (orAt ? p.end! <= by : p.end! < by)),
    versionAt: (key, t) => {
      let v = 1;
      for (const x of h.bumps) if (x.key === key && x.at <= t) v = Math.max(v, x.version);
      return v;
    },
    confirmed: (key, version, from, to) =>
      h.origin.some((r) => r.key === key && r.version === version && (r.status === 200 || r.status === 304) &&
        r.receivedAt >= from && r.sentAt !== undefined && r.sentAt <= to),
    receivedWithin: (key, from, to) => h.origin.filter((r) => r.key === key && r.receivedAt >= from && r.receivedAt <= to),
  };
}

export function analyseReference(h: HistoryData, b: Bounds): Anomaly[] {
  return judge(h, b, scanning(h));
}
