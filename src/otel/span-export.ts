/**
 * Bounded queue of encoded spans in front of the OTLP transport (HTTP or gRPC). Spans arrive as
 * protobuf bytes (span-builder.ts) and wait in per-resource byte buffers, never as objects;
 * a batch becomes one ExportTraceServiceRequest. Unlike the SDK's batch processor the queue
 * counts every span it drops, and it never blocks the pipeline: when the collector is slow
 * or unreachable the queue fills and further spans are dropped and counted.
 */
import { gzip } from 'node:zlib';
import { ExportResultCode } from '@opentelemetry/core';
import type { IOtlpExportDelegate } from '@opentelemetry/otlp-exporter-base';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { ExportQueue, type ExportQueueOptions } from './export-queue.ts';
import type { OtlpExportSettings } from './otlp-env.ts';
import { createOtlpExportDelegate } from './otlp-transport.ts';
import { ProtobufWriter, varintSize, WireType } from '../util/protobuf-writer.ts';
import { INSTRUMENTATION_SCOPE, type OtlpResource } from './span-builder.ts';

export interface SpanExportCounters {
  exported: number;
  /** Given up after failing for the retry window (export-queue.ts). */
  failed: number;
  dropped: number;
  queued: number;
  /** Failed export attempts that were retried. */
  retries: number;
  /** Encoded bytes waiting for the collector or in flight. */
  queuedBytes: number;
}

export interface SpanExportQueueOptions {
  /** Spans not yet encoded into a request, at most (about one flush interval's worth). */
  maxQueue?: number;
  /** Encoded requests: bytes, parallelism, retry (see export-queue.ts). */
  requests?: Partial<ExportQueueOptions>;
  maxBatch?: number;
  flushIntervalMs?: number;
  onExportError?: (message: string) => void;
}

/** One ExportTraceServiceRequest, already encoded. */
export interface EncodedSpanBatch {
  bytes: Uint8Array;
  spans: number;
}

/** Sends encoded requests: an OTLP/HTTP or OTLP/gRPC delegate (otlp-transport.ts). */
export type EncodedSpanExporter = Pick<IOtlpExportDelegate<EncodedSpanBatch>, 'export' | 'shutdown'>;

/** Spans waiting for one request: each resource's encoded ScopeSpans.spans fields. */
interface PendingBatch {
  byResource: Map<OtlpResource, ProtobufWriter>;
  spans: number;
}

/** ScopeSpans.scope, encoded once: field 1 holding InstrumentationScope{name, version}. */
const SCOPE_FIELD: Buffer = (() => {
  const scope = new ProtobufWriter(64);
  scope.tag(1, WireType.LEN);
  scope.string(INSTRUMENTATION_SCOPE.name);
  scope.tag(2, WireType.LEN);
  scope.string(INSTRUMENTATION_SCOPE.version);
  const field = new ProtobufWriter(64);
  field.tag(1, WireType.LEN);
  field.varint(scope.pos);
  field.raw(scope.view());
  return Buffer.from(field.view());
})();

/** Per-resource span buffers kept for reuse (one per service instance in a batch). */
const MAX_SPARE_WRITERS = 64;
/** Request buffers kept for reuse once their export is done, and the largest kept. */
const MAX_SPARE_REQUESTS = 2;
const MAX_SPARE_REQUEST_BYTES = 4 << 20;
const REQUEST_BUFFER_STEP = 64 << 10;

const lengthDelimitedSize = (n: number) => 1 + varintSize(n) + n;

/**
 * ExportTraceServiceRequest { repeated ResourceSpans { Resource, ScopeSpans { scope, spans } } },
 * written into `out` (reset first).
 */
function encodeExportRequest(batch: PendingBatch, out: ProtobufWriter): Uint8Array {
  out.reset();
  for (const [resource, spans] of batch.byResource) {
    const scopeSpans = SCOPE_FIELD.length + spans.pos;
    out.tag(1, WireType.LEN); // ExportTraceServiceRequest.resource_spans
    out.varint(lengthDelimitedSize(resource.bytes.length) + lengthDelimitedSize(scopeSpans));
    out.tag(1, WireType.LEN); // ResourceSpans.resource
    out.varint(resource.bytes.length);
    out.raw(resource.bytes);
    out.tag(2, WireType.LEN); // ResourceSpans.scope_spans
    out.varint(scopeSpans);
    out.raw(SCOPE_FIELD);
    out.raw(spans.view());
  }
  return out.view();
}

