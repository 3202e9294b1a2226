/**
 * Prometheus metrics of the agent: per-request cost histograms plus the agent's own
 * throughput and loss counters. Served by the API's /metrics, not the exporter's own server.
 */
import { hostname } from 'node:os';
import type { Attributes, Histogram } from '@opentelemetry/api';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader, type MetricReader } from '@opentelemetry/sdk-metrics';
import type { PipelineCounters, RequestRecord } from '../types.ts';
import { RouteLimiter } from './route-limiter.ts';

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const DURATION_BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
const CPU_BUCKETS_MS = [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000];

const STANDARD_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);

/** `stage` label of perfcatch_records_lost_total -> where the count lives in PipelineCounters. */
const LOSS_STAGES: readonly [stage: string, read: (c: PipelineCounters) => number | undefined][] = [
  ['kernel_ringbuf_request', (c) => c.kernel.rb_drop_request],
  ['kernel_ringbuf_data', (c) => c.kernel.rb_drop_data],
  ['kernel_conn_table_full', (c) => c.kernel.conn_table_full],
  ['kernel_capture_shed', (c) => c.kernel.capture_shed],
  ['pipe_malformed', (c) => c.loader.malformed],
  ['agent_malformed', (c) => c.agent.frames_malformed],
  ['agent_data_orphaned', (c) => c.agent.data_orphaned],
  ['kernel_ringbuf_dependency', (c) => c.kernel.rb_drop_dependency],
  ['agent_dependencies_orphaned', (c) => c.agent.dependencies_orphaned],
  ['storage_dropped', (c) => c.agent.storage_dropped],
  ['remote_write_dropped', (c) => c.agent.remote_write_dropped],
];

export interface AgentMetricsSources {
  /** Also push metrics over OTLP/gRPC to this endpoint every intervalMs. */
  otlp?: { endpoint: string; intervalMs: number };
  counters: () => PipelineCounters;
  buffer: () => { size: number; capacity: number };
}

export class AgentMetrics {
  readonly #routes = new RouteLimiter();
  readonly #provider: MeterProvider;
  readonly #reader: PrometheusExporter;
  // The exporter's own serializer is private; this one is configured the same way.
  readonly #serializer = new PrometheusSerializer(undefined, false, undefined, true, true);
  readonly #duration: Histogram;
  readonly #cpu: Histogram;
  /**
   * Request and byte counts are summed here per label set and observed at collection: the
   * SDK hashes the attributes on every record() call, which was a fifth of the agent's CPU.
   */
  readonly #totals = new Map<string, { labels: Attributes; requests: number; received: number; sent: number }>();

  constructor(sources: AgentMetricsSources) {
    this.#reader = new PrometheusExporter({ preventServerStart: true, withoutTargetInfo: true, withoutScopeInfo: true });
    const readers: MetricReader[] = [this.#reader];
    if (sources.otlp) {
      // The same instruments, pushed to an OTLP endpoint (optional: --otlp-metrics).
      readers.push(
        new PeriodicExportingMetricReader({
          exporter: new OTLPMetricExporter({ url: sources.otlp.endpoint, compression: CompressionAlgorithm.GZIP }),
          exportIntervalMillis: sources.otlp.intervalMs,
          exportTimeoutMillis: Math.min(sources.otlp.intervalMs, 10_000),
        }),
      );
    }
    this.#provider = new MeterProvider({
      readers,
      resource: resourceFromAttributes({ 'service.name': 'perfcatch-agent', 'host.name': hostname() }),
    });
    const meter = this.#provider.getMeter('perfcatch');

