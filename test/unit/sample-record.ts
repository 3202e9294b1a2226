/** A complete RequestRecord for unit tests; override what the test is about. */
import type { DependencyRecord, RequestRecord } from '../../src/types.ts';

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
    cpu_after_response_ms: 0.05,
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

/** A DependencyRecord made while serving a sampleRecord: the i-th varies method, path and connection. */
export function sampleDependency(i: number, overrides: Partial<DependencyRecord> = {}): DependencyRecord {
  return {
    timestamp: 1_800_000_000 - 1 + i / 1000,
    peer_ip: '10.0.0.7',
    peer_port: 5432,
    new_connection: i % 2 === 0,
    connect_ms: i % 2 === 0 ? 0.25 : null,
    duration_ms: 1.5 + i,
    bytes_sent: 120,
    bytes_received: 4096,
    http_method: i % 3 === 0 ? 'GET' : null,
    http_path: i % 3 === 0 ? `/inventory/${i}` : null,
    http_status: i % 3 === 0 ? 200 : null,
    caller_attribution: 'exact',
    span_id: i.toString(16).padStart(16, '0'),
    ...overrides,
  };
}

/** n dependencies with long paths: records large enough to fill a small disk quickly. */
export const bigDependencies = (n: number): DependencyRecord[] =>
  Array.from({ length: n }, (_, i) => sampleDependency(i, { http_path: `/x/${'p'.repeat(200)}/${i}` }));
