/** OpenMetrics text with exemplars, and the exemplars the histograms keep. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { acceptsOpenMetrics, serializeOpenMetrics } from '../../src/metrics/openmetrics.ts';
import { RequestMetricsProducer } from '../../src/metrics/request-metrics.ts';
import { BucketHistogram, HttpSeriesTable, RequestSeriesTable } from '../../src/metrics/request-series.ts';
import { sampleRecord } from './sample-record.ts';

describe('exemplars', () => {
  it('each bucket keeps its latest measurement and the request that made it', () => {
    const h = new BucketHistogram([1, 10]);
    h.record(0.5, { traceId: 't1', spanId: 's1', timeMs: 1000 });
    h.record(0.7, { traceId: 't2', spanId: 's2', timeMs: 2000 });
    h.record(5, { traceId: 't3', spanId: 's3', timeMs: 3000 });
    h.record(-1, { traceId: 'dropped', spanId: 'x', timeMs: 4000 });
    h.record(50);
    assert.deepEqual([0, 1, 2].map((i) => h.exemplars.idsAt(i)?.traceId ?? null), ['t2', 't3', null]);
    assert.deepEqual([...h.exemplars.values], [0.7, 5, 0]);
    assert.deepEqual([...h.exemplars.timesMs], [2000, 3000, 0]);
  });

  it('keeps W3C ids as bytes and gives them back as the same hex; a bucket moves between kinds of ids', () => {
    const h = new BucketHistogram([1]);
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const spanId = '00f067aa0ba902b7';
    h.record(0.5, { traceId, spanId, timeMs: 1 });
    assert.deepEqual(h.exemplars.idsAt(0), { traceId, spanId });
    h.record(0.6, { traceId: 'odd', spanId, timeMs: 2 });
    assert.deepEqual(h.exemplars.idsAt(0), { traceId: 'odd', spanId });
    h.record(0.7, { traceId, spanId: 'ffffffffffffffff', timeMs: 3 });
    assert.deepEqual(h.exemplars.idsAt(0), { traceId, spanId: 'ffffffffffffffff' });
    assert.equal(h.exemplars.idsAt(1), null);
  });
});

describe('OpenMetrics', () => {
  it('is chosen by the Accept header', () => {
    assert.equal(acceptsOpenMetrics('application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5'), true);
    assert.equal(acceptsOpenMetrics('text/plain'), false);
    assert.equal(acceptsOpenMetrics(undefined), false);
  });

  it('writes counters, histograms with exemplars on their buckets, and # EOF', async () => {
    const table = new RequestSeriesTable();
    const http = new HttpSeriesTable();
    const trace = 'ab'.repeat(16);
    const span = 'cd'.repeat(8);
    // timestamp is the start (s); the exemplar's time is the end: 1800000000.012
    const r = sampleRecord({ trace_id: trace, span_id: span, timestamp: 1_800_000_000, duration_ms: 12, cpu_time_ms: 1.5, http_status: 200, route: '/a', service_name: 'svc "x"' });
    table.record(r);
    http.record(r);
    const { resourceMetrics } = await new RequestMetricsProducer(table, http).collect();
    const text = serializeOpenMetrics(resourceMetrics);
    assert.ok(text.endsWith('\n# EOF\n'));
    assert.match(text, /^# TYPE perfcatch_requests counter\nperfcatch_requests_total\{service="svc \\"x\\"",.*\} 1$/m);
    const exemplar = ` # {trace_id="${trace}",span_id="${span}"}`;
    const lines = text.split('\n');
    const bucket = (name: string, le: string) => lines.find((l) => l.startsWith(`${name}_bucket{`) && l.includes(`le="${le}"}`));
    assert.equal(bucket('http_server_request_duration', '0.01'), `http_server_request_duration_bucket{service_name="svc \\"x\\"",http_request_method="GET",url_scheme="http",http_response_status_code="200",le="0.01"} 0`);
    assert.ok(bucket('http_server_request_duration', '0.025')!.endsWith(`le="0.025"} 1${exemplar} 0.012 1800000000.012`));
    assert.ok(bucket('http_server_request_duration', '+Inf')!.endsWith('le="+Inf"} 1'));
    assert.ok(bucket('perfcatch_request_duration_ms', '25')!.endsWith(`} 1${exemplar} 12 1800000000.012`));
    assert.ok(bucket('perfcatch_request_cpu_ms', '2')!.endsWith(`} 1${exemplar} 1.5 1800000000.012`));
    assert.ok(lines.includes('# TYPE http_server_request_duration histogram'));
    assert.ok(lines.some((l) => /^http_server_request_duration_sum\{.*\} 0\.012$/.test(l)));
    // Each family once, its samples together (what a strict OpenMetrics parser requires).
    const types = lines.filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]);
    assert.equal(new Set(types).size, types.length);
  });
});
