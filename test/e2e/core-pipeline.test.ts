/**
 * The core pipeline on the real kernel: real eBPF programs, real Node and Python servers,
 * keep-alive raw-socket clients, the real agent, and a real OpenTelemetry Collector.
 * N requests must give exactly N records with exact bytes, and N SERVER spans.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ROOT, startAgent, type RunningAgent } from '../harness/agent.ts';
import { startCollector, type ReceivedSpan, type RunningCollector } from '../harness/collector.ts';
import { waitFor } from '../harness/ports.ts';
import { startServer } from '../harness/processes.ts';
import { getRequest, RawHttpClient, type RawResponse } from '../harness/raw-client.ts';
import type { RequestRecord } from '../../src/types.ts';

const REQUESTS_PER_SERVER = 1000;
const CONNECTIONS = 8;

interface Sent {
  correlationId: string;
  method: string;
  path: string;
  response: RawResponse;
}

/** Spreads n requests over `connections` keep-alive connections, each with its own id. */
async function drive(port: number, prefix: string, n: number, connections: number): Promise<Sent[]> {
  const sent: Sent[] = [];
  await Promise.all(
    Array.from({ length: connections }, async (_, c) => {
      const client = new RawHttpClient(port);
      for (let i = c; i < n; i += connections) {
        const correlationId = `${prefix}-${i}`;
        const status = i % 10 === 0 ? 404 : 200;
        const path = `/items/${i % 7}`;
        const response = await client.request(
          getRequest(`${path}?status=${status}&pad=${'p'.repeat(i % 13)}`, { 'X-Correlation-ID': correlationId }),
        );
        sent.push({ correlationId, method: 'GET', path: `${path}?REDACTED`, response });
      }
      await client.close();
    }),
  );
  return sent;
}

async function allRecords(agent: RunningAgent, processName: string, expected: number): Promise<RequestRecord[]> {
  return waitFor(`${expected} records for ${processName}`, async () => {
    const { body } = await agent.get<{ count: number; requests: RequestRecord[] }>(
      `/api/requests?process=${processName}&limit=10000&since=60`,
    );
    return body.count >= expected ? body.requests : undefined;
  });
}

function checkRecords(records: RequestRecord[], sent: Sent[], port: number): void {
  assert.equal(records.length, sent.length, 'exactly one record per request');
  const byId = new Map(records.map((r) => [r.correlation_id, r]));
  assert.equal(byId.size, sent.length, 'correlation ids are distinct');
  for (const s of sent) {
    const r = byId.get(s.correlationId);
    assert.ok(r, `record for ${s.correlationId}`);
    assert.equal(r.http_method, s.method);
    assert.equal(r.http_path, s.path);
    assert.equal(r.http_status, s.response.status);
    assert.equal(r.bytes_received, s.response.bytesSent, `bytes_received of ${s.correlationId}`);
    assert.equal(r.bytes_sent, s.response.bytesReceived, `bytes_sent of ${s.correlationId}`);
    assert.equal(r.local_port, port);
    assert.equal(r.remote_ip, '127.0.0.1');
    assert.ok(r.duration_ms > 0 && r.duration_ms <= s.response.latencyMs + 1, `duration ${r.duration_ms} vs client ${s.response.latencyMs}`);
    assert.ok(r.cpu_time_ms > 0, `on-CPU time is charged to ${s.correlationId}: ${JSON.stringify(r)}`);
    assert.ok(r.memory_rss_bytes > 1_000_000, 'RSS is read');
    assert.match(r.trace_id, /^[0-9a-f]{32}$/);
    assert.match(r.span_id, /^[0-9a-f]{16}$/);
    assert.deepEqual(r.dependencies, []);
  }
}

