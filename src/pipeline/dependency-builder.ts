/**
 * Turns an assembled outbound exchange into the DependencyRecord served by the API: peer,
 * connect time, duration, bytes, and for plaintext HTTP the method, path and status.
 */
import type { AssembledDependency } from '../assemble/request-assembler.ts';
import { HeaderSelection, parseRequestHead, responseStatusOf, type HttpRequestHead } from '../http/parse.ts';
import { DependencyFlags } from '../decode/layout.ts';
import { newSpanId } from '../otel/ids.ts';
import type { DependencyRecord } from '../types.ts';
import type { GrpcCall } from '../http2/grpc.ts';
import { pathWithQuery } from '../http/query-redaction.ts';
import { exchangeKey } from '../util/exchange-key.ts';
import { durationMs } from '../util/duration-ms.ts';

export interface BuiltDependency {
  record: DependencyRecord;
  startNs: bigint;
  endNs: bigint;
  http: HttpRequestHead | null;
  /** Key under which a callee on this host finds this exchange: `${generation}:${conn_id}:${seq}`. */
  exchangeKey: string;
  newConnection: boolean;
  localAddr: string;
  localPort: number;
  /** One outbound HTTP/2 stream (src/pipeline/h2-dependency-builder.ts). */
  h2?: { streamId: number; authority: string | null; grpc: GrpcCall | null };
}


/** The client span's url.full names the host. */
const DEPENDENCY_HEADERS = new HeaderSelection(['host']);

export function buildDependency(a: AssembledDependency, keepQuery: boolean): BuiltDependency {
  const k = a.kernel;
  const http = parseRequestHead(a.requestHead, DEPENDENCY_HEADERS);
  const path = http ? pathWithQuery(http, keepQuery) : null;
  const newConnection = k.connectStartNs > 0n;
  return {
    record: {
      timestamp: Number((newConnection && k.connectStartNs < k.startNs ? k.connectStartNs : k.startNs) / 1000n) / 1e6,
      peer_ip: k.remoteAddr,
      peer_port: k.remotePort,
      new_connection: newConnection,
      connect_ms: newConnection ? k.connectNs / 1e6 : null,
      duration_ms: durationMs(k.startNs, k.endNs),
      bytes_sent: k.bytesSent,
      bytes_received: k.bytesReceived,
      http_method: http?.method ?? null,
      http_path: path,
      http_status: responseStatusOf(k.status, a.responseHead),
      caller_attribution: k.flags & DependencyFlags.CALLER_INFERRED ? 'inferred' : 'exact',
      span_id: newSpanId(),
    },
    // A new connection's call starts at connect(): that wait is part of what it cost.
    startNs: newConnection && k.connectStartNs < k.startNs ? k.connectStartNs : k.startNs,
    endNs: k.endNs,
    http,
    exchangeKey: exchangeKey(a.generation, k.connId, k.seq),
    newConnection,
    localAddr: k.localAddr,
    localPort: k.localPort,
  };
}
