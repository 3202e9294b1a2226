/**
 * The OpenTelemetry exporter packages' transports, configured from resolved settings
 * (otlp-env.ts) rather than from process.env: OTLP/HTTP through @opentelemetry/otlp-exporter-base,
 * OTLP/gRPC through @opentelemetry/otlp-grpc-exporter-base. Both add the packages' retries of
 * retryable failures; the serializer decides what goes on the wire (spans arrive already
 * encoded, metrics are encoded by the transformer package).
 */
import type { IOtlpExportDelegate } from '@opentelemetry/otlp-exporter-base';
import { createOtlpHttpExportDelegate, httpAgentFactoryFromOptions } from '@opentelemetry/otlp-exporter-base/node-http';
import {
  createEmptyMetadata,
  createInsecureCredentials,
  createOtlpGrpcExportDelegate,
  createSslCredentials,
} from '@opentelemetry/otlp-grpc-exporter-base';
import type { IExporterMetricsHelper, ISerializer } from '@opentelemetry/otlp-transformer';
import type { OtlpExportSettings } from './otlp-env.ts';

/** Requests in flight per exporter, the SDKs' default. */
const CONCURRENCY_LIMIT = 30;
const USER_AGENT = 'perfcatch/0.1.0';

const GRPC_SERVICE = {
  traces: { name: 'TraceExportService', path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export' },
  metrics: { name: 'MetricsExportService', path: '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export' },
} as const;

export function createOtlpExportDelegate<Request, Response>(
  settings: OtlpExportSettings,
  serializer: ISerializer<Request, Response>,
  itemCounter: IExporterMetricsHelper<Request>,
): IOtlpExportDelegate<Request> {
  const shared = { timeoutMillis: settings.timeoutMs, concurrencyLimit: CONCURRENCY_LIMIT, compression: settings.compression, userAgent: USER_AGENT };
  if (settings.protocol === 'grpc') {
    const service = GRPC_SERVICE[settings.signal];
    const { ca, cert, key } = settings.tls;
    const url = new URL(settings.url);
    return createOtlpGrpcExportDelegate(
      {
        ...shared,
        url: url.host,
        credentials: url.protocol === 'http:' ? createInsecureCredentials : () => createSslCredentials(ca, key, cert),
        metadata: () => {
          const metadata = createEmptyMetadata();
          for (const [name, value] of Object.entries(settings.headers)) metadata.set(name, value);
          return metadata;
        },
      },
      serializer,
      `otlp_grpc_${settings.signal}_exporter`,
      itemCounter,
      undefined,
      service.name,
      service.path,
    );
  }
  return createOtlpHttpExportDelegate(
    {
      ...shared,
      url: settings.url,
      // The user's headers first: Content-Type is the protocol's, not theirs to change.
      headers: async () => ({ ...settings.headers, 'Content-Type': 'application/x-protobuf' }),
      // The package leaves ca/cert/key out of plain http:// agents.
      agentFactory: httpAgentFactoryFromOptions({ keepAlive: true, ...settings.tls }),
    },
    serializer,
    `otlp_http_${settings.signal}_exporter`,
    itemCounter,
    undefined,
  );
}
