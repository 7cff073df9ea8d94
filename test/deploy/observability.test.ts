// deploy/grafana-dashboard.json and deploy/prometheus-alerts.yaml: every query parses as PromQL
// (Prometheus's own grammar, @prometheus-io/lezer-promql) and every metric it names is one a
// live cluster sidecar exports on /metrics.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parser } from '@prometheus-io/lezer-promql';
import t, { type Test } from 'tap';
import { parse } from 'yaml';
import { startCluster, uniqueCluster } from '../../support/cluster.js';
import { startNats } from '../../support/nats-server.js';
import { startOrigin } from '../../support/origin.js';
import { ROOT } from '../helpers/deploy-files.js';

interface Query { readonly where: string; readonly expr: string }

/** The metric names a PromQL expression selects, and its syntax errors. Grafana's interval
 *  variables ($__rate_interval) stand for a duration; $job and the like sit inside strings. */
function metricsOf(expr: string): { names: string[]; errors: string[] } {
  const text = expr.replace(/\$__\w+/g, '5m');
  const names: string[] = [];
  const errors: string[] = [];
  parser.parse(text).iterate({
    enter(node) {
      if (node.type.isError) errors.push(`syntax error at ${node.from}: "${text.slice(node.from, node.from + 20)}"`);
      if (node.name === 'VectorSelector') {
        const id = node.node.getChild('Identifier');
        if (id !== null) names.push(text.slice(id.from, id.to));
      }
    },
  });
  return { names, errors };
}

/** Every query of the dashboard: panel targets, and the selectors of label_values() variables. */
function dashboardQueries(): Query[] {
  const dash = JSON.parse(readFileSync(join(ROOT, 'deploy', 'grafana-dashboard.json'), 'utf8')) as {
    panels: Array<{ title: string; targets?: Array<{ expr: string }>; panels?: unknown[] }>;
    templating: { list: Array<{ name: string; type: string; query?: { query: string } }> };
  };
  const out: Query[] = [];
  for (const p of dash.panels) for (const target of p.targets ?? []) out.push({ where: `panel "${p.title}"`, expr: target.expr });
  for (const v of dash.templating.list.filter((v) => v.type === 'query')) {
    const m = /^label_values\((.*),\s*\w+\)$/.exec(v.query!.query);
    if (m === null) throw new Error(`variable ${v.name}: not label_values(selector, label): ${v.query!.query}`);
    out.push({ where: `variable ${v.name}`, expr: m[1]! });
  }
  return out;
}

interface Rule { alert: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }
const rules = (parse(readFileSync(join(ROOT, 'deploy', 'prometheus-alerts.yaml'), 'utf8')) as { groups: Array<{ rules: Rule[] }> })
  .groups.flatMap((g) => g.rules);

/** Names /metrics declares (# TYPE), with a histogram's _bucket, _sum and _count series. */
function exportedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m;
    names.add(name!);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name! + s);
  }
  return names;
}

const nats = await startNats({ nodes: 1 });
t.teardown(() => nats.stop());
const origin = await startOrigin();
t.teardown(() => origin.close());
// A cluster member, so the cluster's own series are there as they are in production.
const { sidecars: [sc] } = await startCluster(1, { natsUrls: nats.urls, upstream: origin.url, cluster: uniqueCluster('obs') });
t.teardown(() => sc!.stop());
await fetch(`${sc!.url}/a`).then((r) => r.text());
await fetch(`${sc!.url}/a`).then((r) => r.text());
const exported = exportedNames(await (await fetch(`${sc!.adminUrl}/metrics`)).text());

function checkQueries(t: Test, queries: readonly Query[]): void {
  const named = new Set<string>();
  for (const q of queries) {
    const { names, errors } = metricsOf(q.expr);
    t.same(errors, [], `${q.where}: parses: ${q.expr}`);
    t.ok(names.length > 0, `${q.where}: names a metric`);
    for (const n of names) named.add(n);
    t.same(names.filter((n) => !exported.has(n)), [], `${q.where}: every metric is exported`);
  }
  t.ok(named.size > 0);
}

t.test('observability - the sidecar exports the metrics, and the check can fail', async (t) => {
  t.ok(exported.has('sidecache_requests_total'));
  t.ok(exported.has('sidecache_log_attached'), 'a cluster series');
  t.ok(exported.has('sidecache_request_duration_seconds_bucket'), 'a histogram\'s buckets');
  t.same(metricsOf('rate(sidecache_nonexistent_total[$__rate_interval])').names, ['sidecache_nonexistent_total']);
  t.notOk(exported.has('sidecache_nonexistent_total'));
  t.not(metricsOf('sum(rate(sidecache_requests_total[5m])').errors.length, 0, 'a missing parenthesis is a syntax error');
});

t.test('observability - every dashboard query parses and names exported metrics', async (t) => {
  const queries = dashboardQueries();
  t.ok(queries.length >= 20, `${queries.length} queries`);
  checkQueries(t, queries);
});

t.test('observability - every alert rule parses, names exported metrics, and says what to do', async (t) => {
  checkQueries(t, rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })));
  for (const r of rules) {
    t.match(r, { alert: /^Sidecache[A-Z]\w+$/, labels: { severity: /^(warning|critical)$/ }, annotations: { summary: String, description: String } }, r.alert);
    if (r.for !== undefined) t.match(r.for, /^\d+[smh]$/, `${r.alert}: for`);
  }
  // The conditions an operator must act on, by the metric each is read from.
  const uses = (metric: string) => rules.filter((r) => metricsOf(r.expr).names.includes(metric)).map((r) => r.alert);
  t.same(uses('sidecache_log_applied_seq'), ['SidecachePurgesNotAcknowledged']);
  t.same(uses('sidecache_log_gaps_total'), ['SidecacheLogGap']);
  t.same(uses('sidecache_degraded_fetches_total'), ['SidecacheDegradedFetches']);
  t.same(uses('sidecache_log_attached'), ['SidecacheDetachedFromNats']);
});
