/**
 * Turns one HTTP/2 stream (src/http2/stream-record.ts) into the agent's RequestRecord, as
 * request-builder.ts does for an HTTP/1 exchange: the same public fields, `protocol: "h2"`,
 * and for gRPC `grpc_status` (and `grpc` for the RPC span). Nothing is guessed: a field the
 * header blocks did not give (a connection joined mid-way, an HPACK desync) stays null.
 */
import { readRssBytes } from '../enrich/process-info.ts';
import type { KernelH2Conn } from '../decode/records.ts';
import type { HttpRequestHead } from '../http/parse.ts';
import { pathWithQuery } from '../http/query-redaction.ts';
import { routeTemplate } from '../http/route.ts';
import { parseTraceParent } from '../http/traceparent.ts';
import type { Http2StreamRecord } from '../http2/stream-record.ts';
import { newSpanId, newTraceId } from '../otel/ids.ts';
import type { CpuAttribution, RequestRecord } from '../types.ts';
import { durationMs } from '../util/duration-ms.ts';
import { exchangeKey } from '../util/exchange-key.ts';
import type { BuiltRequest, RequestBuilderOptions } from './request-builder.ts';

export interface H2ConnMeta extends KernelH2Conn {
  /** Joined mid-way (PC_F_H2_MIDWAY, or its announcement was lost). */
  midway: boolean;
}

export interface StreamCpu {
  ns: number;
  /** Some of it was a segment split among several streams. */
  apportioned: boolean;
}

/** RSS read from /proc at most this often per process: a multiplexed server ends streams by thousands. */
const RSS_REFRESH_MS = 100;
const rssCache = new Map<number, { at: number; bytes: number }>();

function rssOf(pid: number): number {
  const now = Date.now();
  const hit = rssCache.get(pid);
  if (hit && now - hit.at < RSS_REFRESH_MS) return hit.bytes;
  const bytes = readRssBytes(pid) ?? 0;
  if (rssCache.size > 4096) rssCache.clear();
  rssCache.set(pid, { at: now, bytes });
  return bytes;
}

/** The request head a stream's pseudo-headers spell, when both :method and :path were decoded. */
export function requestHead(r: Http2StreamRecord): HttpRequestHead | null {
  if (r.method === null || r.path === null) return null;
  const q = r.path.indexOf('?');
  const headers = new Map(r.requestHeaders);
  if (r.authority !== null) headers.set('host', r.authority);
  return {
    method: r.method,
    path: q === -1 ? r.path : r.path.slice(0, q),
    query: q === -1 ? null : r.path.slice(q + 1),
    version: '2',
    headers,
    complete: true,
  };
}

function attribution(cpu: StreamCpu): CpuAttribution {
  if (cpu.ns <= 0) return 'unknown';
  return cpu.apportioned ? 'apportioned' : 'exact';
}

export function buildH2Request(
  meta: H2ConnMeta,
  r: Http2StreamRecord,
  baseNs: bigint,
  cpu: StreamCpu,
  opts: RequestBuilderOptions,
  generation: number,
): BuiltRequest {
  const http = requestHead(r);
  const traceParent = parseTraceParent(r.requestHeaders.get('traceparent'));
  const proc = opts.processes.get(meta.pid, meta.comm);
  const pod = opts.pods?.metadataForPid(meta.pid) ?? null;
  const serviceName = proc.serviceNameFromEnv ? proc.serviceName : (pod?.serviceName ?? proc.serviceName);
  const startNs = baseNs + BigInt(Math.round(r.startTime));
  const endNs = baseNs + BigInt(Math.round(r.endTime));
  const spanId = newSpanId();
  const grpc = r.grpc;
  const record: RequestRecord = {
    request_id: spanId,
    trace_id: traceParent?.traceId ?? newTraceId(),
    span_id: spanId,
    parent_span_id: traceParent?.parentSpanId ?? null,
    timestamp: Number(startNs / 1000n) / 1e6,
    pid: meta.pid,
    process_name: proc.processName,
    service_name: serviceName,
    namespace: pod?.namespace ?? null,
    pod_name: pod?.podName ?? null,
    route: grpc ? r.path : http ? routeTemplate(http.path) : null,
    local_port: meta.localPort,
    remote_ip: meta.remoteAddr,
    remote_port: meta.remotePort,
    duration_ms: durationMs(startNs, endNs),
    cpu_time_ms: cpu.ns / 1e6,
    cpu_attribution: attribution(cpu),
    // A stream's thread serves the connection's other streams after its last write: that CPU
    // goes to them (or to no stream), never after a stream's response.
    cpu_after_response_ms: 0,
    memory_rss_bytes: rssOf(meta.pid),
    bytes_received: r.requestBytes,
    bytes_sent: r.responseBytes,
    correlation_id: http ? opts.correlation.extract(http.headers, traceParent) : null,
    http_method: r.method,
    http_path: http ? pathWithQuery(http, opts.keepQuery) : null,
    http_status: r.status,
    protocol: 'h2',
    grpc_status: grpc?.status ?? null,
    dependencies: [],
  };
  return {
    record,
    startNs,
    endNs,
    cpuNs: cpu.ns,
    localAddr: meta.localAddr,
    seq: r.streamId,
    http,
    traceParent,
    captureIncomplete:
      r.end === 'desync' || r.end === 'idle-timeout' || r.end === 'lost-in-gap' || r.startMissed || r.framesMissed || r.requestHeadersDecoded !== 'full' || (r.status !== null && r.responseHeadersDecoded !== 'full'),
    isHttp: http !== null,
    dependencies: [],
    pod,
    // The caller's outbound stream on this host: both ends number a connection's streams alike.
    callerExchangeKey: meta.peerConnId ? exchangeKey(generation, meta.peerConnId, r.streamId) : null,
    generation,
    connId: meta.connId,
    h2: { streamId: r.streamId, end: r.end, grpc, grpcMessage: grpc?.message ?? null },
  };
}
