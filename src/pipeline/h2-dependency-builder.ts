/**
 * One outbound HTTP/2 stream (the process is the client) as a dependency: what
 * dependency-builder.ts makes of an HTTP/1 exchange, per stream instead of per connection turn.
 * Its duration runs from its HEADERS leaving to the server's END_STREAM (or a RST_STREAM)
 * arriving; its bytes are its own frames', 9-byte headers included. A callee on this host
 * finds it by the connection and the stream id (exchangeKey(generation, conn_id, stream id)):
 * both ends of a connection number streams alike.
 */
import { pathWithQuery } from '../http/query-redaction.ts';
import type { Http2StreamRecord } from '../http2/stream-record.ts';
import { newSpanId } from '../otel/ids.ts';
import { durationMs } from '../util/duration-ms.ts';
import { exchangeKey } from '../util/exchange-key.ts';
import type { BuiltDependency } from './dependency-builder.ts';
import { requestHead, type H2ConnMeta } from './h2-builder.ts';

export function buildH2Dependency(meta: H2ConnMeta, r: Http2StreamRecord, baseNs: bigint, inferred: boolean, generation: number, keepQuery: boolean): BuiltDependency {
  const startNs = baseNs + BigInt(Math.round(r.startTime));
  const endNs = baseNs + BigInt(Math.round(r.endTime));
  const http = requestHead(r);
  // The connection's first stream pays for opening it; the kernel timed no handshake here.
  const newConnection = !meta.midway && r.streamId === 1;
  return {
    record: {
      timestamp: Number(startNs / 1000n) / 1e6,
      peer_ip: meta.remoteAddr,
      peer_port: meta.remotePort,
      new_connection: newConnection,
      connect_ms: null,
      duration_ms: durationMs(startNs, endNs),
      bytes_sent: r.requestBytes,
      bytes_received: r.responseBytes,
      http_method: r.method,
      http_path: http ? pathWithQuery(http, keepQuery) : null,
      http_status: r.status,
      caller_attribution: inferred ? 'inferred' : 'exact',
      span_id: newSpanId(),
      protocol: 'h2',
      grpc_status: r.grpc?.status ?? null,
    },
    startNs,
    endNs,
    http,
    exchangeKey: exchangeKey(generation, meta.connId, r.streamId),
    newConnection,
    localAddr: meta.localAddr,
    localPort: meta.localPort,
    h2: { streamId: r.streamId, authority: r.authority, grpc: r.grpc },
  };
}
