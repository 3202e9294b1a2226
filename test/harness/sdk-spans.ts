/** Helpers for tests that send spans through the OpenTelemetry SDK's own exporter. */
import type { HrTime } from '@opentelemetry/api';

export function hrTimeFromEpochNs(ns: bigint): HrTime {
  return [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)];
}
