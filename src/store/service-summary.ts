/**
 * Per-service aggregates over a set of requests, for /api/services and `perfcatch report`:
 * count, error rate, p50/p95/p99 of duration and CPU, bytes.
 */
import type { RequestRecord } from '../types.ts';

export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
}

export interface ServiceSummary {
  service_name: string;
  process_names: string[];
  count: number;
  errors: number;
  /** Share of requests answered 5xx (0..1). */
  error_rate: number;
  duration_ms: Percentiles;
  cpu_time_ms: Percentiles;
  bytes_received: number;
  bytes_sent: number;
  /** Epoch seconds of the newest request. */
  last_seen: number;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function percentiles(values: number[]): Percentiles {
  values.sort((a, b) => a - b);
  return { p50: percentile(values, 50), p95: percentile(values, 95), p99: percentile(values, 99) };
}

export function summarizeServices(records: Iterable<RequestRecord>): ServiceSummary[] {
  const groups = new Map<string, RequestRecord[]>();
  for (const r of records) {
    const list = groups.get(r.service_name);
    if (list) list.push(r);
    else groups.set(r.service_name, [r]);
  }
  const out: ServiceSummary[] = [];
  for (const [service, list] of groups) {
    const errors = list.filter((r) => r.http_status !== null && r.http_status >= 500).length;
    out.push({
      service_name: service,
      process_names: [...new Set(list.map((r) => r.process_name))].sort(),
      count: list.length,
      errors,
      error_rate: errors / list.length,
      duration_ms: percentiles(list.map((r) => r.duration_ms)),
      cpu_time_ms: percentiles(list.map((r) => r.cpu_time_ms)),
      bytes_received: list.reduce((n, r) => n + r.bytes_received, 0),
      bytes_sent: list.reduce((n, r) => n + r.bytes_sent, 0),
      last_seen: list.reduce((m, r) => (r.timestamp > m ? r.timestamp : m), 0),
    });
  }
  return out.sort((a, b) => b.count - a.count || a.service_name.localeCompare(b.service_name));
}
