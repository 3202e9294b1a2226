/**
 * The OTLP metric exporter, over HTTP or gRPC as configured (otlp-env.ts), built from
 * the exporter package's base class and the shared transport (otlp-transport.ts).
 */
import { OTLPMetricExporterBase } from '@opentelemetry/exporter-metrics-otlp-http';
import { MetricsExporterMetricsHelper, ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';
import type { PushMetricExporter } from '@opentelemetry/sdk-metrics';
import type { OtlpExportSettings } from './otlp-env.ts';
import { createOtlpExportDelegate } from './otlp-transport.ts';

export function createOtlpMetricExporter(settings: OtlpExportSettings): PushMetricExporter {
  return new OTLPMetricExporterBase(createOtlpExportDelegate(settings, ProtobufMetricsSerializer, MetricsExporterMetricsHelper));
}
