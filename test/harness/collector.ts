/**
 * A real OpenTelemetry Collector (built by test/peers/build-otelcol.sh, cached) receiving
 * OTLP/gRPC and OTLP/HTTP and writing every span to a JSON-lines file the test reads back.
 * Optionally both receivers require TLS (and a client certificate), and chosen request headers
 * are copied onto every span as `received.<header>` (the receivers keep request metadata).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './agent.ts';
import { freePort, waitFor } from './ports.ts';
import { spawnTracked, type Spawned } from './processes.ts';
import { connect } from 'node:net';

export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes?: { key: string; value: Record<string, unknown> }[];
  status?: { code?: number };
}

export interface ReceivedSpan {
  span: OtlpSpan;
  resource: Record<string, unknown>;
  attrs: Record<string, unknown>;
}

export interface ReceivedMetric {
  name: string;
  resource: Record<string, unknown>;
  /** Data points of sums and gauges as {attributes, value}; histograms as {attributes, count} and their exemplars. */
  points: { attrs: Record<string, unknown>; value: number; exemplars: { traceId: string; spanId: string; value: number }[] }[];
}

export interface CollectorOptions {
  /** PEM files: both receivers serve TLS; with clientCaFile they require a client certificate. */
  tls?: { certFile: string; keyFile: string; clientCaFile?: string };
  /** Request headers (lowercase) copied onto every span as the attribute `received.<header>`. */
  copyHeaders?: readonly string[];
}

export interface RunningCollector extends Spawned {
  /** OTLP/gRPC receiver (https:// with TLS). */
  grpcEndpoint: string;
  /** OTLP/HTTP receiver base URL: POST /v1/traces, /v1/metrics (https:// with TLS). */
  httpEndpoint: string;
  spans(): ReceivedSpan[];
  /** How many spans arrived (without building them). */
  spanCount(): number;
  metrics(): ReceivedMetric[];
}

/**
 * The file exporter's documents, one per line. The file is read as bytes and each line decoded
 * alone: a long run's file (300,000 spans) outgrows the longest string V8 makes.
 */
function* jsonLines<T>(path: string): Generator<T> {
  if (!existsSync(path)) return;
  const bytes = readFileSync(path);
  for (let at = 0; at < bytes.length; ) {
    let end = bytes.indexOf(0x0a, at);
    if (end < 0) end = bytes.length;
    const line = bytes.toString('utf8', at, end);
    at = end + 1;
    if (line.trim()) yield JSON.parse(line) as T;
  }
}

export function otelcolBinary(): string {
  return execFileSync('bash', [join(ROOT, 'test/peers/build-otelcol.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

function attrValue(v: Record<string, unknown>): unknown {
  if ('stringValue' in v) return v.stringValue;
  if ('intValue' in v) return Number(v.intValue);
  if ('doubleValue' in v) return v.doubleValue;
  if ('boolValue' in v) return v.boolValue;
  return v;
}

export function attrMap(list: { key: string; value: Record<string, unknown> }[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of list ?? []) out[a.key] = attrValue(a.value);
  return out;
}

export async function startCollector(opts: CollectorOptions = {}): Promise<RunningCollector> {
  const bin = otelcolBinary();
  const dir = mkdtempSync(join(tmpdir(), 'perfcatch-otelcol-'));
  const grpcPort = await freePort();
  const httpPort = await freePort();
  const tls = opts.tls
    ? `
        tls:
          cert_file: ${opts.tls.certFile}
          key_file: ${opts.tls.keyFile}${opts.tls.clientCaFile ? `\n          client_ca_file: ${opts.tls.clientCaFile}` : ''}`
    : '';
  const copied = opts.copyHeaders ?? [];
  const headerProcessor = copied.length
    ? `
processors:
  attributes/headers:
    actions:
${copied.map((h) => `      - key: received.${h}\n        from_context: metadata.${h}\n        action: insert`).join('\n')}`
    : '';
  const tracesProcessors = copied.length ? '\n      processors: [attributes/headers]' : '';
  const out = join(dir, 'spans.jsonl');
  const metricsOut = join(dir, 'metrics.jsonl');
  const config = `
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:${grpcPort}
        include_metadata: true${tls}
      http:
        endpoint: 127.0.0.1:${httpPort}
        include_metadata: true${tls}${headerProcessor}
exporters:
  file:
    path: ${out}
    flush_interval: 100ms
  file/metrics:
    path: ${metricsOut}
    flush_interval: 100ms
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]${tracesProcessors}
      exporters: [file]
    metrics:
      receivers: [otlp]
      exporters: [file/metrics]
`;
  writeFileSync(join(dir, 'config.yaml'), config);
  const s = spawnTracked(bin, ['--config', join(dir, 'config.yaml')]);
  for (const port of [grpcPort, httpPort]) {
    await waitFor(`collector port ${port}`, () =>
      new Promise<true | undefined>((resolve) => {
        if (s.child.exitCode !== null) throw new Error(`collector exited: ${s.output()}`);
        const sock = connect(port, '127.0.0.1');
        sock.once('connect', () => {
          sock.destroy();
          resolve(true);
        });
        sock.once('error', () => resolve(undefined));
      }),
    );
  }
  return {
    ...s,
    grpcEndpoint: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${grpcPort}`,
    httpEndpoint: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${httpPort}`,
    spans: () => {
      const result: ReceivedSpan[] = [];
      for (const doc of jsonLines<{ resourceSpans: { resource?: { attributes?: never }; scopeSpans: { spans: OtlpSpan[] }[] }[] }>(out)) {
        for (const rs of doc.resourceSpans) {
          const resource = attrMap(rs.resource?.attributes);
          for (const ss of rs.scopeSpans) for (const span of ss.spans) result.push({ span, resource, attrs: attrMap(span.attributes) });
        }
      }
      return result;
    },
    spanCount: () => {
      let n = 0;
      for (const doc of jsonLines<{ resourceSpans: { scopeSpans: { spans: unknown[] }[] }[] }>(out)) {
        for (const rs of doc.resourceSpans) for (const ss of rs.scopeSpans) n += ss.spans.length;
      }
      return n;
    },
    metrics: () => {
      const result: ReceivedMetric[] = [];
      type Point = { attributes?: never; asDouble?: number; asInt?: string; count?: string; exemplars?: { traceId: string; spanId: string; asDouble: number }[] };
      type Metric = { name: string; sum?: { dataPoints: Point[] }; gauge?: { dataPoints: Point[] }; histogram?: { dataPoints: Point[] } };
      for (const doc of jsonLines<{ resourceMetrics: { resource?: { attributes?: never }; scopeMetrics: { metrics: Metric[] }[] }[] }>(metricsOut)) {
        for (const rm of doc.resourceMetrics) {
          const resource = attrMap(rm.resource?.attributes);
          for (const sm of rm.scopeMetrics) {
            for (const m of sm.metrics) {
              const dps = m.sum?.dataPoints ?? m.gauge?.dataPoints ?? m.histogram?.dataPoints ?? [];
              const points = dps.map((p) => ({
                attrs: attrMap(p.attributes),
                value: Number(p.asDouble ?? p.asInt ?? p.count ?? NaN),
                exemplars: (p.exemplars ?? []).map((e) => ({ traceId: e.traceId, spanId: e.spanId, value: e.asDouble })),
              }));
              result.push({ name: m.name, resource, points });
            }
          }
        }
      }
      return result;
    },
  };
}
