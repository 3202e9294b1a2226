/**
 * The Grafana dashboard (charts/perfcatch/dashboards/perfcatch.json) against the real agent.
 *
 * Every PromQL expression in it (panel targets and variable queries) is parsed by a small
 * PromQL parser (test/harness/promql.ts) and checked against a live /metrics scrape of the
 * real agent watching a real server: each metric name must be a series the agent exports, each label in a matcher,
 * by(), without(), on() or a legend must be on that metric (or on what the expression leaves),
 * rate() only over counters, histogram_quantile() only over _bucket series grouped by `le`,
 * one-to-one binary operations only between equal label sets. `namespace` and `pod` are the
 * documented Kubernetes-only labels: absent on a plain host, so they may only be used with
 * `=~` (the variables' "All" is `.*`, which also matches series without the label).
 * Renaming a metric or a label in the agent fails this test.
 *
 * Then the scrapes are loaded into a real VictoriaMetrics and every panel query, with the
 * Grafana variables at "All", must return data.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { ROOT, startAgent, type RunningAgent } from '../harness/agent.ts';
import { waitFor } from '../harness/ports.ts';
import { getRequest, RawHttpClient } from '../harness/raw-client.ts';
import { startNodeServer } from '../harness/runtimes.ts';
import { Checker, K8S_LABELS, parseScrape, Parser, PromQLError, type Scrape, type Use } from '../harness/promql.ts';
import { startVictoriaMetrics, type RunningVictoriaMetrics } from '../harness/victoria-metrics.ts';

const DASHBOARD_PATH = `${ROOT}charts/perfcatch/dashboards/perfcatch.json`;
const SERVICE = 'dashboard-svc';
const VARIABLES = ['datasource', 'namespace', 'application', 'pod', 'correlation_id'];

// ---------------------------------------------------------------------------------------------
// The dashboard

interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  description?: string;
  datasource?: { type?: string; uid?: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Target[];
  links?: { title: string; url: string }[];
}
interface Variable {
  name: string;
  type: string;
  query?: string | { query: string };
  multi?: boolean;
  includeAll?: boolean;
  allValue?: string | null;
  datasource?: { type?: string; uid?: string };
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  templating: { list: Variable[] };
  panels: Panel[];
}

const dashboard = JSON.parse(readFileSync(DASHBOARD_PATH, 'utf8')) as Dashboard;
const variables = new Map(dashboard.templating.list.map((v) => [v.name, v]));
const variableInfo = new Map([...variables].map(([name, v]) => [name, { multi: v.multi === true, includeAll: v.includeAll === true }]));
const queryOf = (v: Variable): string => (typeof v.query === 'string' ? v.query : (v.query?.query ?? ''));
const panelQueries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p, target: t })));
const variableQueries = dashboard.templating.list.filter((v) => v.type === 'query');

/** Checks one panel expression; returns the checker's errors and the labels it leaves. */
function checkPanelExpr(scrape: Scrape, expr: string): { errors: string[]; labels: Set<string>; checker: Checker } {
  const checker = new Checker(scrape, variableInfo);
  try {
    const v = checker.check(new Parser(expr).parseAll());
    if (v.type !== 'vector' && v.type !== 'scalar') checker.errors.push(`the query yields a ${v.type}`);
    return { errors: checker.errors, labels: v.labels, checker };
  } catch (err) {
    if (!(err instanceof PromQLError)) throw err;
    return { errors: [err.message], labels: new Set(), checker };
  }
}

function checkVariableQuery(scrape: Scrape, query: string): { errors: string[]; checker: Checker } {
  const checker = new Checker(scrape, variableInfo);
  try {
    const { selector, label } = new Parser(query).parseLabelValues();
    if (selector.kind !== 'selector' || selector.range !== null) return { errors: ['label_values needs a plain selector'], checker };
    const v = checker.check(selector);
    checker.uses.push({ metric: selector.metric, label, op: 'label_values' });
    if (!v.labels.has(label)) checker.errors.push(`label_values: ${label} is not on ${selector.metric}`);
    return { errors: checker.errors, checker };
  } catch (err) {
    if (!(err instanceof PromQLError)) throw err;
    return { errors: [err.message], checker };
  }
}

