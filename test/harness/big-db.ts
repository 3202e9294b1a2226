/**
 * Writes a large PerfCatch database directly (one SQL transaction per 10,000 rows): what a
 * week at a steady request rate leaves behind, without running that week. Rows are spread
 * evenly over `spanSeconds` before now (a minute in from each end), over a few services, with realistic record JSON
 * (about 2 KB each, dependencies included).
 */
import { DatabaseSync } from 'node:sqlite';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import type { RequestRecord } from '../../src/types.ts';

export function writeBigDatabase(path: string, rows: number, spanSeconds: number): void {
  // The store creates the schema (and its pragmas) as the agent would.
  SqliteStore.open({ path, retentionHours: 1e6, maxSizeMb: 1e6 }).close();
  const db = new DatabaseSync(path);
  const insert = db.prepare(`INSERT INTO requests (request_id, timestamp, service_name, process_name, namespace, pod_name,
    correlation_id, http_method, http_path, http_status, duration_ms, record) VALUES (?, ?, ?, ?, NULL, NULL, ?, 'GET', ?, ?, ?, ?)`);
  const now = Date.now() / 1000;
  const pad = 'x'.repeat(900);
  for (let start = 0; start < rows; start += 10_000) {
    db.exec('BEGIN');
    for (let i = start; i < Math.min(rows, start + 10_000); i++) {
      const service = `svc-${i % 5}`;
      const record: RequestRecord = {
        request_id: i.toString(16).padStart(16, '0'), trace_id: i.toString(16).padStart(32, '0'), span_id: i.toString(16).padStart(16, '0'),
        parent_span_id: null, timestamp: now - spanSeconds + 60 + (i * (spanSeconds - 120)) / rows, pid: 1000 + (i % 5), process_name: 'node',
        service_name: service, namespace: null, pod_name: null, route: '/items/{id}', local_port: 8080, remote_ip: '10.0.0.1',
        remote_port: 40000 + (i % 20000), duration_ms: (i % 1000) / 10, cpu_time_ms: (i % 100) / 10, cpu_attribution: 'exact', cpu_after_response_ms: 0.01, memory_rss_bytes: 50_000_000,
        bytes_received: 300, bytes_sent: 1200, correlation_id: `corr-${i}`, http_method: 'GET', http_path: `/items/${i}?pad=${pad}`,
        http_status: i % 50 === 0 ? 500 : 200,
        dependencies: [{ timestamp: now, peer_ip: '10.0.0.9', peer_port: 5432, new_connection: false, connect_ms: null, duration_ms: 1,
          bytes_sent: 100, bytes_received: 400, http_method: null, http_path: null, http_status: null, caller_attribution: 'exact', span_id: 'f'.repeat(16) }],
      };
      insert.run(record.request_id, record.timestamp, service, 'node', record.correlation_id, record.http_path, record.http_status,
        record.duration_ms, JSON.stringify(record));
    }
    db.exec('COMMIT');
  }
  db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  db.close();
}
