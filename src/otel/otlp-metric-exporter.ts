/**
 * The OTLP metric exporter, over HTTP or gRPC as configured (otlp-env.ts), built from
 * the exporter package's base class and the shared transport (otlp-transport.ts); histogram
 * points carry their exemplars (metrics-exemplars.ts).
 */
import { OTLPMetricExporterBase } from '@opentelemetry/exporter-metrics-otlp-http';
import { MetricsExporterMetricsHelper } from '@opentelemetry/otlp-transformer';
import type { PushMetricExporter } from '@opentelemetry/sdk-metrics';
import type { OtlpExportSettings } from './otlp-env.ts';
import { ProtobufMetricsWithExemplarsSerializer } from './metrics-exemplars.ts';
import { createOtlpExportDelegate } from './otlp-transport.ts';

export function createOtlpMetricExporter(settings: OtlpExportSettings): PushMetricExporter {
  return new OTLPMetricExporterBase(createOtlpExportDelegate(settings, ProtobufMetricsWithExemplarsSerializer, MetricsExporterMetricsHelper));
}
