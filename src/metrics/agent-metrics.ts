/**
 * Prometheus metrics of the agent: per-request cost histograms plus the agent's own
 * throughput and loss counters. Served by the API's /metrics, not the exporter's own server.
 */
import { hostname } from 'node:os';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { OtlpExportSettings } from '../otel/otlp-env.ts';
import { createOtlpMetricExporter } from '../otel/otlp-metric-exporter.ts';
import { MeterProvider, PeriodicExportingMetricReader, type MetricReader } from '@opentelemetry/sdk-metrics';
import type { PipelineCounters, RequestRecord } from '../types.ts';
import { LOSS_STAGES } from './loss-stages.ts';
import { RequestMetricsProducer } from './request-metrics.ts';
import { HttpSeriesTable, RequestSeriesTable } from './request-series.ts';
import { acceptsOpenMetrics, OPENMETRICS_CONTENT_TYPE, serializeOpenMetrics } from './openmetrics.ts';

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface AgentMetricsSources {
  /** Also push metrics over OTLP (HTTP or gRPC, as configured) every intervalMs. */
  otlp?: { settings: OtlpExportSettings; intervalMs: number };
  /** The agent's own Resource: OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME. */
  resource?: Record<string, string>;
  counters: () => PipelineCounters;
  buffer: () => { size: number; capacity: number };
  /** Serving threads' CPU charged to no request, by process and service (cumulative). */
  cpuUnattributed?: () => { process: string; service: string; seconds: number }[];
  /** Request series with no request for this long are dropped (0: never). */
  seriesTtlMs?: number;
}

/** How often expired series are looked for, at most. */
const EXPIRY_SWEEP_MAX_MS = 60_000;

export class AgentMetrics {
  /** Per-request counts and histograms, aggregated without SDK instruments (see request-series.ts). */
  readonly #requests = new RequestSeriesTable();
  /** The semantic conventions' HTTP duration histograms (and the CPU one beside them). */
  readonly #http = new HttpSeriesTable();
  readonly #provider: MeterProvider;
  readonly #reader: PrometheusExporter;
  // The exporter's own serializer is private; this one is configured the same way.
  readonly #serializer = new PrometheusSerializer(undefined, false, undefined, true, true);
  readonly #expiryTimer: NodeJS.Timeout | null = null;

  constructor(sources: AgentMetricsSources) {
    const ttl = sources.seriesTtlMs ?? 0;
    if (ttl > 0) {
      this.#expiryTimer = setInterval(() => this.expireSeries(Date.now() - ttl), Math.min(EXPIRY_SWEEP_MAX_MS, Math.max(1_000, ttl / 4)));
      this.#expiryTimer.unref();
    }
    // Every reader collects the request metrics from this producer, the rest from the meter below.
    const metricProducers = [new RequestMetricsProducer(this.#requests, this.#http)];
    this.#reader = new PrometheusExporter({ preventServerStart: true, withoutTargetInfo: true, withoutScopeInfo: true, metricProducers });
    const readers: MetricReader[] = [this.#reader];
    if (sources.otlp) {
      // The same metrics, pushed to an OTLP endpoint (optional: --otlp-metrics).
      readers.push(
        new PeriodicExportingMetricReader({
          exporter: createOtlpMetricExporter(sources.otlp.settings),
          metricProducers,
          exportIntervalMillis: sources.otlp.intervalMs,
          exportTimeoutMillis: Math.min(sources.otlp.intervalMs, 10_000),
        }),
      );
    }
    this.#provider = new MeterProvider({
      readers,
      resource: resourceFromAttributes({ 'host.name': hostname(), 'service.name': 'perfcatch-agent', ...sources.resource }),
    });
    const meter = this.#provider.getMeter('perfcatch');

    const recordsLost = meter.createObservableCounter('perfcatch_records_lost', {
      description: 'Records lost, by pipeline stage',
    });
    const spansExported = meter.createObservableCounter('perfcatch_spans_exported', { description: 'Spans accepted by the OTLP endpoint' });
    const spansFailed = meter.createObservableCounter('perfcatch_spans_failed', { description: 'Spans given up after their OTLP export failed for the retry window' });
    const exportRetries = meter.createObservableCounter('perfcatch_span_export_retries', { description: 'Failed OTLP export attempts, retried' });
    const spansDropped = meter.createObservableCounter('perfcatch_spans_dropped', { description: 'Spans dropped before export (queue full)' });
    const spansSampledOut = meter.createObservableCounter('perfcatch_spans_sampled_out', {
      description: 'Spans not exported by the trace sampler (OTEL_TRACES_SAMPLER); their requests are stored and counted',
    });
    const loaderRestarts = meter.createObservableCounter('perfcatch_loader_restarts', { description: 'Restarts of the eBPF loader process' });
    const kernelRequests = meter.createObservableCounter('perfcatch_kernel_requests', { description: 'Request records submitted by the kernel' });
    const connectionsAccepted = meter.createObservableCounter('perfcatch_connections_accepted', {
      description: 'Accepted TCP connections that passed the filters',
    });
    const cpuUnattributed = meter.createObservableCounter('perfcatch_cpu_unattributed_seconds', {
      unit: 's',
      description: "Serving threads' on-CPU time charged to no request (with the requests' CPU, all of it)",
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
        result.observe(exportRetries, counters.agent.span_export_retries);
        result.observe(spansDropped, counters.agent.spans_dropped);
        result.observe(spansSampledOut, counters.agent.spans_sampled_out);
        result.observe(loaderRestarts, counters.agent.loader_restarts);
        result.observe(kernelRequests, counters.kernel.requests ?? 0);
        result.observe(connectionsAccepted, counters.kernel.conn_accepted ?? 0);
        for (const p of sources.cpuUnattributed?.() ?? []) result.observe(cpuUnattributed, p.seconds, { process: p.process, service: p.service });
        const buffer = sources.buffer();
        result.observe(bufferSize, buffer.size);
        result.observe(bufferCapacity, buffer.capacity);
      },
      [recordsLost, spansExported, spansFailed, exportRetries, spansDropped, spansSampledOut, loaderRestarts, kernelRequests, connectionsAccepted, cpuUnattributed, bufferSize, bufferCapacity],
    );
  }

  /** Drops request series with no request since `cutoffMs` (epoch ms); returns how many. */
  expireSeries(cutoffMs: number): number {
    return this.#requests.expire(cutoffMs / 1000);
  }

  get seriesCount(): number {
    return this.#requests.all.length;
  }

  recordRequest(r: RequestRecord): void {
    this.#requests.record(r);
    this.#http.record(r);
  }

  /** Prometheus text, or OpenMetrics (with exemplars) when the Accept header asks for it. */
  async renderPrometheus(accept?: string): Promise<{ contentType: string; body: string }> {
    const { resourceMetrics } = await this.#reader.collect();
    if (acceptsOpenMetrics(accept)) return { contentType: OPENMETRICS_CONTENT_TYPE, body: serializeOpenMetrics(resourceMetrics) };
    return { contentType: PROMETHEUS_CONTENT_TYPE, body: this.#serializer.serialize(resourceMetrics) };
  }

  shutdown(): Promise<void> {
    if (this.#expiryTimer) clearInterval(this.#expiryTimer);
    return this.#provider.shutdown();
  }
}

export { MAX_ROUTES_PER_SERVICE } from './route-limiter.ts';
