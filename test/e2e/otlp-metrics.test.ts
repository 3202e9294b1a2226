/** --otlp-metrics: the agent's metrics pushed over OTLP reach a real Collector. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAgent, type RunningAgent } from '../harness/agent.ts';
import { startCollector, type RunningCollector } from '../harness/collector.ts';
import { waitFor } from '../harness/ports.ts';
import { getRequest, RawHttpClient } from '../harness/raw-client.ts';
import { startNodeServer, type RunningServer } from '../harness/runtimes.ts';

describe('OTLP metrics export', () => {
  let collector: RunningCollector;
  let server: RunningServer;
  let agent: RunningAgent;

  before(async () => {
    collector = await startCollector();
    server = await startNodeServer({ OTEL_SERVICE_NAME: 'otlp-metrics-node' });
    agent = await startAgent(['--ports', String(server.port), '--otlp-endpoint', collector.httpEndpoint, '--otlp-metrics'], {
      OTEL_METRIC_EXPORT_INTERVAL: '500',
    });
  });

  after(async () => {
    await agent?.stop();
    await server?.stop();
    await collector?.stop();
  });

  it('pushes request counts and histograms with the same bounded labels as /metrics', async () => {
    const client = new RawHttpClient(server.port);
    // The last request, with its own trace: the latest of its bucket, whose exemplar must name it.
    const lastTrace = 'c0ffee' + '0'.repeat(20) + '5e1f00';
    for (let i = 0; i < 6; i++) await client.request(getRequest(`/items/${i}`, { 'X-Correlation-ID': `otlp-m-${i}` }));
    await client.request(getRequest('/items/6', { 'X-Correlation-ID': 'otlp-m-6', traceparent: `00-${lastTrace}-00f067aa0ba902b7-01` }));
    await client.close();
    const total = await waitFor('perfcatch_requests for the service in the collector', () => {
      const points = collector
        .metrics()
        .filter((m) => m.name === 'perfcatch_requests')
        .flatMap((m) => m.points)
        .filter((p) => p.attrs.service === 'otlp-metrics-node');
      // Cumulative sums: the newest point per label set carries the total.
      const latest = points.length ? Math.max(...points.map((p) => p.value)) : 0;
      return latest >= 7 ? { latest, points } : undefined;
    }, 30_000, 250);
    assert.equal(total.latest, 7);
    assert.deepEqual(Object.keys(total.points[0]!.attrs).sort(), ['method', 'port', 'process', 'route', 'service', 'status_class']);
    assert.equal(total.points[0]!.attrs.route, '/items/{id}');
    const names = new Set(collector.metrics().map((m) => m.name));
    for (const n of ['perfcatch_request_duration_ms', 'perfcatch_request_cpu_ms', 'perfcatch_buffer_size', 'http.server.request.duration', 'perfcatch.http.server.request.cpu_time']) {
      assert.ok(names.has(n), n);
    }
    const standard = collector.metrics().filter((m) => m.name === 'http.server.request.duration').flatMap((m) => m.points);
    assert.ok(standard.some((p) => p.attrs['service.name'] === 'otlp-metrics-node' && p.attrs['http.request.method'] === 'GET' && p.value >= 7));
    assert.equal(collector.metrics()[0]!.resource['service.name'], 'perfcatch-agent');
    // Exemplars: a bucket of each duration histogram points at the last request's trace and span.
    const { body } = await agent.get<{ requests: { trace_id: string; span_id: string; duration_ms: number }[] }>('/api/requests?correlation_id=otlp-m-6');
    const last = body.requests[0]!;
    assert.equal(last.trace_id, lastTrace);
    for (const name of ['http.server.request.duration', 'perfcatch_request_duration_ms']) {
      const exemplars = collector.metrics().filter((m) => m.name === name).flatMap((m) => m.points).flatMap((p) => p.exemplars);
      const hit = exemplars.find((e) => e.traceId === lastTrace);
      assert.ok(hit, `${name}: an exemplar with trace ${lastTrace} among ${JSON.stringify(exemplars.slice(0, 3))}`);
      assert.equal(hit.spanId, last.span_id);
      // The API rounds duration_ms to 0.01 ms.
      const [expected, tolerance] = name.endsWith('_ms') ? [last.duration_ms, 0.0051] : [last.duration_ms / 1000, 0.0000051];
      assert.ok(Math.abs(hit.value - expected) <= tolerance, `${name}: ${hit.value} vs ${expected}`);
    }
  });
});
