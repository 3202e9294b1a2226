/**
 * The Jaeger v2 peer itself: a SERVER span and its CLIENT child, sent over OTLP/gRPC with the
 * project's own exporter, must come back through Jaeger's query API as one trace with a
 * CHILD_OF reference and the right service name. Proves the harness before real tests use it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SpanKind, SpanStatusCode, TraceFlags, type SpanContext } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { hrTimeFromEpochNs } from '../harness/sdk-spans.ts';
import { startJaeger, type JaegerTrace, type RunningJaeger } from '../harness/jaeger.ts';
import { waitFor } from '../harness/ports.ts';

const SERVICE = 'jaeger-peer-test';
const resource = resourceFromAttributes({ 'service.name': SERVICE });

function span(name: string, kind: SpanKind, ctx: SpanContext, parent: SpanContext | undefined, startNs: bigint, endNs: bigint): ReadableSpan {
  return {
    name,
    kind,
    spanContext: () => ctx,
    parentSpanContext: parent,
    startTime: hrTimeFromEpochNs(startNs),
    endTime: hrTimeFromEpochNs(endNs),
    duration: hrTimeFromEpochNs(endNs - startNs),
    status: { code: SpanStatusCode.UNSET },
    attributes: { 'test.kind': SpanKind[kind] },
    links: [],
    events: [],
    ended: true,
    resource,
    instrumentationScope: { name: 'jaeger-peer-test', version: '0.0.0' },
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  };
}

describe('Jaeger v2 peer', { timeout: 900_000 }, () => {
  let jaeger: RunningJaeger;
  before(async () => {
    jaeger = await startJaeger();
  });
  after(async () => {
    await jaeger?.stop();
  });

  it('stores a SERVER span and its CLIENT child as one trace', async () => {
    const traceId = randomBytes(16).toString('hex');
    const serverCtx: SpanContext = { traceId, spanId: randomBytes(8).toString('hex'), traceFlags: TraceFlags.SAMPLED };
    const clientCtx: SpanContext = { traceId, spanId: randomBytes(8).toString('hex'), traceFlags: TraceFlags.SAMPLED };
    const t0 = BigInt(Date.now()) * 1_000_000n;
    const spans = [
      span('GET /items/:id', SpanKind.SERVER, serverCtx, undefined, t0, t0 + 50_000_000n),
      span('SELECT items', SpanKind.CLIENT, clientCtx, serverCtx, t0 + 10_000_000n, t0 + 30_000_000n),
    ];

    const exporter = new OTLPTraceExporter({ url: jaeger.grpcEndpoint });
    const result = await new Promise<ExportResult>((resolve) => exporter.export(spans, resolve));
    await exporter.shutdown();
    assert.equal(result.code, ExportResultCode.SUCCESS, `export failed: ${String(result.error)}`);

    const trace: JaegerTrace = await waitFor('both spans in Jaeger', async () => {
      const t = await jaeger.getTrace(traceId);
      return t && t.spans.length >= 2 ? t : undefined;
    });
    assert.equal(trace.traceID, traceId);
    assert.equal(trace.spans.length, 2);
    const server = trace.spans.find((s) => s.spanID === serverCtx.spanId);
    const client = trace.spans.find((s) => s.spanID === clientCtx.spanId);
    assert.ok(server && client, `span ids: ${trace.spans.map((s) => s.spanID).join(', ')}`);
    assert.equal(server.operationName, 'GET /items/:id');
    assert.equal(client.operationName, 'SELECT items');
    assert.deepEqual(server.references, []);
    assert.deepEqual(client.references, [{ refType: 'CHILD_OF', traceID: traceId, spanID: serverCtx.spanId }]);
    assert.equal(server.tags.find((t) => t.key === 'span.kind')?.value, 'server');
    assert.equal(client.tags.find((t) => t.key === 'span.kind')?.value, 'client');
    assert.equal(server.startTime, Number(t0 / 1000n));
    assert.equal(server.duration, 50_000);
    assert.equal(client.duration, 20_000);
    for (const s of trace.spans) assert.equal(trace.processes[s.processID]?.serviceName, SERVICE);

    assert.ok((await jaeger.services()).includes(SERVICE));
    const found = await jaeger.findTraces(SERVICE);
    assert.deepEqual(
      found.map((t) => t.traceID),
      [traceId],
    );
    assert.equal(await jaeger.getTrace(randomBytes(16).toString('hex')), null);
  });
});