/** Grafana's interpolation with every variable at "All" (its allValue), for a real TSDB. */
function interpolate(expr: string, rateInterval: string): string {
  return expr.replace(/\$(__rate_interval|__interval|__range|\w+)/g, (whole, name: string) => {
    if (name.startsWith('__')) return rateInterval;
    const v = variables.get(name);
    assert.ok(v?.includeAll && v.allValue, `$${name} has no All value`);
    return v.allValue!;
  });
}

// ---------------------------------------------------------------------------------------------

async function drive(port: number, n: number): Promise<void> {
  const client = new RawHttpClient(port);
  for (let i = 0; i < n; i++) {
    const status = i % 5 === 0 ? 500 : i % 7 === 0 ? 404 : 200;
    await client.request(getRequest(`/orders/${1000 + i}?status=${status}`, { 'X-Correlation-ID': `dash-${i}` }));
  }
  await client.close();
}

describe('Grafana dashboard against the real agent', () => {
  let agent: RunningAgent;
  let server: Awaited<ReturnType<typeof startNodeServer>>;
  let vm: RunningVictoriaMetrics;
  let firstScrape = '';
  let scrapeText = '';
  let scrape: Scrape;

  const requestsOf = (text: string) =>
    [...text.matchAll(/^perfcatch_requests_total\{.*\bservice="dashboard-svc".*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);

  before(async () => {
    server = await startNodeServer({ OTEL_SERVICE_NAME: SERVICE });
    agent = await startAgent(['--ports', String(server.port)]);
    await drive(server.port, 30);
    firstScrape = await waitFor('30 requests in /metrics', async () => {
      const text = await agent.metrics();
      return requestsOf(text) >= 30 ? text : undefined;
    });
    await drive(server.port, 30);
    scrapeText = await waitFor('60 requests in /metrics', async () => {
      const text = await agent.metrics();
      return requestsOf(text) >= 60 ? text : undefined;
    });
    scrape = parseScrape(scrapeText);
  });

  after(async () => {
    await vm?.stop();
    await agent?.stop();
    await server?.stop();
  });

  it('has the title, uid, the five variables and exactly eight panels', () => {
    assert.equal(dashboard.title, 'PerfCatch - eBPF Request Metrics');
    assert.equal(dashboard.uid, 'perfcatch');
    assert.ok(dashboard.schemaVersion >= 36 && dashboard.schemaVersion <= 41, `schemaVersion ${dashboard.schemaVersion}`);
    assert.deepEqual(dashboard.templating.list.map((v) => v.name), VARIABLES);
    assert.equal(variables.get('datasource')!.type, 'datasource');
    assert.equal(queryOf(variables.get('datasource')!), 'prometheus');
    assert.equal(variables.get('correlation_id')!.type, 'textbox');
    for (const name of ['namespace', 'application', 'pod']) {
      const v = variables.get(name)!;
      assert.equal(v.type, 'query', name);
      assert.equal(v.includeAll, true, `${name} has All`);
      assert.equal(v.allValue, '.*', `${name}'s All is .* (matches series without the label too)`);
      assert.equal(v.datasource?.uid, '${datasource}', name);
    }
    assert.match(queryOf(variables.get('application')!), /, service\)$/, 'application is the service label');

    assert.equal(dashboard.panels.length, 8);
    assert.ok(dashboard.panels.every((p) => p.type !== 'row'), 'no rows');
    assert.equal(new Set(dashboard.panels.map((p) => p.id)).size, 8, 'distinct panel ids');
    for (const p of dashboard.panels) {
      assert.ok(p.targets && p.targets.length > 0, `${p.title} has queries`);
      assert.equal(p.datasource?.uid, '${datasource}', `${p.title} uses the datasource variable`);
      for (const t of p.targets) {
        assert.equal(t.datasource?.uid, '${datasource}', `${p.title}/${t.refId}`);
        assert.ok(typeof t.expr === 'string' && t.expr.length > 0, `${p.title}/${t.refId} has an expr`);
      }
      assert.equal(new Set(p.targets.map((t) => t.refId)).size, p.targets.length, `${p.title}: distinct refIds`);
    }
    // No two panels overlap on the 24-column grid.
    for (const a of dashboard.panels) {
      assert.ok(a.gridPos.x >= 0 && a.gridPos.x + a.gridPos.w <= 24, `${a.title} fits the grid`);
      for (const b of dashboard.panels) {
        if (a === b) continue;
        const overlap = a.gridPos.x < b.gridPos.x + b.gridPos.w && b.gridPos.x < a.gridPos.x + a.gridPos.w && a.gridPos.y < b.gridPos.y + b.gridPos.h && b.gridPos.y < a.gridPos.y + a.gridPos.h;
        assert.ok(!overlap, `${a.title} overlaps ${b.title}`);
      }
    }
  });

  it('the request table points at the agent API for single requests by correlation ID', () => {
    const table = dashboard.panels.filter((p) => p.type === 'table');
    assert.equal(table.length, 1);
    const text = `${table[0]!.description ?? ''}\n${(table[0]!.links ?? []).map((l) => l.url).join('\n')}`;
    assert.match(text, /\/api\/requests\?correlation_id=\$\{correlation_id(:\w+)?\}/);
    for (const t of table[0]!.targets!) assert.match(t.expr, /\bby \((le, )?service, route, method, status_class\)/, t.expr);
  });

  it('every metric, label and value in every query is one the live agent exports', () => {
    const errors: string[] = [];
    const metrics = new Set<string>();
    const uses: Use[] = [];
    for (const { panel, target } of panelQueries) {
      const r = checkPanelExpr(scrape, target.expr);
      errors.push(...r.errors.map((e) => `${panel.title}/${target.refId}: ${e}`));
      r.checker.metrics.forEach((m) => metrics.add(m));
      uses.push(...r.checker.uses);
      // A legend may only name labels the query leaves.
      for (const [, label] of (target.legendFormat ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)) {
        if (!r.labels.has(label!)) errors.push(`${panel.title}/${target.refId}: legend {{${label}}} is not a label of the result`);
      }
    }
    for (const v of variableQueries) {
      const r = checkVariableQuery(scrape, queryOf(v));
      errors.push(...r.errors.map((e) => `variable ${v.name}: ${e}`));
      r.checker.metrics.forEach((m) => metrics.add(m));
      uses.push(...r.checker.uses);
    }
    assert.deepEqual(errors, [], `\n${errors.join('\n')}`);

    // The Kubernetes-only labels: only ever regex-matched (or asked for by label_values).
    const k8s = uses.filter((u) => K8S_LABELS.has(u.label));
    assert.ok(k8s.length > 0);
    for (const u of k8s) assert.ok(u.op === '=~' || u.op === 'label_values', `${u.label} used with ${u.op} on ${u.metric}`);

    // Every family the panels are meant to show is really queried.
    for (const m of [
      'perfcatch_requests_total',
      'perfcatch_request_duration_ms_bucket',
      'perfcatch_request_duration_ms_sum',
      'perfcatch_request_duration_ms_count',
      'perfcatch_request_cpu_ms_bucket',
      'perfcatch_request_cpu_ms_sum',
      'perfcatch_request_cpu_ms_count',
      'perfcatch_request_bytes_received_total',
      'perfcatch_request_bytes_sent_total',
      'perfcatch_records_lost_total',
      'perfcatch_spans_dropped_total',
      'perfcatch_buffer_size',
      'perfcatch_buffer_capacity',
    ]) {
      assert.ok(metrics.has(m), `the dashboard queries ${m}`);
    }
  });

  it('the checker rejects what it should (it is not a pass-everything regex)', () => {
    const bad = [
      'rate(perfcatch_request_total[5m])', // renamed metric
      'sum by (servce) (rate(perfcatch_requests_total[5m]))', // label typo in by()
      'perfcatch_requests_total{servce=~".*"}', // label typo in a matcher
      'perfcatch_requests_total{namespace="default"}', // Kubernetes label with =
      'perfcatch_requests_total{service="$application"}', // multi/All variable with =
      'perfcatch_requests_total{service=~"$nope"}', // not a dashboard variable
      'perfcatch_requests_total{status_class="5XX"}', // a value the agent never exports
      'histogram_quantile(0.9, sum by (service) (rate(perfcatch_request_duration_ms_bucket[5m])))', // no le
      'histogram_quantile(0.9, sum by (le) (rate(perfcatch_request_duration_ms_sum[5m])))', // not _bucket
      'rate(perfcatch_buffer_size[5m])', // rate of a gauge
      'rate(perfcatch_requests_total)', // instant vector into rate
      'sum(rate(perfcatch_requests_total[5m])', // unbalanced
      'sum by (service) (rate(perfcatch_requests_total[5m])) / sum by (route) (rate(perfcatch_requests_total[5m]))', // label sets differ
      'foo_rate(perfcatch_requests_total[5m])', // unknown function
      'rate(perfcatch_requests_total[$oops])', // bad range
      'rate(perfcatch_requests_total[5m:1m])', // subquery
      'perfcatch_requests_total{service=~"x"', // unterminated selector
      'perfcatch_requests_total offset 5m', // unsupported: reported, not skipped
      'sum(perfcatch_requests_total) by', // dangling by
    ];
    for (const q of bad) assert.notDeepEqual(checkPanelExpr(scrape, q).errors, [], `accepted: ${q}`);
    assert.notDeepEqual(checkVariableQuery(scrape, 'label_values(perfcatch_requests_total, servce)').errors, []);
    assert.notDeepEqual(checkVariableQuery(scrape, 'label_values(perfcatch_buffer_size, service)').errors, []);
    // And accepts correct PromQL it was not written for.
    const good = [
      'sum without (port, process) (rate(perfcatch_requests_total{method!="OTHER"}[1m30s]))',
      'topk(3, sum by (route) (increase(perfcatch_requests_total{status_class=~"4xx|5xx"}[1h])))',
      '-1 * sum(perfcatch_buffer_size) + 2 ^ 3 ^ 2 > bool 0',
      'sum by (service, route) (rate(perfcatch_requests_total[5m])) / on (service) group_left sum by (service) (rate(perfcatch_requests_total[5m]))',
    ];
    for (const q of good) assert.deepEqual(checkPanelExpr(scrape, q).errors, [], q);
  });

  it('every panel query returns data from the agent scrapes in a real TSDB (VictoriaMetrics), variables at All', async () => {
    vm = await startVictoriaMetrics();
    // Two scrapes 30 s apart in stored time, well behind now (VictoriaMetrics hides the last 30 s).
    const t1 = Math.floor(Date.now() / 1000) - 180;
    const t2 = t1 + 30;
    for (const [text, t] of [[firstScrape, t1], [scrapeText, t2]] as const) {
      const body = text
        .split('\n')
        .map((l) => (l.startsWith('#') || l.trim() === '' ? l : `${l} ${t * 1000}`))
        .join('\n');
      const res = await fetch(`${vm.url}/api/v1/import/prometheus`, { method: 'POST', body });
      assert.equal(res.status, 204, await res.text());
    }
    for (const { panel, target } of panelQueries) {
      const expr = interpolate(target.expr, '1m');
      const { result } = await vm.query(expr, t2);
      assert.ok(result.length > 0, `${panel.title}/${target.refId} returned nothing: ${expr}`);
      for (const r of result) assert.ok(Number.isFinite(Number(r.value[1])), `${panel.title}/${target.refId}: ${r.value[1]}`);
    }
    // Spot-check values: 60 requests, 12 of them 5xx, 30 in the last 30 s.
    const errorRate = dashboard.panels.find((p) => /error/i.test(p.title))!.targets![0]!;
    const er = await vm.query(interpolate(errorRate.expr, '1m'), t2);
    const ours = er.result.find((r) => r.metric.service === SERVICE);
    assert.ok(ours, `error rate of ${SERVICE}`);
    assert.ok(Math.abs(Number(ours.value[1]) - 6 / 30) < 1e-9, `error rate ${ours.value[1]} = 6/30`);
    const rate = await vm.query(interpolate(dashboard.panels[0]!.targets![0]!.expr, '1m'), t2);
    assert.ok(rate.result.some((r) => r.metric.service === SERVICE && Number(r.value[1]) > 0), 'request rate of the service');
    // Variable queries as Grafana's Prometheus datasource runs them (series API).
    for (const v of variableQueries) {
      const [, selector, label] = /^label_values\((.*),\s*(\w+)\)$/.exec(queryOf(v)) ?? [];
      assert.ok(selector && label, queryOf(v));
      const match = interpolate(selector, '1m');
      const q = new URLSearchParams({ 'match[]': match, start: String(t1 - 60), end: String(t2 + 60) });
      const res = await fetch(`${vm.url}/api/v1/label/${label}/values?${q}`);
      assert.equal(res.status, 200);
      const values = ((await res.json()) as { data: string[] }).data;
      if (label === 'service') assert.ok(values.includes(SERVICE), `$${v.name} offers ${SERVICE}: ${values.join(', ')}`);
      else assert.ok(Array.isArray(values));
    }
  });
});
