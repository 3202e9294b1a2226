/**
 * OTLP over HTTP (http/protobuf) and gRPC, end to end: two agents watch the same server, one
 * exporting by each route, to a real Collector (plaintext, then mutual TLS) and a real Jaeger v2.
 * The same requests must give the same spans by either route; headers, compression, TLS,
 * OTEL_RESOURCE_ATTRIBUTES and the trace sampler must behave as configured.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startAgent, type RunningAgent } from '../harness/agent.ts';
import { startCollector, type ReceivedSpan, type RunningCollector } from '../harness/collector.ts';
import { startJaeger } from '../harness/jaeger.ts';
import { waitFor } from '../harness/ports.ts';
import { getRequest, RawHttpClient } from '../harness/raw-client.ts';
import { startNodeServer, type RunningServer } from '../harness/runtimes.ts';
import { startTcpRelay, type TcpRelay } from '../harness/tcp-relay.ts';
import { makeTestCertificates } from '../harness/tls-certs.ts';
import { nonConventionNames } from '../harness/semconv-names.ts';

const TENANT = 'x-perfcatch-tenant';
const COPIED_HEADERS = [TENANT, 'content-encoding', 'grpc-encoding'];
/** Measured by each agent's own programs, so they differ slightly between two agents. */
const PER_AGENT_ATTRIBUTES = ['perfcatch.request_id', 'perfcatch.cpu_time_ns', 'perfcatch.cpu_after_response_ns', 'perfcatch.memory_rss_bytes', ...COPIED_HEADERS.map((h) => `received.${h}`)];

interface Sent {
  traceId: string;
  status: number;
}

