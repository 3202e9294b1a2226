/**
 * One HTTP/2 stream as a request: what its header blocks say (pseudo-headers, selected
 * headers, gRPC trailers) and what its frames weigh. Header fields arrive as latin1 octet
 * strings from the HPACK decoder; what a record keeps is safe text (src/http/safe-text.ts),
 * bounded, since it ends up in spans, labels and storage.
 */
import { decodeSafeText } from '../http/safe-text.ts';
import { isGrpcContentType, MAX_GRPC_MESSAGE, parseGrpcPath, parseGrpcStatus, type GrpcCall } from './grpc.ts';
import type { DecodedHeaderBlock } from './hpack.ts';

export type Http2Sender = 'client' | 'server';

/** How a stream's record ended. */
export type StreamEnd =
  /** The server's END_STREAM (on DATA or on trailers). */
  | 'complete'
  | 'reset'
  | 'connection-closed'
  /** The connection's frames could no longer be followed. */
  | 'desync'
  /** Nothing seen on the connection for the idle timeout: its end never came into view. */
  | 'idle-timeout'
  /** It lost frames in a gap and showed none since, while the client opened more streams than
   * the connection holds open at once (Http2Connection): its end fell in the gap, or never came
   * into view. Ends at its last frame seen. */
  | 'lost-in-gap';

/** How much of a side's header blocks could be read: all, some fields, or none. */
export type HeaderDecoding = 'full' | 'partial' | 'none';

export interface Http2StreamRecord {
  streamId: number;
  /** Null when unknown: not decoded (see the *HeadersDecoded fields) or not sent. */
  method: string | null;
  path: string | null;
  authority: string | null;
  scheme: string | null;
  /** The final (non-1xx) :status. */
  status: number | null;
  /** The selected request headers present, by lowercased name (first value kept). */
  requestHeaders: ReadonlyMap<string, string>;
  requestContentType: string | null;
  responseContentType: string | null;
  /** Bytes of the stream's frames each side sent, 9-byte frame headers included. */
  requestBytes: number;
  responseBytes: number;
  /** Timestamps of the chunk holding the first HEADERS byte and of the one that ended it. */
  startTime: number;
  endTime: number;
  end: StreamEnd;
  resetBy: Http2Sender | null;
  /** RST_STREAM error code, when captured. */
  resetCode: number | null;
  requestHeadersDecoded: HeaderDecoding;
  responseHeadersDecoded: HeaderDecoding;
  /** The stream began before the capture did: its request headers were never in view. */
  startMissed: boolean;
  /** Some of its frames may have been in chunks the capture lost (a gap): its bytes are a
   * lower bound, and its end, when not 'complete' or 'reset', never came into view. */
  framesMissed: boolean;
  grpc: GrpcCall | null;
}

const MAX_PATH = 4096;
const MAX_HEADER_VALUE = 256;

/** Safe, bounded text from a latin1 octet string. */
function text(octets: string, max: number): string {
  const bytes = Buffer.from(octets, 'latin1');
  return decodeSafeText(bytes, 0, Math.min(bytes.length, max));
}

export class StreamState {
  readonly record: Http2StreamRecord;
  #requestBlocks = 0;
  #responseBlocks = 0;
  #grpcStatus: number | null = null;
  #grpcMessage: string | null = null;
  /** Timestamp of the chunk holding its last frame seen (its end when ended 'lost-in-gap'). */
  lastFrameAt: number;
  /** A gap came since its last frame: the highest client stream id seen when it did (streams
   * above it were opened after the gap); -1 once a frame of it is seen again. */
  quietSince = -1;

  constructor(streamId: number, startTime: number, startMissed: boolean) {
    this.record = {
      streamId,
      method: null,
      path: null,
      authority: null,
      scheme: null,
      status: null,
      requestHeaders: new Map(),
      requestContentType: null,
      responseContentType: null,
      requestBytes: 0,
      responseBytes: 0,
      startTime,
      endTime: startTime,
      end: 'connection-closed',
      resetBy: null,
      resetCode: null,
      requestHeadersDecoded: 'none',
      responseHeadersDecoded: 'none',
      startMissed,
      framesMissed: false,
      grpc: null,
    };
    this.lastFrameAt = startTime;
  }