export class SpanExportQueue {
  /** Oldest first; spans go to the last one until it holds maxBatch. */
  private batches: PendingBatch[] = [];
  /** Spans in `batches`. */
  private pendingSpans = 0;
  /** Encoded requests on their way to the collector: retried, a few at once, bounded by bytes. */
  private readonly requests: ExportQueue;
  private readonly timer: NodeJS.Timeout;
  private readonly maxQueue: number;
  private readonly maxBatch: number;
  private readonly onExportError: (message: string) => void;
  private lastError = '';
  private droppedPending = 0;
  private readonly exporter: EncodedSpanExporter;
  /**
   * Span buffers are reused, not reallocated per batch: fresh megabytes of ArrayBuffers per
   * second count as external memory pressure and set off full GCs of the agent's heap. Each
   * request is encoded into `request` and copied out once, as it may wait to be retried.
   */
  private readonly spareWriters: ProtobufWriter[] = [];
  private readonly request = new ProtobufWriter(256 * 1024);
  /**
   * The memory of requests whose export is done (ExportQueue.onReleased), for the next copies
   * out of `request`: a fresh buffer per request cost 0.3 µs per span at 1,000 req/s in the
   * live agent's profile (allocating, zeroing and faulting in some 500 KB each second).
   */
  private readonly spareRequests: ArrayBuffer[] = [];

  constructor(exporter: EncodedSpanExporter, opts: SpanExportQueueOptions = {}) {
    this.exporter = exporter;
    this.requests = new ExportQueue(
      (request, done) => this.exporter.export({ bytes: request.bytes, spans: request.items }, done),
      opts.requests,
    );
    this.requests.onFailure = (message) => {
      // Log each distinct failure once per streak, not once per attempt.
      if (message !== this.lastError) this.onExportError(message);
      this.lastError = message;
    };
    this.requests.onRecovered = () => (this.lastError = '');
    this.requests.onReleased = (request) => {
      const memory = request.bytes.buffer;
      if (memory instanceof ArrayBuffer && memory.byteLength <= MAX_SPARE_REQUEST_BYTES && this.spareRequests.length < MAX_SPARE_REQUESTS) this.spareRequests.push(memory);
    };
    this.maxQueue = opts.maxQueue ?? 20_000;
    this.maxBatch = opts.maxBatch ?? 1_000;
    this.onExportError = opts.onExportError ?? (() => {});
    this.timer = setInterval(() => this.flush(), opts.flushIntervalMs ?? 1_000);
    this.timer.unref();
  }

  /** Queues one encoded Span message (copied: `span` may be reused by the caller). */
  get counters(): SpanExportCounters {
    const r = this.requests.counters;
    return {
      exported: r.sent,
      failed: r.failed,
      dropped: this.droppedPending + r.dropped,
      queued: this.pendingSpans + r.queued,
      retries: r.retries,
      queuedBytes: r.queuedBytes,
    };
  }

  /** Epoch ms of the first failure since the last success, null while exports succeed. */
  get failingSince(): number | null {
    return this.requests.failingSince;
  }

  add(resource: OtlpResource, span: Uint8Array): void {
    if (this.pendingSpans >= this.maxQueue) {
      this.droppedPending++;
      return;
    }
    let batch = this.batches[this.batches.length - 1];
    if (!batch || batch.spans >= this.maxBatch) {
      batch = { byResource: new Map(), spans: 0 };
      this.batches.push(batch);
    }
    let w = batch.byResource.get(resource);
    if (!w) {
      w = this.spareWriters.pop() ?? new ProtobufWriter(32 * 1024);
      w.reset();
      batch.byResource.set(resource, w);
    }
    w.tag(2, WireType.LEN); // ScopeSpans.spans
    w.varint(span.length);
    w.raw(span);
    batch.spans++;
    this.pendingSpans++;
    if (batch.spans >= this.maxBatch) this.flush();
  }

