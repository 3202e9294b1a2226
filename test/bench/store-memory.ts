/**
 * Memory of a full ring buffer: fills a RequestStore with `--records` (default 50,000)
 * realistic records, each with two dependencies, and prints the heap and RSS growth.
 * Run with: node --expose-gc test/bench/store-memory.ts [--records N]
 */
import { RequestStore } from '../../src/store/request-store.ts';
import { summarizeServices } from '../../src/store/service-summary.ts';
import type { RequestRecord } from '../../src/types.ts';

const n = Number(process.argv[process.argv.indexOf('--records') + 1] || 50_000) || 50_000;
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const hex = (i: number, len: number) => i.toString(16).padStart(len, '0');

function record(i: number): RequestRecord {
  const dep = (j: number) => ({
    timestamp: 1_800_000_000 + i / 1000,
    peer_ip: '10.0.3.17',
    peer_port: 5432 + j,
    new_connection: j === 0,
    connect_ms: j === 0 ? 0.21 : null,
    duration_ms: 1.7,
    bytes_sent: 312,
    bytes_received: 2048,
    http_method: j ? 'GET' : null,
    http_path: j ? `/inventory/items/{id}` : null,
    http_status: j ? 200 : null,
    caller_attribution: 'exact' as const,
    span_id: hex(i * 2 + j, 16),
  });
  return {
    request_id: hex(i, 16),
    trace_id: hex(i, 32),
    span_id: hex(i, 16),
    parent_span_id: null,
    timestamp: 1_800_000_000 + i / 1000,
    pid: 4242,
    process_name: 'node',
    service_name: 'checkout',
    namespace: 'shop',
    pod_name: 'checkout-7d9f8c6b5-x2x9z',
    route: '/orders/{id}',
    local_port: 8080,
    remote_ip: '10.0.1.9',
    remote_port: 40000 + (i % 20000),
    duration_ms: 12.5,
    cpu_time_ms: 3.25,
    cpu_attribution: 'exact',
    cpu_after_response_ms: 0.05,
    memory_rss_bytes: 83_886_080,
    bytes_received: 412,
    bytes_sent: 1830,
    correlation_id: `order-${i}`,
    http_method: 'POST',
    http_path: `/orders/${i}?REDACTED`,
    http_status: 201,
    dependencies: [dep(0), dep(1)],
  };
}

gc();
const before = process.memoryUsage();
const store = new RequestStore(n);
for (let i = 0; i < n * 2; i++) store.add(record(i)); // twice round: a full, wrapped buffer
gc();
const after = process.memoryUsage();
const mb = (b: number) => (b / (1 << 20)).toFixed(1);
// How long a query holds the event loop (ingestion waits that long; the kernel ring buffer
// and the loader's pipe hold what arrives meanwhile).
const now = 1_800_000_000 + (2 * n) / 1000 + 1;
const timeIt = (f: () => unknown) => {
  const t0 = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t0) / 1e6;
};
const queryMs = timeIt(() => store.query({ process: 'checkout', min_duration_ms: 10, since_minutes: 60, limit: 50 }, now));
const summaryMs = timeIt(() => summarizeServices(store.records(60, now)));
console.log(
  JSON.stringify({
    records: store.size,
    heap_used_mb: mb(after.heapUsed - before.heapUsed),
    rss_mb_total: mb(after.rss),
    bytes_per_record: Math.round((after.heapUsed - before.heapUsed) / store.size),
    query_full_scan_ms: queryMs.toFixed(1),
    services_summary_ms: summaryMs.toFixed(1),
  }),
);
