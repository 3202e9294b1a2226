/**
 * Exemplars on /metrics: a real Prometheus scrapes the agent (it asks for OpenMetrics) with
 * exemplar storage on, and the exemplar it stores for the duration histograms names the
 * request that made it: its trace id and span id, as the API reports them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAgent, type RunningAgent } from '../harness/agent.ts';
import { waitFor } from '../harness/ports.ts';
import { startPrometheus, type RunningPrometheus } from '../harness/prometheus.ts';
import { getRequest, RawHttpClient } from '../harness/raw-client.ts';
import { startNodeServer, type RunningServer } from '../harness/runtimes.ts';

describe('exemplars on /metrics (OpenMetrics), scraped by a real Prometheus', () => {
  let server: RunningServer;
  let agent: RunningAgent;
  let prometheus: RunningPrometheus;

  before(async () => {
    server = await startNodeServer({ OTEL_SERVICE_NAME: 'exemplar-node' });
    agent = await startAgent(['--ports', String(server.port)]);
    prometheus = await startPrometheus(new URL(agent.api).host);
  });

  after(async () => {
    await prometheus?.stop();
    await agent?.stop();
    await server?.stop();
  });

  it('serves OpenMetrics with exemplars only when asked, Prometheus text otherwise', async () => {
    const client = new RawHttpClient(server.port);
    await client.request(getRequest('/warmup', { traceparent: `00-${'ab'.repeat(16)}-${'cd'.repeat(8)}-01` }));
    await client.close();
    await waitFor('the request in /metrics', async () => ((await agent.metrics()).includes('exemplar-node') ? true : undefined));
    const plain = await agent.metrics();
    assert.ok(!plain.includes('# EOF') && !plain.includes('trace_id='));
    const res = await fetch(`${agent.api}/metrics`, { headers: { accept: 'application/openmetrics-text;version=1.0.0,text/plain;q=0.5' } });
    assert.match(res.headers.get('content-type') ?? '', /^application\/openmetrics-text; version=1\.0\.0/);
    const text = await res.text();
    assert.ok(text.endsWith('# EOF\n'));
    assert.match(text, /^http_server_request_duration_bucket\{service_name="exemplar-node",.*\} 1 # \{trace_id="(ab){16}",span_id="[0-9a-f]{16}"\} [0-9.e-]+ \d+\.\d{3}$/m);
    assert.match(text, /^# TYPE perfcatch_requests counter$/m);
    assert.match(text, /^perfcatch_requests_total\{/m);
  });

  it('Prometheus stores the exemplar with the right trace and span id', async () => {
    const traceId = 'feed' + '0123456789abcdef0123456789ab';
    const client = new RawHttpClient(server.port);
    await client.request(getRequest('/orders/1', { traceparent: `00-${traceId}-00f067aa0ba902b7-01`, 'X-Correlation-ID': 'exemplar-1' }));
    await client.close();
    const { body } = await waitFor('the request in the API', async () => {
      const r = await agent.get<{ requests: { trace_id: string; span_id: string; duration_ms: number }[] }>('/api/requests?correlation_id=exemplar-1');
      return r.body.requests.length ? r : undefined;
    });
    const request = body.requests[0]!;
    // [selector, the request's duration in the histogram's unit, the API's rounding (0.01 ms)]
    const histograms = [
      ['http_server_request_duration_bucket{service_name="exemplar-node"}', request.duration_ms / 1000, 0.0000051],
      ['perfcatch_request_duration_ms_bucket{service="exemplar-node"}', request.duration_ms, 0.0051],
    ] as const;
    for (const [selector, value, tolerance] of histograms) {
      const stored = await waitFor(`an exemplar of ${selector} with trace ${traceId}`, async () => {
        const series = await prometheus.exemplars(selector);
        return series.flatMap((s) => s.exemplars).find((e) => e.labels.trace_id === traceId);
      }, 30_000, 500);
      assert.equal(stored.labels.span_id, request.span_id);
      assert.ok(Math.abs(Number(stored.value) - value) <= tolerance, `${selector}: ${stored.value} vs ${value}`);
    }
  });
});
