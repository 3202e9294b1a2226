import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hrTime, hrTimeToNanoseconds } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type HistogramMetricData,
  type MetricData,
} from '@opentelemetry/sdk-metrics';
import { AgentMetrics, MAX_ROUTES_PER_SERVICE, PROMETHEUS_CONTENT_TYPE } from '../../src/metrics/agent-metrics.ts';
import { lossesByStage } from '../../src/metrics/loss-stages.ts';
import { RequestMetricsProducer } from '../../src/metrics/request-metrics.ts';
import { CPU_BUCKETS_MS, CPU_BUCKETS_S, DURATION_BUCKETS_MS, HTTP_DURATION_BUCKETS_S, HttpSeriesTable, RequestSeriesTable } from '../../src/metrics/request-series.ts';
import type { AgentCounters, PipelineCounters, RequestRecord } from '../../src/types.ts';
import { sampleRecord } from './sample-record.ts';

function record(overrides: Partial<RequestRecord>): RequestRecord {
  return sampleRecord({
    request_id: 'r',
    trace_id: 'a'.repeat(32),
    span_id: 'b'.repeat(16),
    timestamp: 1_800_000_000,
    pid: 42,
    remote_ip: '10.0.0.2',
    remote_port: 51000,
    duration_ms: 12,
    cpu_time_ms: 1.5,
    memory_rss_bytes: 1,
    bytes_received: 300,
    bytes_sent: 5000,
    correlation_id: 'corr-secret',
    http_path: '/users/12345?token=secret',
    route: '/users/{id}',
    ...overrides,
  });
}

const agentCounters: AgentCounters = {
  frames_decoded: 100,
  frames_malformed: 2,
  requests_recorded: 90,
  requests_not_http: 1,
  data_orphaned: 3,
  dependencies_recorded: 5,
  dependencies_late: 1,
  dependencies_orphaned: 0,
  links_made: 2,
  links_timed_out: 0,
  requests_updated: 0,
  storage_dropped: 0,
  storage_write_errors: 0,
  remote_write_dropped: 0,
  restart_in_flight_lost: 0,
  span_export_retries: 0,
  spans_started: 90,
  spans_exported: 80,
  spans_export_failed: 4,
  spans_dropped: 5,
  spans_sampled_out: 12,
  loader_restarts: 1,
};

const counters: PipelineCounters = {
  kernel: { requests: 95, rb_drop_request: 6, rb_drop_data: 7, conn_accepted: 11, conn_table_full: 8, capture_shed: 9, conn_filtered: 0, conn_replaced: 0 },
  loader: { records_out: 200, malformed: 10, drains: 50 },
  agent: agentCounters,
};

function agentMetrics(pipeline: PipelineCounters = counters): AgentMetrics {
  return new AgentMetrics({ counters: () => pipeline, buffer: () => ({ size: 90, capacity: 50000 }) });
}

async function render(records: RequestRecord[], pipeline: PipelineCounters = counters): Promise<string> {
  const metrics = agentMetrics(pipeline);
  for (const r of records) metrics.recordRequest(r);
  const { contentType, body } = await metrics.renderPrometheus();
  assert.equal(contentType, PROMETHEUS_CONTENT_TYPE);
  await metrics.shutdown();
  return body;
}

/** Metric family names declared by `# TYPE` lines, with their type. */
function families(text: string): Map<string, string> {
  return new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
}

function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  assert.ok(line, `no sample for ${series}`);
  return Number(line.slice(series.length + 1));
}