  /** Encodes every pending batch into a request and hands it to the request queue. */
  flush(): void {
    for (let batch = this.batches.shift(); batch; batch = this.batches.shift()) {
      this.pendingSpans -= batch.spans;
      const bytes = this.copyOut(encodeExportRequest(batch, this.request));
      for (const w of batch.byResource.values()) if (this.spareWriters.length < MAX_SPARE_WRITERS) this.spareWriters.push(w);
      this.requests.enqueue({ bytes, items: batch.spans });
    }
  }

  /**
   * `encoded` in memory of its own: a spare request's when one is large enough. When none is,
   * the smallest spare goes, so that the larger memory allocated here takes its place once
   * released (spares kept from a slower hour would otherwise never fit again).
   */
  private copyOut(encoded: Uint8Array): Buffer {
    const i = this.spareRequests.findIndex((memory) => memory.byteLength >= encoded.length);
    if (i < 0 && this.spareRequests.length > 0) {
      this.spareRequests.sort((a, b) => a.byteLength - b.byteLength).shift();
    }
    const memory = i >= 0 ? this.spareRequests.splice(i, 1)[0]! : Buffer.allocUnsafeSlow(Math.ceil(encoded.length / REQUEST_BUFFER_STEP) * REQUEST_BUFFER_STEP).buffer;
    const bytes = Buffer.from(memory, 0, encoded.length);
    bytes.set(encoded);
    return bytes;
  }

  /** Exports what is queued, waiting at most timeoutMs. */
  async shutdown(timeoutMs = 5_000): Promise<void> {
    clearInterval(this.timer);
    this.flush();
    const deadline = Date.now() + timeoutMs;
    while (!this.requests.idle && Date.now() < deadline) {
      this.requests.pump();
      await new Promise((r) => setTimeout(r, 20));
    }
    this.requests.stop();
    await this.exporter.shutdown();
  }
}

const withoutHeader = (headers: Record<string, string>, name: string) => Object.fromEntries(Object.entries(headers).filter(([k]) => k.toLowerCase() !== name));

/**
 * gzip level for span requests over OTLP/HTTP. The transport's own gzip (zlib's default,
 * level 6) cost about 4.5 µs per span at 5,000 spans/s on the test machine, level 1 about 2 µs
 * (test/bench/live-cost.ts), for about 10% more bytes (measured on a 1,000-span request).
 */
const SPAN_GZIP_LEVEL = 1;
const MIN_GZIP_CHUNK = 16 * 1024;

/**
 * The exporter for encoded span batches, over OTLP/HTTP or OTLP/gRPC as configured
 * (otlp-env.ts): headers, TLS, timeout and compression come from the settings. Over HTTP
 * with gzip the request is compressed here (SPAN_GZIP_LEVEL, on the thread pool) and sent
 * with Content-Encoding: gzip; gRPC compresses in its transport.
 */
export function createOtlpExporter(settings: OtlpExportSettings): EncodedSpanExporter {
  const gzipHere = settings.protocol !== 'grpc' && settings.compression === 'gzip';
  const delegate = createOtlpExportDelegate(
    gzipHere ? { ...settings, compression: 'none', headers: { ...withoutHeader(settings.headers, 'content-encoding'), 'Content-Encoding': 'gzip' } } : settings,
    { serializeRequest: (batch: EncodedSpanBatch) => batch.bytes, deserializeResponse: ProtobufTraceSerializer.deserializeResponse },
    { name: 'span', countItems: (batch: EncodedSpanBatch) => batch.spans },
  );
  if (!gzipHere) return delegate;
  return {
    export: (batch, done) =>
      // One output chunk for the whole request: zlib hands each chunk back from the thread
      // pool, and every hand-back wakes the main thread (16 KB chunks: several per request).
      // Spans gzip about 5:1, so a quarter of the input holds nearly every request's output
      // without allocating the input's size again.
      gzip(batch.bytes, { level: SPAN_GZIP_LEVEL, chunkSize: Math.max(MIN_GZIP_CHUNK, batch.bytes.length >> 2) }, (err, bytes) => {
        if (err) return done({ code: ExportResultCode.FAILED, error: err });
        delegate.export({ bytes, spans: batch.spans }, done);
      }),
    shutdown: () => delegate.shutdown(),
  };
}
