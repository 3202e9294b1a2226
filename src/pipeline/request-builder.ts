/**
 * Turns an assembled kernel request into the agent's RequestRecord: HTTP fields, correlation
 * ID, trace context, process metadata and units the API speaks (ms, epoch seconds).
 */
import type { AssembledRequest } from '../assemble/request-assembler.ts';
import { readRssBytes, type ProcessInfoCache } from '../enrich/process-info.ts';
import type { CorrelationExtractor } from '../http/correlation.ts';
import { HeaderSelection, parseRequestHead, responseStatusOf, type HttpRequestHead } from '../http/parse.ts';
import { routeTemplate } from '../http/route.ts';
import { parseTraceParent, type TraceParent } from '../http/traceparent.ts';
import { newSpanId, newTraceId } from '../otel/ids.ts';
import { RequestFlags } from '../decode/layout.ts';
import type { CpuAttribution, DependencyRecord, RequestProtocol, RequestRecord } from '../types.ts';
import type { GrpcCall } from '../http2/grpc.ts';
import type { StreamEnd } from '../http2/stream-record.ts';
import type { PodMetadata } from '../k8s/pod-index.ts';
import type { PodMetadataResolver } from '../k8s/pod-metadata.ts';
import { pathWithQuery } from '../http/query-redaction.ts';
import { buildDependency, type BuiltDependency } from './dependency-builder.ts';
import { exchangeKey } from '../util/exchange-key.ts';
import { durationMs } from '../util/duration-ms.ts';

/** What span building needs beyond the public record. */
export interface BuiltRequest {
  record: RequestRecord;
  startNs: bigint;
  endNs: bigint;
  cpuNs: number;
  localAddr: string;
  seq: number;
  http: HttpRequestHead | null;
  traceParent: TraceParent | null;
  captureIncomplete: boolean;
  isHttp: boolean;
  dependencies: BuiltDependency[];
  /** The pod the process runs in, when known. */
  pod: PodMetadata | null;
  /** The caller's exchange on this host (exchangeKey()), when the kernel linked one. */
  callerExchangeKey: string | null;
  /** The request's exchange (with `seq`): the loader generation and the connection id. */
  generation: number;
  connId: number;
  /** An HTTP/2 stream (src/pipeline/h2-builder.ts). */
  h2?: { streamId: number; end: StreamEnd; grpc: GrpcCall | null; grpcMessage: string | null };
}

function protocolOf(http: HttpRequestHead | null): RequestProtocol | null {
  return http?.version === '1.1' ? 'http/1.1' : http?.version === '1.0' ? 'http/1.0' : null;
}

export interface RequestBuilderOptions {
  correlation: CorrelationExtractor;
  processes: ProcessInfoCache;
  /** Kubernetes metadata by pid, when the agent watches pods. */
  pods?: PodMetadataResolver | null;
  /** Keep query strings in http_path / url.query instead of redacting them. */
  keepQuery: boolean;
}

/** The request headers read: the correlation ones, traceparent for the trace, user-agent for the span. */
const headerSelections = new WeakMap<CorrelationExtractor, HeaderSelection>();

function requestHeaders(correlation: CorrelationExtractor): HeaderSelection {
  let selection = headerSelections.get(correlation);
  if (selection === undefined) {
    selection = new HeaderSelection([...correlation.headerNames, 'traceparent', 'user-agent', 'host']);
    headerSelections.set(correlation, selection);
  }
  return selection;
}

function cpuAttribution(flags: number, cpuNs: number): CpuAttribution {
  if (flags & RequestFlags.CPU_APPORTIONED) return 'apportioned';
  return cpuNs > 0 ? 'exact' : 'unknown';
}

/** What the kernel measured; a request reported again (RequestPipeline) takes the final numbers. */
export function measuredFields(
  a: AssembledRequest,
): Pick<RequestRecord, 'duration_ms' | 'cpu_time_ms' | 'cpu_attribution' | 'cpu_after_response_ms' | 'bytes_received' | 'bytes_sent'> {
  const k = a.kernel;
  return {
    duration_ms: durationMs(k.startNs, k.endNs),
    cpu_time_ms: k.cpuNs / 1e6,
    cpu_attribution: cpuAttribution(k.flags, k.cpuNs),
    cpu_after_response_ms: k.cpuAfterResponseNs / 1e6,
    bytes_received: a.bytesReceived,
    bytes_sent: k.bytesSent,
  };
}

/** The record's fields from the request line (null without one). */
export function requestLineFields(http: HttpRequestHead | null, keepQuery: boolean): Pick<RequestRecord, 'http_method' | 'http_path' | 'route'> {
  if (!http) return { http_method: null, http_path: null, route: null };
  return { http_method: http.method, http_path: pathWithQuery(http, keepQuery), route: routeTemplate(http.path) };
}

