/**
 * Bounded span queue in front of the OTLP gRPC exporter. Unlike the SDK's batch processor it
 * counts every span it drops, and it never blocks the pipeline: when the collector is slow
 * or unreachable the queue fills and further spans are dropped and counted.
 */
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';

export interface SpanExportCounters {
  exported: number;
  failed: number;
  dropped: number;
  queued: number;
}

export interface SpanExportQueueOptions {
  maxQueue?: number;
  maxBatch?: number;
  flushIntervalMs?: number;
  onExportError?: (message: string) => void;
}

export class SpanExportQueue {
  private queue: ReadableSpan[] = [];
  private inFlight = false;
  private readonly timer: NodeJS.Timeout;
  private readonly maxQueue: number;
  private readonly maxBatch: number;
  private readonly onExportError: (message: string) => void;
  private lastError = '';
  readonly counters: SpanExportCounters = { exported: 0, failed: 0, dropped: 0, queued: 0 };
  private readonly exporter: SpanExporter;

  constructor(exporter: SpanExporter, opts: SpanExportQueueOptions = {}) {
    this.exporter = exporter;
    this.maxQueue = opts.maxQueue ?? 20_000;
    this.maxBatch = opts.maxBatch ?? 1_000;
    this.onExportError = opts.onExportError ?? (() => {});
    this.timer = setInterval(() => this.flush(), opts.flushIntervalMs ?? 1_000);
    this.timer.unref();
  }

  add(span: ReadableSpan): void {
    if (this.queue.length >= this.maxQueue) {
      this.counters.dropped++;
      return;
    }
    this.queue.push(span);
    this.counters.queued = this.queue.length;
    if (this.queue.length >= this.maxBatch) this.flush();
  }

  /** Starts one export if none is running. */
  flush(): void {
    if (this.inFlight || this.queue.length === 0) return;
    const batch = this.queue.length <= this.maxBatch ? this.queue : this.queue.slice(0, this.maxBatch);
    this.queue = this.queue.length <= this.maxBatch ? [] : this.queue.slice(this.maxBatch);
    this.counters.queued = this.queue.length;
    this.inFlight = true;
    this.exporter.export(batch, (result: ExportResult) => {
      this.inFlight = false;
      if (result.code === ExportResultCode.SUCCESS) {
        this.counters.exported += batch.length;
      } else {
        this.counters.failed += batch.length;
        const message = result.error?.message ?? 'export failed';
        // Log each distinct failure once per streak, not once per batch.
        if (message !== this.lastError) this.onExportError(message);
        this.lastError = message;
        return;
      }
      this.lastError = '';
      if (this.queue.length >= this.maxBatch) this.flush();
    });
  }

  /** Exports what is queued, waiting at most timeoutMs. */
  async shutdown(timeoutMs = 5_000): Promise<void> {
    clearInterval(this.timer);
    const deadline = Date.now() + timeoutMs;
    while ((this.queue.length > 0 || this.inFlight) && Date.now() < deadline) {
      this.flush();
      await new Promise((r) => setTimeout(r, 20));
    }
    await this.exporter.shutdown();
  }
}

/**
 * OTLP/gRPC exporter for an endpoint like http://collector:4317. Headers, TLS and timeouts
 * still follow the standard OTEL_EXPORTER_OTLP_* variables; compression defaults to gzip.
 */
export function createOtlpExporter(endpoint: string, env: Record<string, string | undefined>): SpanExporter {
  const compressionSet = env.OTEL_EXPORTER_OTLP_TRACES_COMPRESSION ?? env.OTEL_EXPORTER_OTLP_COMPRESSION;
  return new OTLPTraceExporter({
    url: endpoint,
    ...(compressionSet ? {} : { compression: CompressionAlgorithm.GZIP }),
  });
}
