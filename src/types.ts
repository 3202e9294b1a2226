/**
 * Shapes shared across the agent. Field names of RequestRecord are the public JSON API
 * (`/api/requests`): keep them stable.
 */

/** An outbound call made while serving a request (filled in by dependency tracking). */
export interface DependencyRecord {
  /** Epoch seconds (fractional) at the call's start (connect() for a new connection). */
  timestamp: number;
  peer_ip: string;
  peer_port: number;
  /** The call opened its connection (else it reused a pooled one). */
  new_connection: boolean;
  /** TCP handshake time for a new connection, else null. */
  connect_ms: number | null;
  duration_ms: number;
  bytes_sent: number;
  bytes_received: number;
  http_method: string | null;
  http_path: string | null;
  http_status: number | null;
  /** How the request that made this call was found (bpf/dependency.bpf.h): "exact"
   * when the thread was serving only that request; "inferred" when several requests' code was
   * runnable on it (an event loop) and the order of their reads decided. */
  caller_attribution: 'exact' | 'inferred';
  span_id: string;
  /** 'h2' for one outbound HTTP/2 stream (src/pipeline/h2-dependency-builder.ts); absent for
   * an HTTP/1 or other exchange. */
  protocol?: 'h2';
  /** An outbound gRPC call's grpc-status (null when its trailers were not seen). */
  grpc_status?: number | null;
}

/** One server-side request, as served by the API and stored in the ring buffer. */
export interface RequestRecord {
  request_id: string;
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  /** Epoch seconds (fractional) at the request's first read. */
  timestamp: number;
  pid: number;
  process_name: string;
  service_name: string;
  /** Kubernetes namespace and pod of the process, when known (else null). */
  namespace: string | null;
  pod_name: string | null;
  /** Bounded-cardinality form of the path (id-like segments as {id}), for grouping. */
  route: string | null;
  local_port: number;
  remote_ip: string;
  remote_port: number;
  duration_ms: number;
  cpu_time_ms: number;
  /** How cpu_time_ms was attributed (bpf/cpu.bpf.h): every CPU segment by where
   * it ended or by the thread's only request ("exact"); some by the owner rule while other
   * requests on that thread were waiting ("apportioned"); no CPU seen at all ("unknown"). */
  cpu_attribution: CpuAttribution;
  /** CPU the request's thread ran after its response's last write, until it slept or served
   * another request (the framework finishing the exchange, a GC): not in cpu_time_ms, which
   * stays within the request's duration. */
  cpu_after_response_ms: number;
  memory_rss_bytes: number;
  bytes_received: number;
  bytes_sent: number;
  correlation_id: string | null;
  http_method: string | null;
  http_path: string | null;
  http_status: number | null;
  /** `http/1.0` or `http/1.1` (from the request line), `h2` (an HTTP/2 stream); null when unknown.
   * (Optional only for records stored before it existed: the builders always set it.) */
  protocol?: RequestProtocol | null;
  /** gRPC status from the stream's trailers; null for plain HTTP (or trailers not seen). */
  grpc_status?: number | null;
  dependencies: DependencyRecord[];
}

export type RequestProtocol = 'http/1.0' | 'http/1.1' | 'h2';

export type CpuAttribution = 'exact' | 'apportioned' | 'unknown';

/** Loss and throughput counters, reported on /health and /metrics. */
export interface PipelineCounters {
  /** Summed kernel counters by name (see enum pc_counter in bpf/perfcatch.h). */
  kernel: Record<string, number>;
  /** Loader counters by name (enum pc_loader_counter). */
  loader: Record<string, number>;
  /** Agent-side counters. */
  agent: AgentCounters;
  /** HTTP/2 decoding (src/pipeline/h2-requests.ts), when the agent decodes any. */
  h2?: Record<string, number>;
}

export interface AgentCounters {
  frames_decoded: number;
  frames_malformed: number;
  requests_recorded: number;
  requests_not_http: number;
  data_orphaned: number;
  spans_started: number;
  spans_exported: number;
  spans_export_failed: number;
  spans_dropped: number;
  /** Spans the trace sampler (OTEL_TRACES_SAMPLER) left out of the export. */
  spans_sampled_out: number;
  /** Failed export attempts that were retried (the spans are still queued). */
  span_export_retries: number;
  loader_restarts: number;
  dependencies_recorded: number;
  dependencies_late: number;
  dependencies_orphaned: number;
  links_made: number;
  links_timed_out: number;
  /** Requests reported again with their final numbers (a response resumed after an idle
   * flush); their stored record changed, their span had already gone out. */
  requests_updated: number;
  storage_dropped: number;
  storage_write_errors: number;
  remote_write_dropped: number;
  /** Records under way in a loader that died (see LOSS_STAGES). */
  restart_in_flight_lost: number;
}