describe('AgentMetrics', () => {
  it('exposes exactly the documented metric names and types', async () => {
    const text = await render([record({})]);
    assert.deepEqual(
      Object.fromEntries(families(text)),
      {
        perfcatch_requests_total: 'counter',
        perfcatch_request_duration_ms: 'histogram',
        perfcatch_request_cpu_ms: 'histogram',
        perfcatch_request_bytes_received_total: 'counter',
        perfcatch_request_bytes_sent_total: 'counter',
        http_server_request_duration: 'histogram',
        perfcatch_http_server_request_cpu_time: 'histogram',
        perfcatch_records_lost_total: 'counter',
        perfcatch_spans_exported_total: 'counter',
        perfcatch_spans_failed_total: 'counter',
        perfcatch_span_export_retries_total: 'counter',
        perfcatch_spans_dropped_total: 'counter',
        perfcatch_spans_sampled_out_total: 'counter',
        perfcatch_loader_restarts_total: 'counter',
        perfcatch_kernel_requests_total: 'counter',
        perfcatch_connections_accepted_total: 'counter',
        perfcatch_buffer_size: 'gauge',
        perfcatch_buffer_capacity: 'gauge',
      },
    );
  });

  it('uses the documented bucket boundaries', async () => {
    const text = await render([record({})]);
    const bounds = (name: string) => [
      ...new Set([...text.matchAll(new RegExp(`^${name}_bucket\\{.*le="([^"]+)"\\}`, 'gm'))].map((m) => m[1])),
    ];
    assert.deepEqual(bounds('perfcatch_request_duration_ms'), ['1', '2', '5', '10', '25', '50', '100', '250', '500', '1000', '2500', '5000', '10000', '+Inf']);
    assert.deepEqual(bounds('perfcatch_request_cpu_ms'), ['0.5', '1', '2', '5', '10', '25', '50', '100', '250', '500', '1000', '+Inf']);
    // Bytes are counters (totals per label set), not histograms: see AgentMetrics.
    assert.equal(sample(text, 'perfcatch_request_bytes_sent_total{service="checkout",process="node",port="8080",method="GET",status_class="2xx",route="/users/{id}"}'), 5000);
  });

  it('labels requests with bounded values only', async () => {
    const text = await render([
      record({}),
      record({ http_method: 'get' }),
      record({ http_method: 'BREW', http_status: 418, duration_ms: 3000 }),
      record({ http_method: null, http_status: null, service_name: 'redis', process_name: 'redis-server', local_port: 6379, route: null }),
      record({ namespace: 'shop', pod_name: 'checkout-7d9f' }),
    ]);
    const labels = 'service="checkout",process="node",port="8080"';
    const r = 'route="/users/{id}"';
    assert.equal(sample(text, `perfcatch_requests_total{${labels},method="GET",status_class="2xx",${r}}`), 2);
    assert.equal(sample(text, `perfcatch_requests_total{${labels},method="OTHER",status_class="4xx",${r}}`), 1);
    assert.equal(
      sample(text, 'perfcatch_requests_total{service="redis",process="redis-server",port="6379",method="OTHER",status_class="none",route="none"}'),
      1,
    );
    assert.equal(sample(text, `perfcatch_requests_total{${labels},method="GET",status_class="2xx",${r},namespace="shop",pod="checkout-7d9f"}`), 1);
    assert.equal(sample(text, `perfcatch_request_duration_ms_bucket{${labels},method="OTHER",status_class="4xx",${r},le="2500"}`), 0);
    assert.equal(sample(text, `perfcatch_request_duration_ms_bucket{${labels},method="OTHER",status_class="4xx",${r},le="5000"}`), 1);
    assert.equal(sample(text, `perfcatch_request_cpu_ms_sum{${labels},method="GET",status_class="2xx",${r}}`), 3);

    for (const leaked of ['12345', 'token', 'secret', '10.0.0.2', 'BREW']) assert.ok(!text.includes(leaked), leaked);
    const labelNames = new Set([...text.matchAll(/[{,]([a-z_]+)="/g)].map((m) => m[1]));
    assert.deepEqual([...labelNames].sort(), [
      'http_request_method', 'http_response_status_code', 'le', 'method', 'namespace', 'pod', 'port', 'process', 'route', 'service',
      'service_name', 'stage', 'status_class', 'url_scheme',
    ]);
  });

  it('aggregates histograms per label set, with inclusive upper bounds', async () => {
    const text = await render([
      record({ duration_ms: 10, cpu_time_ms: 0.5 }),
      record({ duration_ms: 10.5, cpu_time_ms: 0.25 }),
      record({ duration_ms: 20000, cpu_time_ms: 2000 }),
      // Dropped by the histograms, as the SDK's did, but still a request.
      record({ duration_ms: -1, cpu_time_ms: -1 }),
      record({ http_status: 500, duration_ms: 1, cpu_time_ms: 1 }),
    ]);
    const ok = 'service="checkout",process="node",port="8080",method="GET",status_class="2xx",route="/users/{id}"';
    const failed = ok.replace('2xx', '5xx');
    assert.equal(sample(text, `perfcatch_requests_total{${ok}}`), 4);
    assert.equal(sample(text, `perfcatch_request_duration_ms_count{${ok}}`), 3);
    assert.equal(sample(text, `perfcatch_request_duration_ms_sum{${ok}}`), 20020.5);
    const durationBucket = (le: string) => sample(text, `perfcatch_request_duration_ms_bucket{${ok},le="${le}"}`);
    assert.deepEqual(['5', '10', '25', '10000', '+Inf'].map(durationBucket), [0, 1, 2, 2, 3]);
    const cpuBucket = (le: string) => sample(text, `perfcatch_request_cpu_ms_bucket{${ok},le="${le}"}`);
    assert.deepEqual(['0.5', '1', '1000', '+Inf'].map(cpuBucket), [2, 2, 2, 3]);
    assert.equal(sample(text, `perfcatch_request_duration_ms_count{${failed}}`), 1);
    assert.equal(sample(text, `perfcatch_request_duration_ms_bucket{${failed},le="1"}`), 1);
    assert.equal(sample(text, `perfcatch_request_cpu_ms_sum{${failed}}`), 1);
  });

  it('reports nothing per request before the first one', async () => {
    const names = [...families(await render([])).keys()];
    assert.deepEqual(names.filter((n) => n.startsWith('perfcatch_request')), []);
  });

  it('keeps counting across scrapes (cumulative, not reset by a collection)', async () => {
    const metrics = agentMetrics();
    const series = 'service="checkout",process="node",port="8080",method="GET",status_class="2xx",route="/users/{id}"';
    metrics.recordRequest(record({}));
    const first = (await metrics.renderPrometheus()).body;
    metrics.recordRequest(record({ duration_ms: 30 }));
    const second = (await metrics.renderPrometheus()).body;
    await metrics.shutdown();
    assert.equal(sample(first, `perfcatch_requests_total{${series}}`), 1);
    assert.equal(sample(second, `perfcatch_requests_total{${series}}`), 2);
    assert.equal(sample(second, `perfcatch_request_duration_ms_sum{${series}}`), 42);
    assert.equal(sample(second, `perfcatch_request_bytes_received_total{${series}}`), 600);
  });

  it('caps distinct routes per service', async () => {
    const many = Array.from({ length: MAX_ROUTES_PER_SERVICE + 20 }, (_, i) => record({ route: `/page-${i}` }));
    const text = await render(many);
    const routes = new Set([...text.matchAll(/perfcatch_requests_total\{[^}]*route="([^"]+)"/g)].map((m) => m[1]));
    assert.equal(routes.size, MAX_ROUTES_PER_SERVICE + 1);
    assert.ok(routes.has('other'));
    assert.equal(sample(text, 'perfcatch_requests_total{service="checkout",process="node",port="8080",method="GET",status_class="2xx",route="other"}'), 20);
  });

  it('/metrics and /health list the same loss stages, with the same counts', async () => {
    const text = await render([]);
    const fromMetrics = Object.fromEntries(
      [...text.matchAll(/^perfcatch_records_lost_total\{stage="([^"]+)"\} (\S+)$/gm)].map((m) => [m[1]!, Number(m[2])]),
    );
    assert.deepEqual(fromMetrics, lossesByStage(counters)); // /health's `lost` is lossesByStage
    assert.ok(Object.keys(fromMetrics).length >= 10, 'every stage is listed, not only those with losses');
  });

  it('HTTP/2 streams ended in gaps reach /metrics and /health (the loss-stage table)', async () => {
    const withH2: PipelineCounters = { ...counters, h2: { streamsGapped: 9, streamsEndedInGaps: 7 } };
    const text = await render([], withH2);
    assert.equal(sample(text, 'perfcatch_records_lost_total{stage="agent_h2_streams_ended_in_gaps"}'), 7);
    assert.equal(lossesByStage(withH2).agent_h2_streams_ended_in_gaps, 7);
    assert.equal(lossesByStage(counters).agent_h2_streams_ended_in_gaps, 0, 'listed before any HTTP/2');
  });

  it('reports pipeline counters and buffer fill', async () => {
    const text = await render([]);
    const lost = (stage: string) => sample(text, `perfcatch_records_lost_total{stage="${stage}"}`);
    assert.equal(lost('kernel_ringbuf_request'), 6);
    assert.equal(lost('kernel_ringbuf_data'), 7);
    assert.equal(lost('kernel_conn_table_full'), 8);
    assert.equal(lost('kernel_capture_shed'), 9);
    assert.equal(lost('pipe_malformed'), 10);
    assert.equal(lost('agent_malformed'), 2);
    assert.equal(lost('agent_data_orphaned'), 3);
    assert.equal(sample(text, 'perfcatch_spans_exported_total'), 80);
    assert.equal(sample(text, 'perfcatch_spans_failed_total'), 4);
    assert.equal(sample(text, 'perfcatch_spans_dropped_total'), 5);
    assert.equal(sample(text, 'perfcatch_spans_sampled_out_total'), 12);
    assert.equal(sample(text, 'perfcatch_loader_restarts_total'), 1);
    assert.equal(sample(text, 'perfcatch_kernel_requests_total'), 95);
    assert.equal(sample(text, 'perfcatch_connections_accepted_total'), 11);
    assert.equal(sample(text, 'perfcatch_buffer_size'), 90);
    assert.equal(sample(text, 'perfcatch_buffer_capacity'), 50000);
  });

  it('reports zero for kernel and loader counters not yet received', async () => {
    const text = await render([], { kernel: {}, loader: {}, agent: agentCounters });
    assert.equal(sample(text, 'perfcatch_records_lost_total{stage="kernel_ringbuf_request"}'), 0);
    assert.equal(sample(text, 'perfcatch_records_lost_total{stage="pipe_malformed"}'), 0);
    assert.equal(sample(text, 'perfcatch_kernel_requests_total'), 0);
  });
});

describe('RequestMetricsProducer', () => {
  /** A push reader like --otlp-metrics' one, exporting to memory, beside a second reader. */
  async function exportOnce(table: RequestSeriesTable, http = new HttpSeriesTable()): Promise<MetricData[]> {
    const producer = new RequestMetricsProducer(table, http);
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const push = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000, metricProducers: [producer] });
    const other = new PeriodicExportingMetricReader({
      exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
      exportIntervalMillis: 60_000,
      metricProducers: [producer],
    });
    const provider = new MeterProvider({ readers: [push, other], resource: resourceFromAttributes({ 'service.name': 'perfcatch-agent' }) });
    await other.forceFlush();
    await push.forceFlush();
    // Copied before shutdown, which exports (into the same array) once more.
    const exported = [...exporter.getMetrics()];
    await provider.shutdown();
    for (const { resource } of exported) assert.equal(resource.attributes['service.name'], 'perfcatch-agent');
    return exported.flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics));
  }

  it('hands push readers the same cumulative histograms and counters', async () => {
    const table = new RequestSeriesTable();
    const before = hrTimeToNanoseconds(hrTime());
    for (const duration_ms of [0.5, 3, 3, 700]) table.record(record({ duration_ms, cpu_time_ms: duration_ms / 10 }));
    table.record(record({ namespace: 'shop', pod_name: 'checkout-1', duration_ms: 9, cpu_time_ms: 4 }));

    const metrics = (await exportOnce(table)).filter((m) => m.descriptor.name.startsWith('perfcatch_'));
    assert.deepEqual(
      metrics.map((m) => [m.descriptor.name, m.dataPointType, m.aggregationTemporality]),
      [
        ['perfcatch_requests', DataPointType.SUM, AggregationTemporality.CUMULATIVE],
        ['perfcatch_request_bytes_received', DataPointType.SUM, AggregationTemporality.CUMULATIVE],
        ['perfcatch_request_bytes_sent', DataPointType.SUM, AggregationTemporality.CUMULATIVE],
        ['perfcatch_request_duration_ms', DataPointType.HISTOGRAM, AggregationTemporality.CUMULATIVE],
        ['perfcatch_request_cpu_ms', DataPointType.HISTOGRAM, AggregationTemporality.CUMULATIVE],
      ],
    );
    const requests = metrics[0]!;
    assert.ok(requests.dataPointType === DataPointType.SUM && requests.isMonotonic);
    assert.deepEqual(requests.dataPoints.map((p) => p.value), [4, 1]);

    const duration = metrics[3] as HistogramMetricData;
    const [plain, inPod] = duration.dataPoints;
    assert.ok(plain && inPod);
    assert.deepEqual(plain.attributes, { service: 'checkout', process: 'node', port: '8080', method: 'GET', status_class: '2xx', route: '/users/{id}' });
    assert.deepEqual(inPod.attributes, { ...plain.attributes, namespace: 'shop', pod: 'checkout-1' });
    assert.deepEqual(plain.value, {
      buckets: { boundaries: DURATION_BUCKETS_MS, counts: [1, 0, 2, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0] },
      count: 4,
      sum: 706.5,
      min: 0.5,
      max: 700,
    });
    const cpu = metrics[4] as HistogramMetricData;
    assert.deepEqual(cpu.dataPoints[1]!.value.buckets, { boundaries: CPU_BUCKETS_MS, counts: [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0] });

    // Cumulative since the series appeared, up to the collection.
    const start = hrTimeToNanoseconds(plain.startTime);
    assert.ok(start >= before && start <= hrTimeToNanoseconds(plain.endTime));
    assert.ok(hrTimeToNanoseconds(inPod.startTime) >= start);
  });

  it('exports nothing before the first request', async () => {
    assert.deepEqual(await exportOnce(new RequestSeriesTable()), []);
  });
});

describe('standard HTTP metrics (semantic conventions)', () => {
  const dependency = (status: number, duration_ms: number) => ({
    timestamp: 1, peer_ip: '10.9.9.9', peer_port: 5432, new_connection: false, connect_ms: null, duration_ms,
    bytes_sent: 1, bytes_received: 1, http_method: 'POST', http_path: '/pay', http_status: status, caller_attribution: 'exact' as const, span_id: 'c'.repeat(16),
  });

  it('http.server.request.duration and the CPU histogram: seconds, advised buckets, stable attributes', async () => {
    const http = new HttpSeriesTable();
    for (const duration_ms of [3, 60, 60, 12000]) http.record(record({ duration_ms, cpu_time_ms: duration_ms / 4 }));
    http.record(record({ http_status: 503, duration_ms: 1, cpu_time_ms: 1 }));
    http.record(record({ http_method: 'BREW', http_status: null, duration_ms: 1, cpu_time_ms: 1, dependencies: [dependency(404, 30), dependency(404, 70), dependency(200, 1)] }));
    const producer = new RequestMetricsProducer(new RequestSeriesTable(), http);
    const { resourceMetrics } = await producer.collect();
    const metrics = new Map(resourceMetrics.scopeMetrics[0]!.metrics.map((m) => [m.descriptor.name, m as HistogramMetricData]));
    const server = metrics.get('http.server.request.duration')!;
    assert.equal(server.descriptor.unit, 's');
    assert.deepEqual(server.dataPoints.map((p) => p.attributes), [
      { 'service.name': 'checkout', 'http.request.method': 'GET', 'url.scheme': 'http', 'http.response.status_code': 200 },
      { 'service.name': 'checkout', 'http.request.method': 'GET', 'url.scheme': 'http', 'http.response.status_code': 503, 'error.type': '503' },
      { 'service.name': 'checkout', 'http.request.method': '_OTHER', 'url.scheme': 'http' },
    ]);
    const ok = server.dataPoints[0]!.value;
    assert.deepEqual(ok.buckets.boundaries, HTTP_DURATION_BUCKETS_S);
    assert.deepEqual(HTTP_DURATION_BUCKETS_S, [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]);
    //                                     0.005 0.01 .025 .05 .075 0.1 ...                      10  +Inf
    assert.deepEqual(ok.buckets.counts, [1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert.equal(ok.sum, 12.123);
    const cpu = metrics.get('perfcatch.http.server.request.cpu_time')!;
    assert.equal(cpu.descriptor.unit, 's');
    assert.deepEqual(cpu.dataPoints[0]!.value.buckets.boundaries, CPU_BUCKETS_S);
    assert.equal(cpu.dataPoints[0]!.value.count, 4);
    assert.equal(cpu.dataPoints[0]!.value.max, 3);
    const client = metrics.get('http.client.request.duration')!;
    assert.deepEqual(client.dataPoints.map((p) => [p.attributes, p.value.count]), [
      [{ 'service.name': 'checkout', 'http.request.method': 'POST', 'url.scheme': 'http', 'http.response.status_code': 404, 'error.type': '404', 'server.address': '10.9.9.9', 'server.port': 5432 }, 2],
      [{ 'service.name': 'checkout', 'http.request.method': 'POST', 'url.scheme': 'http', 'http.response.status_code': 200, 'server.address': '10.9.9.9', 'server.port': 5432 }, 1],
    ]);
    assert.equal(client.dataPoints[0]!.value.sum, 0.1);
  });

  it('every metric attribute name is a semantic convention (the perfcatch_* metrics keep their own labels)', async () => {
    const { nonConventionNames } = await import('../harness/semconv-names.ts');
    const http = new HttpSeriesTable();
    http.record(record({ http_status: 500, dependencies: [dependency(500, 1)] }));
    const { resourceMetrics } = await new RequestMetricsProducer(new RequestSeriesTable(), http).collect();
    const names = resourceMetrics.scopeMetrics[0]!.metrics.flatMap((m) => m.dataPoints.flatMap((p) => Object.keys(p.attributes)));
    assert.ok(names.length > 0);
    assert.deepEqual(nonConventionNames(names), []);
  });
});
