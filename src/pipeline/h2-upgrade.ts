/**
 * An h2c upgrade (PC_F_H2_UPGRADE): the HTTP/1.1 request answered 101 becomes the new
 * connection's stream 1 (RFC 7540 §3.2). The kernel never sent it as a request: its captured
 * bytes are taken here, under the seq the pc_h2_conn names, and its head read as any HTTP/1
 * request's.
 */
import type { AssembledRequest } from '../assemble/request-assembler.ts';
import type { CorrelationExtractor } from '../http/correlation.ts';
import { HeaderSelection, parseRequestHead } from '../http/parse.ts';
import type { UpgradedRequest } from '../http2/streams.ts';

const selections = new WeakMap<CorrelationExtractor, HeaderSelection>();

function selection(correlation: CorrelationExtractor): HeaderSelection {
  let s = selections.get(correlation);
  if (!s) selections.set(correlation, (s = new HeaderSelection([...correlation.headerNames, 'traceparent', 'user-agent', 'host', 'content-type', 'http2-settings'])));
  return s;
}

/** Stream 1's request, or undefined when its head was not captured (the stream is then not followed). */
export function upgradedRequest(a: AssembledRequest, correlation: CorrelationExtractor): UpgradedRequest | undefined {
  const head = parseRequestHead(a.requestHead, selection(correlation));
  if (!head) return undefined;
  return {
    method: head.method,
    path: head.query === null ? head.path : `${head.path}?${head.query}`,
    authority: head.headers.get('host') ?? null,
    headers: head.headers,
    contentType: head.headers.get('content-type') ?? null,
    http2Settings: head.headers.get('http2-settings') ?? null,
    requestBytes: a.bytesReceived,
    responseBytes: a.kernel.bytesSent,
    startTime: 0, // the connection's times count from this request's first read
  };
}
