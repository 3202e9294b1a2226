/**
 * Dependencies and linked traces, checked where a user sees them: a Node server that, while
 * serving /fanout, calls a Python server twice (a new connection, then a pooled keep-alive
 * one). Neither sends a traceparent. The agent must report both calls as dependencies with
 * exact bytes, and Jaeger v2 must show one trace:
 *
 *   SERVER GET /fanout (gt-caller)
 *   ├── CLIENT GET /dep-new    ── SERVER GET /dep-new    (gt-callee)
 *   └── CLIENT GET /dep-pooled ── SERVER GET /dep-pooled (gt-callee)
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAgent, type RunningAgent } from '../harness/agent.ts';
import { startJaeger, type JaegerSpan, type RunningJaeger } from '../harness/jaeger.ts';
import { waitFor } from '../harness/ports.ts';
import { startNodeServer, startPythonServer, type RunningServer } from '../harness/runtimes.ts';
import { getRequest, RawHttpClient } from '../harness/raw-client.ts';
import type { RequestRecord } from '../../src/types.ts';

type Requests = { count: number; requests: RequestRecord[] };

describe('dependencies and linked traces', () => {
  let jaeger: RunningJaeger;
  let agent: RunningAgent;
  let caller: RunningServer;
  let callee: RunningServer;

  before(async () => {
    jaeger = await startJaeger();
    caller = await startNodeServer({ OTEL_SERVICE_NAME: 'gt-caller' });
    callee = await startPythonServer({ OTEL_SERVICE_NAME: 'gt-callee' });
    agent = await startAgent(['--ports', `${caller.port},${callee.port}`, '--otlp-endpoint', jaeger.httpEndpoint]);
  });

  after(async () => {
    await agent?.stop();
    await caller?.stop();
    await callee?.stop();
    await jaeger?.stop();
  });

  async function callOnce(path: string, correlationId: string): Promise<void> {
    const client = new RawHttpClient(caller.port);
    const res = await client.request(getRequest(path, { 'X-Correlation-ID': correlationId, Connection: 'close' }));
    assert.equal(res.status, 200, res.body.toString());
    await client.close();
  }

  it('records a new and a pooled outbound call as dependencies, with exact bytes', async () => {
    await callOnce(`/warm?to=${callee.port}`, 'warm-1'); // opens the pooled connection
    await callOnce(`/fanout?to=${callee.port}`, 'fanout-1');

    const fanout = await waitFor('the fanout record with 2 dependencies', async () => {
      const r = await agent.get<Requests>('/api/requests?correlation_id=fanout-1');
      const rec = r.body.requests[0];
      return rec && rec.dependencies.length === 2 ? rec : undefined;
    });
    const [fresh, pooled] = fanout.dependencies;
    assert.ok(fresh && pooled);
    assert.equal(fresh.http_path, '/dep-new');
    assert.equal(fresh.new_connection, true);
    assert.ok(fresh.connect_ms !== null && fresh.connect_ms > 0, 'connect time of the new connection');
    assert.equal(pooled.http_path, '/dep-pooled');
    assert.equal(pooled.new_connection, false, 'reused the warm keep-alive connection');
    assert.equal(pooled.connect_ms, null);
    for (const d of [fresh, pooled]) {
      assert.equal(d.http_method, 'GET');
      assert.equal(d.http_status, 200);
      assert.equal(d.peer_ip, '127.0.0.1');
      assert.equal(d.peer_port, callee.port);
      assert.ok(d.duration_ms > 0 && d.duration_ms <= fanout.duration_ms);
      assert.match(d.span_id, /^[0-9a-f]{16}$/);
    }

    // The callee saw the same exchanges from the other end: bytes must agree exactly.
    const calleeRecords = await waitFor('both callee records', async () => {
      const r = await agent.get<Requests>('/api/requests?process=gt-callee&limit=100');
      const byPath = new Map(r.body.requests.map((x) => [x.http_path, x]));
      const a = byPath.get('/dep-new');
      const b = byPath.get('/dep-pooled');
      return a && b ? { a, b } : undefined;
    });
    for (const [dep, served] of [
      [fresh, calleeRecords.a],
      [pooled, calleeRecords.b],
    ] as const) {
      assert.equal(dep.bytes_sent, served.bytes_received, `${dep.http_path}: caller sent what callee read`);
      assert.equal(dep.bytes_received, served.bytes_sent, `${dep.http_path}: caller read what callee sent`);
      // Linked without any traceparent: the callee's SERVER span is a child of the CLIENT span.
      assert.equal(served.trace_id, fanout.trace_id, `${dep.http_path} in the caller's trace`);
      assert.equal(served.parent_span_id, dep.span_id, `${dep.http_path} parent is the CLIENT span`);
    }
  });

  it('Jaeger shows one trace: SERVER -> 2 CLIENT -> 2 SERVER, across two services', async () => {
    const fanout = (await agent.get<Requests>('/api/requests?correlation_id=fanout-1')).body.requests[0]!;
    const trace = await waitFor(
      'the fanout trace in Jaeger with 5 spans',
      async () => {
        const t = await jaeger.getTrace(fanout.trace_id);
        return t && t.spans.length >= 5 ? t : undefined;
      },
      30_000,
      250,
    );
    assert.equal(trace.spans.length, 5);
    const service = (s: JaegerSpan) => trace.processes[s.processID]?.serviceName;
    const kind = (s: JaegerSpan) => s.tags.find((t) => t.key === 'span.kind')?.value;
    const parentOf = (s: JaegerSpan) => s.references.find((r) => r.refType === 'CHILD_OF')?.spanID;

    const root = trace.spans.find((s) => s.spanID === fanout.span_id)!;
    assert.ok(root, 'the SERVER span of /fanout');
    assert.equal(kind(root), 'server');
    assert.equal(service(root), 'gt-caller');
    assert.equal(parentOf(root), undefined, 'root of the trace');

    const clients = trace.spans.filter((s) => parentOf(s) === root.spanID);
    assert.equal(clients.length, 2);
    for (const c of clients) {
      assert.equal(kind(c), 'client');
      assert.equal(service(c), 'gt-caller');
      const children = trace.spans.filter((s) => parentOf(s) === c.spanID);
      assert.equal(children.length, 1, `one SERVER span under ${c.operationName}`);
      assert.equal(kind(children[0]!), 'server');
      assert.equal(service(children[0]!), 'gt-callee');
    }
    assert.deepEqual(clients.map((c) => c.operationName).sort(), ['GET /dep-new', 'GET /dep-pooled']);
  });

  it('an incoming traceparent still wins over the same-host link', async () => {
    const traceId = 'a3ce929d0e0e47364bf92f3577b34da6';
    const client = new RawHttpClient(callee.port);
    await client.request(getRequest('/direct', { traceparent: `00-${traceId}-00f067aa0ba902b7-01`, Connection: 'close' }));
    await client.close();
    const rec = await waitFor('the direct record', async () => {
      const r = await agent.get<Requests>('/api/requests?path=/direct');
      return r.body.requests[0];
    });
    assert.equal(rec.trace_id, traceId);
    assert.equal(rec.parent_span_id, '00f067aa0ba902b7');
  });
});