    // Names are chosen so that what Prometheus sees is exactly the documented name: the
    // exporter appends `_total` to monotonic counters and leaves unit suffixes alone.
    const requests = meter.createObservableCounter('perfcatch_requests', { description: 'Requests observed' });
    const bytesReceived = meter.createObservableCounter('perfcatch_request_bytes_received', {
      description: 'Bytes read from clients (all requests)',
      unit: 'By',
    });
    const bytesSent = meter.createObservableCounter('perfcatch_request_bytes_sent', {
      description: 'Bytes written to clients (all requests)',
      unit: 'By',
    });
    meter.addBatchObservableCallback(
      (result) => {
        for (const t of this.#totals.values()) {
          result.observe(requests, t.requests, t.labels);
          result.observe(bytesReceived, t.received, t.labels);
          result.observe(bytesSent, t.sent, t.labels);
        }
      },
      [requests, bytesReceived, bytesSent],
    );
    this.#duration = meter.createHistogram('perfcatch_request_duration_ms', {
      description: 'Request duration, first read to last write of the response',
      unit: 'ms',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS_MS },
    });
    this.#cpu = meter.createHistogram('perfcatch_request_cpu_ms', {
      description: 'On-CPU time charged to the request',
      unit: 'ms',
      advice: { explicitBucketBoundaries: CPU_BUCKETS_MS },
    });

    const recordsLost = meter.createObservableCounter('perfcatch_records_lost', {
      description: 'Records lost, by pipeline stage',
    });
    const spansExported = meter.createObservableCounter('perfcatch_spans_exported', { description: 'Spans accepted by the OTLP endpoint' });
    const spansFailed = meter.createObservableCounter('perfcatch_spans_failed', { description: 'Spans whose OTLP export failed' });
    const spansDropped = meter.createObservableCounter('perfcatch_spans_dropped', { description: 'Spans dropped before export (queue full)' });
    const loaderRestarts = meter.createObservableCounter('perfcatch_loader_restarts', { description: 'Restarts of the eBPF loader process' });
    const kernelRequests = meter.createObservableCounter('perfcatch_kernel_requests', { description: 'Request records submitted by the kernel' });
    const connectionsAccepted = meter.createObservableCounter('perfcatch_connections_accepted', {
      description: 'Accepted TCP connections that passed the filters',
    });
    const bufferSize = meter.createObservableGauge('perfcatch_buffer_size', { description: 'Requests held in the in-memory buffer' });
    const bufferCapacity = meter.createObservableGauge('perfcatch_buffer_capacity', { description: 'Capacity of the in-memory request buffer' });

    // One batch callback, so all counters in a scrape come from the same snapshot.
    meter.addBatchObservableCallback(
      (result) => {
        const counters = sources.counters();
        for (const [stage, read] of LOSS_STAGES) result.observe(recordsLost, read(counters) ?? 0, { stage });
        result.observe(spansExported, counters.agent.spans_exported);
        result.observe(spansFailed, counters.agent.spans_export_failed);
        result.observe(spansDropped, counters.agent.spans_dropped);
        result.observe(loaderRestarts, counters.agent.loader_restarts);
        result.observe(kernelRequests, counters.kernel.requests ?? 0);
        result.observe(connectionsAccepted, counters.kernel.conn_accepted ?? 0);
        const buffer = sources.buffer();
        result.observe(bufferSize, buffer.size);
        result.observe(bufferCapacity, buffer.capacity);
      },
      [recordsLost, spansExported, spansFailed, spansDropped, loaderRestarts, kernelRequests, connectionsAccepted, bufferSize, bufferCapacity],
    );
  }

  recordRequest(r: RequestRecord): void {
    const route = this.#routes.label(r.service_name, r.route);
    const method = normaliseMethod(r.http_method);
    const status = statusClass(r.http_status);
    const key = `${r.service_name}\0${r.process_name}\0${r.local_port}\0${method}\0${status}\0${route}\0${r.namespace}\0${r.pod_name}`;
    let t = this.#totals.get(key);
    if (!t) {
      t = { labels: requestLabels(r, method, status, route), requests: 0, received: 0, sent: 0 };
      this.#totals.set(key, t);
    }
    t.requests++;
    t.received += r.bytes_received;
    t.sent += r.bytes_sent;
    this.#duration.record(r.duration_ms, t.labels);
    this.#cpu.record(r.cpu_time_ms, t.labels);
  }

  async renderPrometheus(): Promise<{ contentType: string; body: string }> {
    const { resourceMetrics } = await this.#reader.collect();
    return { contentType: PROMETHEUS_CONTENT_TYPE, body: this.#serializer.serialize(resourceMetrics) };
  }

  shutdown(): Promise<void> {
    return this.#provider.shutdown();
  }
}

/** Only bounded labels: never the raw path, peer address, request or correlation id. */
function requestLabels(r: RequestRecord, method: string, status: string, route: string): Attributes {
  const labels: Attributes = {
    service: r.service_name,
    process: r.process_name,
    port: String(r.local_port),
    method,
    status_class: status,
    route,
  };
  if (r.namespace !== null) labels.namespace = r.namespace;
  if (r.pod_name !== null) labels.pod = r.pod_name;
  return labels;
}


function normaliseMethod(method: string | null): string {
  const upper = method?.toUpperCase();
  return upper !== undefined && STANDARD_METHODS.has(upper) ? upper : 'OTHER';
}

function statusClass(status: number | null): string {
  return status !== null && status >= 100 && status <= 599 ? `${Math.floor(status / 100)}xx` : 'none';
}

export { MAX_ROUTES_PER_SERVICE } from './route-limiter.ts';