export function responseStatus(a: AssembledRequest): number | null {
  return responseStatusOf(a.kernel.status, a.responseHead);
}

/**
 * V8 gives an object field the representation of the first value stored in it: the first
 * records carry 0 (a small integer) in cpu_time_ms, cpu_after_response_ms and the byte counts,
 * and null in http_status; the first fractional or null value, seconds to minutes later,
 * changes the field's representation and deoptimizes every function compiled against it
 * (building, storing, encoding: about 20 recompilations over the agent's first minute,
 * 150-250 ms of compiler time). Two records of the same shape, built once here with the most
 * general values each field takes, settle the representations before the first request.
 * The key order must be buildRequest's (test/unit/pipeline.test.ts checks it).
 */
export function settleRecordShape(): RequestRecord[] {
  const one = (n: number, s: string | null, status: number | null, dependencies: DependencyRecord[]): RequestRecord => ({
    request_id: '', trace_id: '', span_id: '', parent_span_id: s,
    timestamp: n, pid: 1, process_name: '', service_name: '',
    namespace: s, pod_name: s, route: s,
    local_port: 1, remote_ip: '', remote_port: 1,
    duration_ms: n, cpu_time_ms: n, cpu_attribution: 'unknown', cpu_after_response_ms: n,
    memory_rss_bytes: n, bytes_received: n, bytes_sent: n,
    correlation_id: s, http_method: s, http_path: s, http_status: status,
    protocol: s === null ? null : 'h2', grpc_status: status, dependencies,
  });
  // An empty array and one holding objects have different maps (elements kinds).
  return [one(0.5, null, null, []), one(2 ** 40 + 0.5, '', 200, [{} as DependencyRecord])];
}
settleRecordShape();

export function buildRequest(a: AssembledRequest, opts: RequestBuilderOptions): BuiltRequest {
  const k = a.kernel;
  const http = parseRequestHead(a.requestHead, requestHeaders(opts.correlation));
  const traceParent = http ? parseTraceParent(http.headers.get('traceparent')) : null;
  const proc = opts.processes.get(k.pid, k.comm);
  const pod = opts.pods?.metadataForPid(k.pid) ?? null;
  // service.name: the process's own OTEL_SERVICE_NAME, else the pod's labels, else the process.
  const serviceName = proc.serviceNameFromEnv ? proc.serviceName : (pod?.serviceName ?? proc.serviceName);
  const rss = k.rssBytes > 0 ? k.rssBytes : (readRssBytes(k.pid) ?? 0);
  const spanId = newSpanId();
  const dependencies = a.dependencies.map((d) => buildDependency(d, opts.keepQuery));
  dependencies.sort((x, y) => (x.startNs < y.startNs ? -1 : x.startNs > y.startNs ? 1 : 0));
  const measured = measuredFields(a);
  const line = requestLineFields(http, opts.keepQuery);

  const record: RequestRecord = {
    request_id: spanId,
    trace_id: traceParent?.traceId ?? newTraceId(),
    span_id: spanId,
    parent_span_id: traceParent?.parentSpanId ?? null,
    timestamp: Number(k.startNs / 1000n) / 1e6,
    pid: k.pid,
    process_name: proc.processName,
    service_name: serviceName,
    namespace: pod?.namespace ?? null,
    pod_name: pod?.podName ?? null,
    route: line.route,
    local_port: k.localPort,
    remote_ip: k.remoteAddr,
    remote_port: k.remotePort,
    duration_ms: measured.duration_ms,
    cpu_time_ms: measured.cpu_time_ms,
    cpu_attribution: measured.cpu_attribution,
    cpu_after_response_ms: measured.cpu_after_response_ms,
    memory_rss_bytes: rss,
    bytes_received: measured.bytes_received,
    bytes_sent: measured.bytes_sent,
    correlation_id: http ? opts.correlation.extract(http.headers, traceParent) : null,
    http_method: line.http_method,
    http_path: line.http_path,
    http_status: responseStatus(a),
    protocol: protocolOf(http),
    grpc_status: null,
    dependencies: dependencies.map((d) => d.record),
  };
  return {
    record,
    startNs: k.startNs,
    endNs: k.endNs,
    cpuNs: k.cpuNs,
    localAddr: k.localAddr,
    seq: k.seq,
    http,
    traceParent,
    captureIncomplete: a.captureIncomplete,
    isHttp: http !== null,
    dependencies,
    pod,
    callerExchangeKey: k.peerConnId ? exchangeKey(a.generation, k.peerConnId, k.seq) : null,
    generation: a.generation,
    connId: k.connId,
  };
}