describe('core pipeline on the real kernel', () => {
  let collector: RunningCollector;
  let agent: RunningAgent;
  let node: Awaited<ReturnType<typeof startServer>>;
  let python: Awaited<ReturnType<typeof startServer>>;

  before(async () => {
    collector = await startCollector();
    node = await startServer(process.execPath, [`${ROOT}test/servers/node-http-server.mjs`], {
      OTEL_SERVICE_NAME: 'gt-node-server',
    });
    python = await startServer('python3', [`${ROOT}test/servers/python_http_server.py`]);
    agent = await startAgent(['--ports', `${node.port},${python.port}`, '--otlp-endpoint', collector.httpEndpoint]);
  });

  after(async () => {
    await agent?.stop();
    await node?.stop();
    await python?.stop();
    await collector?.stop();
  });

  let nodeSent: Sent[] = [];
  let pythonSent: Sent[] = [];

  it(`Node http: ${REQUESTS_PER_SERVER} keep-alive requests give exactly that many exact records`, async () => {
    nodeSent = await drive(node.port, 'node', REQUESTS_PER_SERVER, CONNECTIONS);
    const records = await allRecords(agent, 'gt-node-server', REQUESTS_PER_SERVER);
    checkRecords(records, nodeSent, node.port);
    assert.ok(records.every((r) => r.process_name === 'node' && r.pid === node.pid), 'process name from argv, not the renamed main thread');
  });

  it(`Python ThreadingHTTPServer: ${REQUESTS_PER_SERVER} keep-alive requests give exactly that many exact records`, async () => {
    pythonSent = await drive(python.port, 'python', REQUESTS_PER_SERVER, CONNECTIONS);
    const records = await allRecords(agent, 'python3', REQUESTS_PER_SERVER);
    checkRecords(records, pythonSent, python.port);
    assert.ok(records.every((r) => r.service_name === 'python3' && r.pid === python.pid));
  });

  it('filters /api/requests by correlation_id, method, status and min duration', async () => {
    const one = await agent.get<{ count: number; requests: RequestRecord[] }>('/api/requests?correlation_id=node-17&since=60');
    assert.equal(one.body.count, 1);
    assert.equal(one.body.requests[0]?.correlation_id, 'node-17');
    const notFound = await agent.get<{ count: number; requests: RequestRecord[] }>(
      '/api/requests?process=gt-node-server&status=404&limit=10000&since=60',
    );
    assert.equal(notFound.body.count, REQUESTS_PER_SERVER / 10);
    const newestFirst = await agent.get<{ requests: RequestRecord[] }>('/api/requests?limit=5&since=60');
    assert.ok(Array.isArray(newestFirst.body.requests), JSON.stringify(newestFirst));
    const ts = newestFirst.body.requests.map((r) => r.timestamp);
    assert.deepEqual(ts, [...ts].sort((a, b) => b - a));
  });

  it('a traceparent makes the SERVER span a child of the caller', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parentId = '00f067aa0ba902b7';
    const client = new RawHttpClient(node.port);
    await client.request(getRequest('/traced', { traceparent: `00-${traceId}-${parentId}-01`, 'X-Correlation-ID': 'traced-1' }));
    // Invalid ones start a new root trace and never break the agent.
    await client.request(getRequest('/traced-bad', { traceparent: `00-${'0'.repeat(32)}-${parentId}-01` }));
    await client.request(getRequest('/traced-v2', { traceparent: `cc-${traceId}-${parentId}-01` }));
    await client.close();

    const spans = await waitFor('traced spans in the collector', () => {
      const s = collector.spans().filter((x) => String(x.attrs['url.path']).startsWith('/traced'));
      return s.length >= 3 ? s : undefined;
    });
    const good = spans.find((s) => s.attrs['url.path'] === '/traced')!;
    assert.equal(good.span.traceId, traceId);
    assert.equal(good.span.parentSpanId, parentId);
    for (const path of ['/traced-bad', '/traced-v2']) {
      const s = spans.find((x) => x.attrs['url.path'] === path)!;
      assert.notEqual(s.span.traceId, traceId);
      assert.ok(!s.span.parentSpanId, `${path} is a root span`);
    }
    const rec = await agent.get<{ requests: RequestRecord[] }>('/api/requests?correlation_id=traced-1&since=60');
    assert.equal(rec.body.requests[0]?.trace_id, traceId);
    assert.equal(rec.body.requests[0]?.parent_span_id, parentId);
  });

  it('the collector received one SERVER span per request, with attributes and service.name', async () => {
    const total = REQUESTS_PER_SERVER * 2;
    const spans = await waitFor('all spans in the collector', () => {
      const s = collector.spans().filter((x) => String(x.attrs['perfcatch.correlation_id'] ?? '').match(/^(node|python)-\d+$/));
      return s.length >= total ? s : undefined;
    });
    assert.equal(spans.length, total, 'no duplicate spans');
    const byCorrelation = new Map<string, ReceivedSpan>(spans.map((s) => [String(s.attrs['perfcatch.correlation_id']), s]));
    for (const [sent, service, pidOf] of [
      [nodeSent, 'gt-node-server', node.pid],
      [pythonSent, 'python3', python.pid],
    ] as const) {
      for (const s of sent) {
        const got = byCorrelation.get(s.correlationId);
        assert.ok(got, `span for ${s.correlationId}`);
        assert.equal(got.span.kind, 2, 'SPAN_KIND_SERVER');
        assert.equal(got.resource['service.name'], service);
        assert.equal(got.span.name, `GET /items/{id}`);
        assert.equal(got.attrs['http.request.method'], 'GET');
        assert.equal(got.attrs['url.path'], s.path.replace('?REDACTED', ''));
        assert.equal(got.attrs['url.query'], 'REDACTED');
        assert.equal(got.attrs['http.response.status_code'], s.response.status);
        assert.equal(got.attrs['client.address'], '127.0.0.1');
        assert.equal(typeof got.attrs['server.port'], 'number');
        assert.equal(got.attrs['http.request.size'], s.response.bytesSent);
        assert.equal(got.attrs['http.response.size'], s.response.bytesReceived);
        assert.equal(got.attrs['process.pid'], pidOf);
        assert.ok(Number(got.attrs['perfcatch.cpu_time_ns']) > 0);
        assert.equal(got.span.status?.code ?? 0, 0, 'UNSET for non-5xx');
        assert.ok(BigInt(got.span.endTimeUnixNano) >= BigInt(got.span.startTimeUnixNano));
      }
    }
    const metrics = await agent.metrics();
    assert.match(metrics, /perfcatch_spans_exported_total\S* [1-9]/);
  });

  it('/health reports the attached programs and zero loss', async () => {
    const { status, body } = await agent.get<{ status: string; programs: string[]; lost: Record<string, number> }>('/health');
    assert.equal(status, 200);
    assert.equal(body.status, 'ok');
    for (const p of ['on_sched_switch', 'sys_exit_accept4', 'sys_exit_read', 'sys_exit_writev', 'sys_enter_close']) {
      assert.ok(body.programs.includes(p), `program ${p} attached`);
    }
    for (const [stage, n] of Object.entries(body.lost)) assert.equal(n, 0, `lost at ${stage}`);
  });
});
