/** A complete RequestRecord for unit tests; override what the test is about. */
import type { RequestRecord } from '../../src/types.ts';

export function sampleRecord(overrides: Partial<RequestRecord> = {}): RequestRecord {
  return {
    request_id: 'req-1',
    trace_id: '0'.repeat(32),
    span_id: '0'.repeat(16),
    parent_span_id: null,
    timestamp: 1_800_000_000 - 1,
    pid: 100,
    process_name: 'node',
    service_name: 'checkout',
    namespace: null,
    pod_name: null,
    route: '/',
    local_port: 8080,
    remote_ip: '127.0.0.1',
    remote_port: 50000,
    duration_ms: 10,
    cpu_time_ms: 1,
    cpu_attribution: 'exact',
    memory_rss_bytes: 1,
    bytes_received: 100,
    bytes_sent: 200,
    correlation_id: null,
    http_method: 'GET',
    http_path: '/',
    http_status: 200,
    dependencies: [],
    ...overrides,
  };
}
