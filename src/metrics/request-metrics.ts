/**
 * The per-request metrics (request and byte counters, duration and CPU histograms), served to
 * the SDK's readers as a MetricProducer from RequestSeriesTable's own aggregates. Every reader
 * (the /metrics one, the OTLP one) collects the same cumulative state: nothing is reset by a
 * collection, so no reader takes data from another.
 */
import { ValueType, type Attributes, type HrTime } from '@opentelemetry/api';
import { hrTime } from '@opentelemetry/core';
import { emptyResource } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  DataPointType,
  type CollectionResult,
  type HistogramMetricData,
  type MetricData,
  type MetricDescriptor,
  type MetricProducer,
  type SumMetricData,
} from '@opentelemetry/sdk-metrics';
import type { BucketHistogram, HttpSeries, HttpSeriesTable, RequestSeries, RequestSeriesTable } from './request-series.ts';

// Names are chosen so that what Prometheus sees is exactly the documented name: the
// exporter appends `_total` to monotonic counters and leaves unit suffixes alone.
const REQUESTS = descriptor('perfcatch_requests', 'Requests observed', '');
const BYTES_RECEIVED = descriptor('perfcatch_request_bytes_received', 'Bytes read from clients (all requests)', 'By');
const BYTES_SENT = descriptor('perfcatch_request_bytes_sent', 'Bytes written to clients (all requests)', 'By');
const DURATION = descriptor('perfcatch_request_duration_ms', 'Request duration, first read to last write of the response', 'ms');
const CPU = descriptor('perfcatch_request_cpu_ms', 'On-CPU time charged to the request', 'ms');
// The stable HTTP metrics of the semantic conventions, and the per-request CPU beside them
// (no convention exists for it, hence perfcatch.).
const HTTP_SERVER_DURATION = descriptor('http.server.request.duration', 'Duration of HTTP server requests', 's');
const HTTP_CLIENT_DURATION = descriptor('http.client.request.duration', 'Duration of HTTP client requests', 's');
const HTTP_SERVER_CPU = descriptor('perfcatch.http.server.request.cpu_time', 'On-CPU time charged to the HTTP server request', 's');

/** A bucket's exemplar: the latest request (or call) measured into it. */
export interface PointExemplar {
  value: number;
  timeMs: number;
  traceId: string;
  spanId: string;
}

/**
 * The SDK's data model has no exemplars, and its serializers write none: the producer attaches
 * them to its histogram points, and src/otel/metrics-exemplars.ts writes them into OTLP.
 */
export type PointWithExemplars = HistogramMetricData['dataPoints'][number] & { exemplars?: readonly PointExemplar[] };

export function exemplarsOf(point: object): readonly PointExemplar[] {
  return (point as PointWithExemplars).exemplars ?? [];
}

export class RequestMetricsProducer implements MetricProducer {
  readonly #table: RequestSeriesTable;
  readonly #http: HttpSeriesTable;

  constructor(table: RequestSeriesTable, http: HttpSeriesTable) {
    this.#table = table;
    this.#http = http;
  }

  async collect(): Promise<CollectionResult> {
    const series = this.#table.all;
    const endTime = hrTime();
    const http = this.#http;
    // Like the SDK's instruments, nothing at all until the first request (or call).
    const metrics: MetricData[] = [
      ...(series.length === 0 ? [] : [
        sum(REQUESTS, series, endTime, (s) => s.requests),
        sum(BYTES_RECEIVED, series, endTime, (s) => s.bytesReceived),
        sum(BYTES_SENT, series, endTime, (s) => s.bytesSent),
        histogram(DURATION, series, endTime, (s) => s.duration),
        histogram(CPU, series, endTime, (s) => s.cpu),
      ]),
      ...(http.server.length === 0 ? [] : [
        histogram(HTTP_SERVER_DURATION, http.server, endTime, (s: HttpSeries) => s.duration),
        histogram(HTTP_SERVER_CPU, http.server, endTime, (s: HttpSeries) => s.cpu),
      ]),
      ...(http.client.length === 0 ? [] : [histogram(HTTP_CLIENT_DURATION, http.client, endTime, (s: HttpSeries) => s.duration)]),
    ];
    return {
      // Readers replace the resource with their MeterProvider's.
      resourceMetrics: { resource: emptyResource(), scopeMetrics: metrics.length ? [{ scope: { name: 'perfcatch' }, metrics }] : [] },
      errors: [],
    };
  }
}

function descriptor(name: string, description: string, unit: string): MetricDescriptor {
  return { name, description, unit, valueType: ValueType.DOUBLE };
}

function sum(
  descriptor: MetricDescriptor,
  series: readonly RequestSeries[],
  endTime: HrTime,
  value: (s: RequestSeries) => number,
): SumMetricData {
  return {
    descriptor,
    aggregationTemporality: AggregationTemporality.CUMULATIVE,
    dataPointType: DataPointType.SUM,
    isMonotonic: true,
    dataPoints: series.map((s) => ({ attributes: s.attributes, startTime: s.startTime, endTime, value: value(s) })),
  };
}

function histogram<S extends { attributes: Attributes; startTime: HrTime }>(
  descriptor: MetricDescriptor,
  series: readonly S[],
  endTime: HrTime,
  histogramOf: (s: S) => BucketHistogram,
): HistogramMetricData {
  return {
    descriptor,
    aggregationTemporality: AggregationTemporality.CUMULATIVE,
    dataPointType: DataPointType.HISTOGRAM,
    dataPoints: series.map((s) => {
      const h = histogramOf(s);
      const e = h.exemplars;
      const exemplars: PointExemplar[] = [];
      for (let i = 0; i < e.values.length; i++) {
        const ids = e.idsAt(i);
        if (ids) exemplars.push({ value: e.values[i]!, timeMs: e.timesMs[i]!, traceId: ids.traceId, spanId: ids.spanId });
      }
      // Copies: an exporter may still be encoding this while new requests are recorded.
      const point: PointWithExemplars = {
        attributes: s.attributes,
        startTime: s.startTime,
        endTime,
        value: {
          buckets: { boundaries: [...h.boundaries], counts: Array.from(h.counts) },
          count: h.count,
          sum: h.sum,
          min: h.count ? h.min : undefined,
          max: h.count ? h.max : undefined,
        },
        exemplars,
      };
      return point;
    }),
  };
}