  /** A client header block: the request's headers, or its trailers. */
  applyRequestBlock(decoded: DecodedHeaderBlock | null, selected: ReadonlySet<string>): void {
    const first = this.#requestBlocks++ === 0;
    if (decoded === null) return;
    const hasPseudo = decoded.fields.some((f) => f.name !== null && f.name.startsWith(':'));
    // Mid-way, the first block seen may be trailers: only pseudo-headers make it the request.
    const isRequest = first && (!this.record.startMissed || hasPseudo);
    if (!isRequest) return;
    if (this.record.startMissed) this.record.startMissed = false;
    this.record.requestHeadersDecoded = decodingOf(decoded);
    const headers = this.record.requestHeaders as Map<string, string>;
    let host: string | null = null;
    for (const { name, value } of decoded.fields) {
      if (name === null || value === null) continue;
      switch (name) {
        case ':method':
          this.record.method = text(value, MAX_HEADER_VALUE);
          break;
        case ':path':
          this.record.path = text(value, MAX_PATH);
          break;
        case ':authority':
          this.record.authority = text(value, MAX_HEADER_VALUE);
          break;
        case ':scheme':
          this.record.scheme = text(value, MAX_HEADER_VALUE);
          break;
        case 'host':
          host ??= text(value, MAX_HEADER_VALUE);
          break;
        case 'content-type':
          this.record.requestContentType ??= text(value, MAX_HEADER_VALUE);
          break;
      }
      if (selected.has(name) && !headers.has(name)) headers.set(name, text(value, MAX_HEADER_VALUE));
    }
    // RFC 9113 §8.3.1: a request may carry Host instead of :authority.
    this.record.authority ??= host;
  }

  /** A server header block: informational or final response headers, or trailers. */
  applyResponseBlock(decoded: DecodedHeaderBlock | null): void {
    const quality = decoded === null ? 'none' : decodingOf(decoded);
    const previous = this.record.responseHeadersDecoded;
    this.record.responseHeadersDecoded = this.#responseBlocks++ === 0 ? quality : worse(previous, quality);
    if (decoded === null) return;
    let status: number | null = null;
    let contentType: string | null = null;
    for (const { name, value } of decoded.fields) {
      if (name === null || value === null) continue;
      if (name === ':status' && /^\d{3}$/.test(value)) status = Number(value);
      else if (name === 'content-type') contentType ??= text(value, MAX_HEADER_VALUE);
      else if (name === 'grpc-status') this.#grpcStatus = parseGrpcStatus(value) ?? this.#grpcStatus;
      else if (name === 'grpc-message') this.#grpcMessage = text(value, MAX_GRPC_MESSAGE);
    }
    // 1xx heads come before the final one; trailers carry no :status.
    if (status !== null && status >= 200 && this.record.status === null) {
      this.record.status = status;
      this.record.responseContentType = contentType;
    }
  }

  finish(end: StreamEnd, endTime: number): Http2StreamRecord {
    const r = this.record;
    r.end = end;
    r.endTime = endTime;
    const grpcPath = isGrpcContentType(r.requestContentType) || this.#grpcStatus !== null ? parseGrpcPath(r.path) : null;
    if (grpcPath) r.grpc = { ...grpcPath, status: this.#grpcStatus, message: this.#grpcMessage };
    return r;
  }
}

function decodingOf(decoded: DecodedHeaderBlock): HeaderDecoding {
  if (!decoded.cut && !decoded.overflowed && decoded.unknownFields === 0) return 'full';
  return decoded.fields.length > decoded.unknownFields ? 'partial' : 'none';
}

function worse(a: HeaderDecoding, b: HeaderDecoding): HeaderDecoding {
  if (a === b) return a;
  return 'partial';
}