/** One request per trace id (a sampled traceparent each); every fifth answers 500. */
async function drive(port: number, n: number): Promise<Sent[]> {
  const client = new RawHttpClient(port);
  const sent: Sent[] = [];
  for (let i = 0; i < n; i++) {
    const traceId = randomBytes(16).toString('hex');
    const status = i % 5 === 0 ? 500 : 200;
    await client.request(getRequest(`/orders/${i}?status=${status}`, { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` }));
    sent.push({ traceId, status });
  }
  await client.close();
  return sent;
}

function spansOf(collector: RunningCollector, tenant: string, traceIds: Set<string>): Map<string, ReceivedSpan> {
  const out = new Map<string, ReceivedSpan>();
  for (const s of collector.spans()) if (s.attrs[`received.${TENANT}`] === tenant && traceIds.has(s.span.traceId)) out.set(s.span.traceId, s);
  return out;
}

async function waitForSpans(collector: RunningCollector, tenant: string, sent: Sent[]): Promise<Map<string, ReceivedSpan>> {
  const ids = new Set(sent.map((s) => s.traceId));
  return waitFor(`${sent.length} spans from ${tenant}`, () => {
    const spans = spansOf(collector, tenant, ids);
    return spans.size === sent.length ? spans : undefined;
  }, 30_000, 250);
}

/** What must be equal by either route: everything but ids the agent makes and its own measurements. */
function comparable(s: ReceivedSpan): unknown {
  const attrs = Object.fromEntries(Object.entries(s.attrs).filter(([k]) => !PER_AGENT_ATTRIBUTES.includes(k)));
  const resource = Object.fromEntries(Object.entries(s.resource).filter(([k]) => k !== 'deployment.environment.name'));
  return { traceId: s.span.traceId, parent: s.span.parentSpanId, name: s.span.name, kind: s.span.kind, status: s.span.status?.code ?? 0, attrs, resource };
}

describe('OTLP transports', () => {
  let server: RunningServer;
  const agents: RunningAgent[] = [];
  const collectors: RunningCollector[] = [];
  const relays: TcpRelay[] = [];

  /** `url` with its port replaced by a byte-counting relay's. */
  async function relayed(url: string): Promise<{ url: string; relay: TcpRelay }> {
    const u = new URL(url);
    const relay = await startTcpRelay(Number(u.port));
    relays.push(relay);
    u.port = String(relay.port);
    return { url: u.origin, relay };
  }

  before(async () => {
    server = await startNodeServer({ OTEL_SERVICE_NAME: 'otlp-transport-node' });
  });

  after(async () => {
    for (const a of agents) await a.stop();
    for (const r of relays) await r.close();
    for (const c of collectors) await c.stop();
    await server?.stop();
  });

  async function agent(args: string[], env: Record<string, string>): Promise<RunningAgent> {
    const a = await startAgent(['--ports', String(server.port), ...args], env);
    agents.push(a);
    return a;
  }

  it('sends the same spans over http/protobuf and gRPC, with the configured headers and compression', async (t) => {
    const collector = await startCollector({ copyHeaders: COPIED_HEADERS });
    collectors.push(collector);
    const httpRelay = await relayed(collector.httpEndpoint);
    const grpcRelay = await relayed(collector.grpcEndpoint);
    // HTTP: a general endpoint (PerfCatch appends /v1/traces), general headers, gzip.
    const viaHttp = await agent(['--otlp-endpoint', httpRelay.url], {
      OTEL_EXPORTER_OTLP_HEADERS: `${TENANT}=via-http`,
      OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=e2e-http,k8s.cluster.name=test-cluster',
    });
    // gRPC: the traces endpoint and headers of the signal's own variables, no compression.
    const viaGrpc = await agent([], {
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: grpcRelay.url,
      OTEL_EXPORTER_OTLP_HEADERS: `${TENANT}=ignored`,
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: `${TENANT}=via-grpc`,
      OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: 'none',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=e2e-grpc,k8s.cluster.name=test-cluster',
    });
    const sent = await drive(server.port, 20);
    const http = await waitForSpans(collector, 'via-http', sent);
    const grpc = await waitForSpans(collector, 'via-grpc', sent);

    for (const s of sent) {
      const h = http.get(s.traceId)!;
      const g = grpc.get(s.traceId)!;
      assert.deepEqual(comparable(h), comparable(g), `trace ${s.traceId}`);
      assert.equal(h.attrs['http.response.status_code'], s.status);
      assert.equal(h.attrs['error.type'], s.status === 500 ? '500' : undefined);
      assert.equal(h.span.status?.code ?? 0, s.status === 500 ? 2 : 0);
      assert.equal(h.attrs['server.address'], '127.0.0.1');
      assert.equal(h.attrs['network.protocol.name'], 'http');
      // The agents' own measurements of the same request agree within scheduling noise.
      assert.ok(Math.abs(Number(BigInt(h.span.endTimeUnixNano) - BigInt(h.span.startTimeUnixNano)) - Number(BigInt(g.span.endTimeUnixNano) - BigInt(g.span.startTimeUnixNano))) < 5e6);
    }
    // Every name PerfCatch exported is a semantic convention or under perfcatch. (received.*
    // is the Collector's copy of request headers, added by this test's pipeline).
    const exported = [...http.values(), ...grpc.values()].flatMap((s) => [...Object.keys(s.attrs), ...Object.keys(s.resource)]);
    assert.deepEqual(nonConventionNames(exported.filter((n) => !n.startsWith('received.'))), []);
    const anyHttp = http.get(sent[0]!.traceId)!;
    const anyGrpc = grpc.get(sent[0]!.traceId)!;
    assert.equal(anyHttp.resource['service.name'], 'otlp-transport-node');
    assert.equal(anyHttp.resource['k8s.cluster.name'], 'test-cluster');
    assert.equal(anyHttp.resource['deployment.environment.name'], 'e2e-http');
    assert.equal(anyGrpc.resource['deployment.environment.name'], 'e2e-grpc');
    assert.equal(anyHttp.attrs['received.content-encoding'], 'gzip');
    // The same spans: gzip over HTTP takes well under half the bytes of uncompressed gRPC.
    // (gRPC's grpc-encoding header is not in the Collector's request metadata.)
    const [gzipBytes, plainBytes] = [httpRelay.relay.bytesFromClients(), grpcRelay.relay.bytesFromClients()];
    t.diagnostic(`20 spans: http+gzip ${gzipBytes} B, grpc uncompressed ${plainBytes} B`);
    assert.ok(gzipBytes < plainBytes * 0.5, `http+gzip ${gzipBytes} B, grpc uncompressed ${plainBytes} B`);
    assert.equal(collector.spans().filter((s) => s.attrs[`received.${TENANT}`] === 'ignored').length, 0, 'the signal\'s own headers win per key');

    for (const a of [viaHttp, viaGrpc]) {
      const { body } = await a.get<{ otlp: { exported: number; failed: number; dropped: number } }>('/health');
      assert.equal(body.otlp.failed, 0);
      assert.equal(body.otlp.dropped, 0);
      assert.ok(body.otlp.exported >= sent.length);
    }
    for (const a of agents.splice(0)) await a.stop();
  });

  it('exports over mutual TLS with a client certificate, by either route, and fails without one', async (t) => {
    const certs = makeTestCertificates();
    const collector = await startCollector({
      tls: { certFile: certs.serverCert, keyFile: certs.serverKey, clientCaFile: certs.caCert },
      copyHeaders: COPIED_HEADERS,
    });
    collectors.push(collector);
    assert.match(collector.httpEndpoint, /^https:/);
    const httpRelay = await relayed(collector.httpEndpoint);
    const grpcRelay = await relayed(collector.grpcEndpoint);
    await agent(['--otlp-endpoint', httpRelay.url], {
      OTEL_EXPORTER_OTLP_HEADERS: `${TENANT}=tls-http`,
      OTEL_EXPORTER_OTLP_COMPRESSION: 'none',
      OTEL_EXPORTER_OTLP_CERTIFICATE: certs.caCert,
      OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: certs.clientCert,
      OTEL_EXPORTER_OTLP_CLIENT_KEY: certs.clientKey,
    });
    // gRPC given as host:port: TLS, as the spec says for an endpoint without a scheme.
    // Metrics go straight to the collector (their own endpoint), not through the counting relay.
    await agent(['--otlp-protocol', 'grpc', '--otlp-metrics'], {
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: grpcRelay.url.replace('https://', ''),
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: collector.grpcEndpoint,
      OTEL_EXPORTER_OTLP_HEADERS: `${TENANT}=tls-grpc`,
      OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip',
      OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE: certs.caCert,
      OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE: certs.caCert,
      OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: certs.clientCert,
      OTEL_EXPORTER_OTLP_CLIENT_KEY: certs.clientKey,
      OTEL_SERVICE_NAME: 'perfcatch-agent-tls',
      OTEL_METRIC_EXPORT_INTERVAL: '500',
    });
    const sent = await drive(server.port, 60);
    const http = await waitForSpans(collector, 'tls-http', sent);
    const grpc = await waitForSpans(collector, 'tls-grpc', sent);
    for (const s of sent) assert.deepEqual(comparable(http.get(s.traceId)!), comparable(grpc.get(s.traceId)!));
    assert.equal(http.get(sent[0]!.traceId)!.attrs['received.content-encoding'], undefined);
    // Both routes pay a TLS handshake with client certificates; gzip must still win clearly.
    const [plainBytes, gzipBytes] = [httpRelay.relay.bytesFromClients(), grpcRelay.relay.bytesFromClients()];
    t.diagnostic(`60 spans over mTLS: grpc+gzip ${gzipBytes} B, http uncompressed ${plainBytes} B`);
    assert.ok(gzipBytes < plainBytes * 0.6, `grpc+gzip ${gzipBytes} B, http uncompressed ${plainBytes} B`);
    // The agent's own metrics, over gRPC and TLS, under OTEL_SERVICE_NAME.
    await waitFor('agent metrics over TLS', () => collector.metrics().find((m) => m.resource['service.name'] === 'perfcatch-agent-tls'), 30_000, 250);
    for (const a of agents.splice(0)) await a.stop();

    // The CA alone is not enough: the collector requires a client certificate.
    const noClientCert = await agent(['--otlp-endpoint', collector.httpEndpoint], {
      OTEL_EXPORTER_OTLP_HEADERS: `${TENANT}=no-client-cert`,
      OTEL_EXPORTER_OTLP_CERTIFICATE: certs.caCert,
      OTEL_EXPORTER_OTLP_TIMEOUT: '2000',
    });
    const refused = await drive(server.port, 3);
    // Refused exports are retried (for minutes: export-queue.ts), and counted as they fail.
    const health = await waitFor('a refused export, retried', async () => {
      const { body } = await noClientCert.get<{ otlp: { exported: number; failed: number; retries: number; queued: number } }>('/health');
      return body.otlp.retries >= 1 ? body.otlp : undefined;
    }, 60_000, 250);
    assert.equal(health.exported, 0);
    assert.equal(health.failed + health.queued, refused.length, 'every refused span still queued or counted failed');
    assert.equal(collector.spans().filter((s) => s.attrs[`received.${TENANT}`] === 'no-client-cert').length, 0);
    for (const a of agents.splice(0)) await a.stop();
  });

  it('Jaeger v2 receives the same spans by either route', async () => {
    const jaeger = await startJaeger();
    try {
      await agent(['--otlp-endpoint', jaeger.httpEndpoint], { OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=jaeger-http' });
      await agent(['--otlp-protocol', 'grpc', '--otlp-endpoint', jaeger.grpcEndpoint], { OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=jaeger-grpc' });
      const sent = await drive(server.port, 5);
      for (const s of sent) {
        const trace = await waitFor(`trace ${s.traceId} with a span from each route`, async () => {
          const t = await jaeger.getTrace(s.traceId);
          return t && t.spans.length === 2 ? t : undefined;
        }, 30_000, 250);
        const routes = trace.spans.map((span) => trace.processes[span.processID]!.tags.find((t) => t.key === 'deployment.environment.name')?.value).sort();
        assert.deepEqual(routes, ['jaeger-grpc', 'jaeger-http']);
        const [a, b] = trace.spans.map((span) => ({
          name: span.operationName,
          references: span.references.map((r) => r.spanID),
          tags: span.tags.filter((t) => !PER_AGENT_ATTRIBUTES.includes(t.key)).sort((x, y) => x.key.localeCompare(y.key)),
        }));
        assert.deepEqual(a, b);
      }
      for (const a of agents.splice(0)) await a.stop();
    } finally {
      await jaeger.stop();
    }
  });

  it('samples only the export: traceidratio keeps its share of spans, every request is stored and counted', async () => {
    const collector = await startCollector({ copyHeaders: [TENANT] });
    collectors.push(collector);
    const sampled = await agent(['--otlp-endpoint', collector.httpEndpoint], {
      OTEL_EXPORTER_OTLP_HEADERS: `${TENANT}=sampled`,
      OTEL_TRACES_SAMPLER: 'traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.5',
    });
    const sent = await drive(server.port, 40);
    // The Go and Java SDKs' rule: the lower 64 bits of the trace id against the ratio.
    const kept = sent.filter((s) => BigInt(`0x${s.traceId.slice(16)}`) < 2n ** 63n);
    const keptIds = new Set(kept.map((s) => s.traceId));
    await waitFor(`${kept.length} sampled spans`, () => (spansOf(collector, 'sampled', keptIds).size === kept.length ? true : undefined), 30_000, 250);
    const { body } = await sampled.get<{ count: number }>(`/api/requests?process=node&limit=10000&since=5`);
    assert.ok(body.count >= sent.length, 'every request is stored, sampled or not');
    const metrics = await sampled.metrics();
    assert.equal(Number(/^perfcatch_spans_sampled_out_total (\d+)/m.exec(metrics)?.[1]), sent.length - kept.length);
    // Nothing outside the sample arrived (wait past the next export first).
    await new Promise((r) => setTimeout(r, 1500));
    const all = collector.spans().filter((s) => s.attrs[`received.${TENANT}`] === 'sampled');
    assert.equal(all.filter((s) => !keptIds.has(s.span.traceId)).length, 0);
  });
});
