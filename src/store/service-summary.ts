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

/** The fields of a request a service summary reads (a row of SQL columns, or a record). */
export interface SummaryInput {
  service_name: string;
  process_name: string;
  http_status: number | null;
  duration_ms: number;
  cpu_time_ms: number;
  bytes_received: number;
  bytes_sent: number;
  timestamp: number;
}

interface ServiceTotals {
  processNames: Set<string>;
  errors: number;
  durations: number[];
  cpuTimes: number[];
  bytesReceived: number;
  bytesSent: number;
  lastSeen: number;
}

/**
 * Summaries built one request at a time, keeping only numbers (two per request for the
 * percentiles): the database streams rows into it rather than loading whole records.
 */
export class ServiceSummaryBuilder {
  readonly #services = new Map<string, ServiceTotals>();

  add(r: SummaryInput): void {
    let t = this.#services.get(r.service_name);
    if (t === undefined) {
      t = { processNames: new Set(), errors: 0, durations: [], cpuTimes: [], bytesReceived: 0, bytesSent: 0, lastSeen: 0 };
      this.#services.set(r.service_name, t);
    }
    t.processNames.add(r.process_name);
    if (r.http_status !== null && r.http_status >= 500) t.errors++;
    t.durations.push(r.duration_ms);
    t.cpuTimes.push(r.cpu_time_ms);
    t.bytesReceived += r.bytes_received;
    t.bytesSent += r.bytes_sent;
    if (r.timestamp > t.lastSeen) t.lastSeen = r.timestamp;
  }

  summaries(): ServiceSummary[] {
    const out: ServiceSummary[] = [];
    for (const [service, t] of this.#services) {
      const count = t.durations.length;
      out.push({
        service_name: service,
        process_names: [...t.processNames].sort(),
        count,
        errors: t.errors,
        error_rate: t.errors / count,
        duration_ms: percentiles(t.durations),
        cpu_time_ms: percentiles(t.cpuTimes),
        bytes_received: t.bytesReceived,
        bytes_sent: t.bytesSent,
        last_seen: t.lastSeen,
      });
    }
    return out.sort(busiestFirst);
  }
}

/** The order of service lists: most requests first, then by name. */
export function busiestFirst(a: ServiceSummary, b: ServiceSummary): number {
  return b.count - a.count || a.service_name.localeCompare(b.service_name);
}

export function summarizeServices(records: Iterable<SummaryInput>): ServiceSummary[] {
  const builder = new ServiceSummaryBuilder();
  for (const r of records) builder.add(r);
  return builder.summaries();
}
