/**
 * OTLP metrics with exemplars. The transformer package serializes the SDK's data points and
 * has no exemplars to write; this serializer lets it encode the request, then walks the
 * encoded ExportMetricsServiceRequest down to each HistogramDataPoint and appends the point's
 * exemplars (field 8) to it, rewriting the lengths of the messages around it.
 * Field numbers: opentelemetry/proto/metrics/v1/metrics.proto.
 */
import type { ISerializer } from '@opentelemetry/otlp-transformer';
import { ProtobufMetricsSerializer, type IExportMetricsServiceResponse } from '@opentelemetry/otlp-transformer';
import type { ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { exemplarsOf, type PointExemplar } from '../metrics/request-metrics.ts';
import { ProtobufWriter, WireType } from '../util/protobuf-writer.ts';

const REQUEST_RESOURCE_METRICS = 1;
const RESOURCE_METRICS_SCOPE_METRICS = 2;
const SCOPE_METRICS_METRICS = 2;
const METRIC_NAME = 1;
const METRIC_HISTOGRAM = 9;
const HISTOGRAM_DATA_POINTS = 1;
const POINT_EXEMPLARS = 8;
const EXEMPLAR_TIME = 2;
const EXEMPLAR_AS_DOUBLE = 3;
const EXEMPLAR_SPAN_ID = 4;
const EXEMPLAR_TRACE_ID = 5;

interface Field {
  field: number;
  wire: number;
  /** The whole field, tag included. */
  raw: Uint8Array;
  /** A length-delimited field's payload. */
  payload: Uint8Array | null;
}

function readVarint(buf: Uint8Array, pos: number): [value: number, next: number] {
  let value = 0;
  let mul = 1;
  for (;;) {
    const b = buf[pos++];
    if (b === undefined) throw new Error('truncated varint');
    value += (b & 0x7f) * mul;
    if (b < 0x80) return [value, pos];
    mul *= 128;
  }
}

function readFields(buf: Uint8Array): Field[] {
  const out: Field[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const start = pos;
    const [key, afterKey] = readVarint(buf, pos);
    pos = afterKey;
    const wire = key & 7;
    let payload: Uint8Array | null = null;
    if (wire === WireType.VARINT) pos = readVarint(buf, pos)[1];
    else if (wire === WireType.FIXED64) pos += 8;
    else if (wire === WireType.FIXED32) pos += 4;
    else if (wire === WireType.LEN) {
      const [n, afterLength] = readVarint(buf, pos);
      payload = buf.subarray(afterLength, afterLength + n);
      pos = afterLength + n;
    } else throw new Error(`unexpected wire type ${wire}`);
    out.push({ field: Math.floor(key / 8), wire, raw: buf.subarray(start, pos), payload });
  }
  return out;
}

/** The message `buf` with each length-delimited field numbered `field` replaced by map(payload, index). */
function mapField(buf: Uint8Array, field: number, map: (payload: Uint8Array, index: number) => Uint8Array): Uint8Array {
  const w = new ProtobufWriter(buf.length + 256);
  let index = 0;
  for (const f of readFields(buf)) {
    if (f.field !== field || f.payload === null) {
      w.raw(f.raw);
      continue;
    }
    const payload = map(f.payload, index++);
    w.tag(field, WireType.LEN);
    w.varint(payload.length);
    w.raw(payload);
  }
  return w.view();
}

function encodeExemplar(e: PointExemplar): Uint8Array {
  const w = new ProtobufWriter(64);
  w.tag(EXEMPLAR_TIME, WireType.FIXED64);
  w.fixed64(BigInt(Math.round(e.timeMs * 1000)) * 1000n);
  w.tag(EXEMPLAR_AS_DOUBLE, WireType.FIXED64);
  w.double(e.value);
  w.tag(EXEMPLAR_SPAN_ID, WireType.LEN);
  w.hexBytes(e.spanId);
  w.tag(EXEMPLAR_TRACE_ID, WireType.LEN);
  w.hexBytes(e.traceId);
  return w.view();
}

function withExemplars(point: Uint8Array, exemplars: readonly PointExemplar[]): Uint8Array {
  if (exemplars.length === 0) return point;
  const w = new ProtobufWriter(point.length + exemplars.length * 64);
  w.raw(point);
  for (const e of exemplars) {
    const bytes = encodeExemplar(e);
    w.tag(POINT_EXEMPLARS, WireType.LEN);
    w.varint(bytes.length);
    w.raw(bytes);
  }
  return w.view();
}

/** The name field of an encoded Metric. */
function metricName(metric: Uint8Array): string {
  const f = readFields(metric).find((x) => x.field === METRIC_NAME && x.payload !== null);
  return f ? Buffer.from(f.payload!).toString('utf8') : '';
}

export function serializeMetricsWithExemplars(request: ResourceMetrics): Uint8Array | undefined {
  const encoded = ProtobufMetricsSerializer.serializeRequest(request);
  if (!encoded) return encoded;
  // The transformer writes one ResourceMetrics, its scopes and metrics in the SDK's order.
  const metrics = request.scopeMetrics.map((s) => s.metrics);
  return mapField(encoded, REQUEST_RESOURCE_METRICS, (rm) =>
    mapField(rm, RESOURCE_METRICS_SCOPE_METRICS, (sm, scopeIndex) =>
      mapField(sm, SCOPE_METRICS_METRICS, (metric, metricIndex) => {
        const data = metrics[scopeIndex]?.[metricIndex];
        // Only histograms carry exemplars; a name mismatch means the order assumption broke.
        if (!data || data.descriptor.name !== metricName(metric)) return metric;
        const points = data.dataPoints;
        return mapField(metric, METRIC_HISTOGRAM, (histogram) =>
          mapField(histogram, HISTOGRAM_DATA_POINTS, (point, i) => withExemplars(point, points[i] ? exemplarsOf(points[i]!) : [])),
        );
      }),
    ),
  );
}

export const ProtobufMetricsWithExemplarsSerializer: ISerializer<ResourceMetrics, IExportMetricsServiceResponse> = {
  serializeRequest: serializeMetricsWithExemplars,
  deserializeResponse: ProtobufMetricsSerializer.deserializeResponse,
};
