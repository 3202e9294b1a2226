/**
 * Issue 12 item 4 on the real kernel: outbound HTTP/2 (gRPC) calls as dependencies, one per
 * stream, linked to the callee's SERVER span on the same host by connection and stream id,
 * with no header injected. A gRPC frontend (@grpc/grpc-js, test/servers/node-grpc-frontend.mjs)
 * calls a gRPC backend (test/servers/node-h2-server.mjs) over one pooled channel, many calls
 * at once. Truth: what the test client saw (each call's status), and the backend's own records
 * (its end of each stream): the frontend forwards each call's x-correlation-id, which the
 * agent reads on both ends, so which backend stream answered which frontend call is known
 * without the agent's attribution. Jaeger must show every call as one trace:
 *
 *   SERVER perfcatch.test.Front/Call (grpc-front)
 *   └── CLIENT perfcatch.test.Echo/Call (grpc-front)
 *       └── SERVER perfcatch.test.Echo/Call (grpc-back)
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';
import { startAgent, type RunningAgent } from '../harness/agent.ts';
import { startJaeger, type JaegerSpan, type RunningJaeger } from '../harness/jaeger.ts';
import { waitFor } from '../harness/ports.ts';
import { type Spawned } from '../harness/processes.ts';
import { startScript } from '../harness/h2-server.ts';
import { pool } from '../harness/h2-requests.ts';
import type { RequestRecord } from '../../src/types.ts';

const require = createRequire(import.meta.url);
const grpc = require('@grpc/grpc-js') as typeof import('@grpc/grpc-js');

const CALLS = Number(process.env.PERFCATCH_GRPC_CLIENT_CALLS ?? 1_000);
const CONCURRENCY = 50;
const ECHO_PATH = '/perfcatch.test.Echo/Call';

async function recordsOf(agent: RunningAgent, service: string, want: number): Promise<RequestRecord[]> {
  const query = `/api/requests?limit=10000&process=${service}&correlation_id_regex=${encodeURIComponent('^f-')}`;
  return waitFor(`${want} records of ${service}`, async () => {
    const r = await agent.get<{ requests?: RequestRecord[] }>(query);
    return r.body.requests && r.body.requests.length >= want ? r.body.requests : undefined;
  }, 120_000, 500);
}

describe('outbound gRPC calls: one dependency per stream, linked to the callee', () => {
  let jaeger: RunningJaeger;
  let backend: Spawned & { port: number };
  let frontend: Spawned & { port: number };
  let agent: RunningAgent;
  const outcome = new Map<string, number>();

  before(async () => {
    jaeger = await startJaeger();
    backend = await startScript('node-h2-server.mjs', [], 'GRPC', { OTEL_SERVICE_NAME: 'grpc-back' });
    frontend = await startScript('node-grpc-frontend.mjs', [String(backend.port)], 'GRPC', { OTEL_SERVICE_NAME: 'grpc-front' });
    agent = await startAgent(['--ports', `${frontend.port},${backend.port}`, '--otlp-endpoint', jaeger.httpEndpoint]);
  });
  after(async () => {
    await agent?.stop();
    await frontend?.stop();
    await backend?.stop();
    await jaeger?.stop();
  });

  it(`${CALLS} calls, ${CONCURRENCY} at once, OK / NOT_FOUND / INTERNAL: one dependency each, with method, status, bytes, linked to the backend's stream`, async () => {
    const identity = (b: Buffer) => b;
    const Client = grpc.makeGenericClientConstructor(
      { Call: { path: '/perfcatch.test.Front/Call', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
      'Front',
    );
    const client = new Client(`127.0.0.1:${frontend.port}`, grpc.credentials.createInsecure()) as unknown as {
      Call(req: Buffer, md: import('@grpc/grpc-js').Metadata, cb: (err: { code: number } | null) => void): void;
      close(): void;
    };
    await pool(CALLS, CONCURRENCY, async (i) => {
      const md = new grpc.Metadata();
      md.set('x-correlation-id', `f-${i}`);
      const payload = Buffer.alloc(1 + (i % 300), 0);
      payload[0] = i % 3;
      const code = await new Promise<number>((resolve) => client.Call(payload, md, (err) => resolve(err ? err.code : 0)));
      outcome.set(`f-${i}`, code);
    });
    client.close();
    const byCode = (c: number) => [...outcome.values()].filter((v) => v === c).length;
    assert.deepEqual([byCode(0), byCode(5), byCode(13)], [Math.ceil(CALLS / 3), Math.ceil((CALLS - 1) / 3), Math.floor(CALLS / 3)], 'the client saw each outcome');

    const front = await recordsOf(agent, 'grpc-front', CALLS);
    const back = await recordsOf(agent, 'grpc-back', CALLS);
    assert.equal(front.length, CALLS, 'one frontend record per call');
    assert.equal(back.length, CALLS, 'one backend record per call');
    const backById = new Map(back.map((r) => [r.correlation_id!, r]));
    assert.equal(backById.size, CALLS);
    const attribution = { exact: 0, inferred: 0 };
    for (const f of front) {
      const id = f.correlation_id!;
      const code = outcome.get(id);
      assert.ok(code !== undefined, `unexpected record ${id}`);
      assert.equal(f.grpc_status, code, `${id}: the frontend's status`);
      assert.equal(f.dependencies.length, 1, `${id}: one outbound stream`);
      const d = f.dependencies[0]!;
      assert.equal(d.protocol, 'h2');
      assert.equal(d.http_method, 'POST');
      assert.equal(d.http_path, ECHO_PATH);
      assert.equal(d.http_status, 200);
      assert.equal(d.grpc_status, code, `${id}: the call's grpc-status`);
      assert.equal(d.peer_port, backend.port);
      assert.ok(d.duration_ms <= f.duration_ms, `${id}: the call inside its request`);
      attribution[d.caller_attribution]++;
      // The backend's end of the same stream: same bytes both ways, and its SERVER span is the
      // CLIENT span's child (it carries the same correlation id: the right call was linked).
      const b = backById.get(id);
      assert.ok(b, `${id}: the backend served it`);
      assert.equal(b.grpc_status, code);
      assert.equal(d.bytes_sent, b.bytes_received, `${id}: the frontend sent what the backend read`);
      assert.equal(d.bytes_received, b.bytes_sent, `${id}: the frontend read what the backend sent`);
      assert.equal(b.trace_id, f.trace_id, `${id}: the backend in the frontend's trace`);
      assert.equal(b.parent_span_id, d.span_id, `${id}: the backend's parent is the CLIENT span`);
    }
    const health = (await agent.get<{ counters: { h2?: Record<string, number> } }>('/health')).body;
    const h2 = health.counters.h2 ?? {};
    assert.equal(h2.calls, CALLS, 'every outbound stream reported');
    assert.equal(h2.callsUnattributed, 0);
    assert.equal(h2.callsOrphaned, 0);
    console.log(`# ${CALLS} calls: caller attribution ${attribution.exact} exact, ${attribution.inferred} inferred (all checked against the forwarded correlation id); h2 counters ${JSON.stringify(h2)}`);
  });

  it('Jaeger: every call is one trace, SERVER -> CLIENT -> SERVER across the two services', async () => {
    const front = await recordsOf(agent, 'grpc-front', CALLS);
    const kind = (s: JaegerSpan) => s.tags.find((t) => t.key === 'span.kind')?.value;
    const parentOf = (s: JaegerSpan) => s.references.find((r) => r.refType === 'CHILD_OF')?.spanID;
    for (const f of front) {
      const trace = await waitFor(`the trace of ${f.correlation_id} in Jaeger`, async () => {
        const t = await jaeger.getTrace(f.trace_id);
        return t && t.spans.length >= 3 ? t : undefined;
      }, 60_000, 250);
      assert.equal(trace.spans.length, 3, `${f.correlation_id}: three spans`);
      const service = (s: JaegerSpan) => trace.processes[s.processID]?.serviceName;
      const root = trace.spans.find((s) => s.spanID === f.span_id);
      assert.ok(root && kind(root) === 'server' && parentOf(root) === undefined, `${f.correlation_id}: the frontend's SERVER span is the root`);
      assert.equal(root.operationName, 'perfcatch.test.Front/Call');
      assert.equal(service(root), 'grpc-front');
      const [call] = trace.spans.filter((s) => parentOf(s) === root.spanID);
      assert.ok(call && kind(call) === 'client', `${f.correlation_id}: a CLIENT span under it`);
      assert.equal(call.operationName, 'perfcatch.test.Echo/Call');
      assert.equal(service(call), 'grpc-front');
      assert.equal(call.tags.find((t) => t.key === 'rpc.grpc.status_code')?.value, f.grpc_status);
      const [served] = trace.spans.filter((s) => parentOf(s) === call.spanID);
      assert.ok(served && kind(served) === 'server', `${f.correlation_id}: the backend's SERVER span under the CLIENT span`);
      assert.equal(served.operationName, 'perfcatch.test.Echo/Call');
      assert.equal(service(served), 'grpc-back');
    }
  });
});
