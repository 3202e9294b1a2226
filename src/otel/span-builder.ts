/**
 * Builds one SERVER span per request, and a CLIENT span per outbound call, encoded straight
 * into OTLP protobuf (opentelemetry.proto.trace.v1.Span) and handed to a sink. The request
 * is over when the kernel reports it, so there is no live span to start and end; ids and
 * times come from the record. Encoding at once, rather than queueing SDK span objects, keeps
 * each span's garbage short-lived: queued span objects survived young-generation GCs and
 * made span export cost more than the rest of the agent together.
 *
 * Every monitored service instance gets its own Resource, encoded once; the export queue
 * groups spans by it, so spans of different services go out under their own service.name.
 */
import { hostname } from 'node:os';
import { k8sResourceAttributes } from '../k8s/pod-metadata.ts';
import type { PodMetadata } from '../k8s/pod-index.ts';
import type { BuiltDependency } from '../pipeline/dependency-builder.ts';
import type { BuiltRequest } from '../pipeline/request-builder.ts';
import type { RequestRecord } from '../types.ts';
import { routeTemplate } from '../http/route.ts';
import { ProtobufWriter, utf8Length, varintSize, WireType } from '../util/protobuf-writer.ts';
import * as sc from './semconv.ts';
import { TraceSampler, DEFAULT_SAMPLER, type ParentContext } from './sampler.ts';

export const INSTRUMENTATION_SCOPE = { name: 'perfcatch', version: '0.1.0' } as const;

const MAX_RESOURCES = 1024;

/** OTLP SpanKind (the API's value + 1). */
const KIND_SERVER = 2;
const KIND_CLIENT = 3;
const STATUS_ERROR = 2;
/** UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS. */
const GRPC_SERVER_ERRORS = new Set([2, 4, 12, 13, 14, 15]);
const TRACE_FLAG_SAMPLED = 0x01;
/** Span.flags bits 8 and 9: whether the parent is remote is known / it is remote. */
const FLAG_HAS_IS_REMOTE = 0x100;
const FLAG_IS_REMOTE = 0x200;

// Span fields (opentelemetry/proto/trace/v1/trace.proto).
const SPAN_TRACE_ID = 1;
const SPAN_SPAN_ID = 2;
const SPAN_PARENT_SPAN_ID = 4;
const SPAN_NAME = 5;
const SPAN_KIND = 6;
const SPAN_START = 7;
const SPAN_END = 8;
const SPAN_ATTRIBUTES = 9;
const SPAN_STATUS = 15;
const SPAN_FLAGS = 16;
const STATUS_CODE = 3;
const RESOURCE_ATTRIBUTES = 1;

/** A service instance's encoded opentelemetry.proto.resource.v1.Resource message. */
export interface OtlpResource {
  readonly bytes: Buffer;
}

/** Receives each encoded Span message; `span` is only valid during the call. */
export type SpanSink = (resource: OtlpResource, span: Buffer) => void;

type AttributeValue = string | number | boolean;

export interface SpanBuilderOptions {
  /** Which spans are exported (OTEL_TRACES_SAMPLER); the rest are counted, not encoded. */
  sampler?: TraceSampler;
  /** OTEL_RESOURCE_ATTRIBUTES: in every Resource, below what PerfCatch knows of the service. */
  resourceAttributes?: Readonly<Record<string, string>>;
}

/**
 * The host (no port) of a Host header, for server.address (HTTP/2's :authority is not parsed). Null when it is
 * empty or carries userinfo (never a valid Host).
 */
export function hostOfAuthority(authority: string | undefined): string | null {
  const a = authority?.trim();
  if (!a || a.includes('@')) return null;
  if (a.startsWith('[')) {
    const end = a.indexOf(']');
    return end > 1 ? a.slice(1, end) : null;
  }
  const colon = a.indexOf(':');
  const host = colon === -1 ? a : a.slice(0, colon);
  return host === '' ? null : host.slice(0, 256);
}

/**
 * One KeyValue (as field `field` of the enclosing message): string, bool, int64 or double.
 * Sizes are computed up front, so nothing is written twice; `keyField` is the key's
 * encoded KeyValue.key field (keyFieldOf).
 */
function writeAttribute(w: ProtobufWriter, field: number, keyField: Buffer, value: AttributeValue): void {
  let valueSize: number; // the AnyValue message
  let utf8 = 0;
  const isInt = typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
  if (typeof value === 'string') {
    utf8 = utf8Length(value);
    valueSize = 1 + varintSize(utf8) + utf8;
  } else if (typeof value === 'boolean') {
    valueSize = 2;
  } else if (isInt) {
    valueSize = 1 + varintSize(value);
  } else {
    valueSize = 9;
  }
  w.tag(field, WireType.LEN);
  w.varint(keyField.length + 1 + varintSize(valueSize) + valueSize);
  w.raw(keyField);
  w.tag(2, WireType.LEN); // KeyValue.value
  w.varint(valueSize);
  if (typeof value === 'string') {
    w.tag(1, WireType.LEN); // AnyValue.string_value
    w.varint(utf8);
    w.utf8(value, utf8);
  } else if (typeof value === 'boolean') {
    w.tag(2, WireType.VARINT); // AnyValue.bool_value
    w.varint(value ? 1 : 0);
  } else if (isInt) {
    w.tag(3, WireType.VARINT); // AnyValue.int_value
    w.varint(value);
  } else {
    w.tag(4, WireType.FIXED64); // AnyValue.double_value
    w.double(value);
  }
}

/** Span.attributes (field 9, length-delimited) as a tag byte. */
const SPAN_ATTRIBUTES_TAG = (SPAN_ATTRIBUTES << 3) | WireType.LEN;
const KEYVALUE_VALUE_TAG = (2 << 3) | WireType.LEN;
const ANYVALUE_STRING_TAG = (1 << 3) | WireType.LEN;
const ANYVALUE_INT_TAG = (3 << 3) | WireType.VARINT;
/** Longest string the one-pass path writes (its lengths then fit one byte each). */
const SHORT_STRING = 120;

/** A varint (non-negative, safe integer) into `b` at `p`; the position after it. */
function putVarint(b: Uint8Array, p: number, v: number): number {
  while (v >= 0x80000000) {
    b[p++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  while (v > 0x7f) {
    b[p++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  b[p++] = v;
  return p;
}

/**
 * Tag, length and key of a Span.attributes KeyValue whose value takes `valueSize` bytes (under
 * 128), written at the writer's position without moving it; returns where the value goes.
 */
function putAttributeHead(w: ProtobufWriter, keyField: Buffer, valueSize: number): number {
  const kvLen = keyField.length + 2 + valueSize;
  w.reserve(kvLen + 4);
  const b = w.buf;
  let p = putVarint(b, w.pos + 1, kvLen);
  b[w.pos] = SPAN_ATTRIBUTES_TAG;
  for (let i = 0; i < keyField.length; i++) b[p + i] = keyField[i]!;
  p += keyField.length;
  b[p++] = KEYVALUE_VALUE_TAG;
  b[p++] = valueSize;
  return p;
}

/**
 * A Span attribute with an integer value, written in one pass into the writer's buffer: span
 * encoding writes a dozen per span, and the general writeAttribute (a type test, then a call
 * per tag, length and byte run) was a tenth of the agent's main thread. Not a non-negative
 * safe integer: the general path.
 */
function writeIntAttribute(w: ProtobufWriter, keyField: Buffer, v: number): void {
  if (!(v >= 0 && Number.isSafeInteger(v))) return writeAttribute(w, SPAN_ATTRIBUTES, keyField, v);
  let p = putAttributeHead(w, keyField, 1 + varintSize(v));
  w.buf[p++] = ANYVALUE_INT_TAG;
  w.pos = putVarint(w.buf, p, v);
}

/** A Span attribute with a string value: one pass for short ASCII (nearly all), else the general path. */
function writeStringAttribute(w: ProtobufWriter, keyField: Buffer, s: string): void {
  const n = s.length;
  if (n > SHORT_STRING) return writeAttribute(w, SPAN_ATTRIBUTES, keyField, s);
  // Written past w.pos, which moves only at the end: a string found not to be ASCII (its UTF-8
  // length differs) is written again by the general path over these bytes.
  let p = putAttributeHead(w, keyField, 2 + n);
  const b = w.buf;
  b[p++] = ANYVALUE_STRING_TAG;
  b[p++] = n;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return writeAttribute(w, SPAN_ATTRIBUTES, keyField, s);
    b[p + i] = c;
  }
  w.pos = p + n;
}

/** KeyValue.key fields (tag, length, name) of resource keys, by attribute name. */
const keyFields = new Map<string, Buffer>();

function encodeKeyField(key: string): Buffer {
  const w = new ProtobufWriter(64);
  w.tag(1, WireType.LEN);
  w.string(key);
  return Buffer.from(w.view());
}

function keyFieldOf(key: string): Buffer {
  let f = keyFields.get(key);
  if (!f) {
    f = encodeKeyField(key);
    // Resource keys come from pods (bounded by MAX_RESOURCES) and OTEL_RESOURCE_ATTRIBUTES.
    if (keyFields.size < 4096) keyFields.set(key, f);
  }
  return f;
}

/**
 * Every span attribute key of semconv.ts, encoded once: a span writes about 25 of them, and
 * looking each up by name in a Map was a tenth of span encoding.
 */
const K = Object.fromEntries(Object.entries(sc).map(([name, key]) => [name, encodeKeyField(key)])) as { readonly [N in keyof typeof sc]: Buffer };

/** A whole Span.attributes field whose value never changes, encoded once. */
function constantAttribute(keyField: Buffer, value: AttributeValue): Buffer {
  const w = new ProtobufWriter(64);
  writeAttribute(w, SPAN_ATTRIBUTES, keyField, value);
  return Buffer.from(w.view());
}
const TRANSPORT_TCP = constantAttribute(K.ATTR_NETWORK_TRANSPORT, 'tcp');
const SCHEME_HTTP = constantAttribute(K.ATTR_URL_SCHEME, 'http');
const PROTOCOL_HTTP = constantAttribute(K.ATTR_NETWORK_PROTOCOL_NAME, 'http');
const CAPTURE_INCOMPLETE = constantAttribute(K.ATTR_PERFCATCH_CAPTURE_INCOMPLETE, true);

/** Trace flags and the parent's remoteness, as Span.flags. */
function spanFlags(traceFlags: number, parentIsRemote: boolean): number {
  return (traceFlags & 0xff) | FLAG_HAS_IS_REMOTE | (parentIsRemote ? FLAG_IS_REMOTE : 0);
}

/** A connection's part of its SERVER spans: what only changes with the connection. */
interface ConnectionBlock {
  pid: number;
  localAddr: string;
  remoteIp: string;
  bytes: Buffer;
}

/** Connection blocks kept at most; past it the cache starts over. */
const MAX_CONNECTION_BLOCKS = 4096;

/**
 * The SERVER span attributes that only change with the connection (transport, both ends,
 * process), encoded once per connection, not once per span: a keep-alive connection carries
 * many requests, and these nine were a third of a span's attribute encoding.
 */
class ConnectionAttributes {
  readonly #blocks = new Map<number, ConnectionBlock>();
  readonly #w = new ProtobufWriter(512);

  block(pid: number, localAddr: string, localPort: number, remoteIp: string, remotePort: number): Buffer {
    // The ports (32 bits) pick the slot; the rest is compared, so a clash only re-encodes.
    const key = remotePort * 65536 + localPort;
    const known = this.#blocks.get(key);
    if (known !== undefined && known.pid === pid && known.localAddr === localAddr && known.remoteIp === remoteIp) return known.bytes;
    const w = this.#w;
    w.reset();
    w.raw(TRANSPORT_TCP);
    writeAttribute(w, SPAN_ATTRIBUTES, K.ATTR_SERVER_PORT, localPort);
    writeAttribute(w, SPAN_ATTRIBUTES, K.ATTR_NETWORK_LOCAL_ADDRESS, localAddr);
    writeAttribute(w, SPAN_ATTRIBUTES, K.ATTR_NETWORK_LOCAL_PORT, localPort);
    writeAttribute(w, SPAN_ATTRIBUTES, K.ATTR_CLIENT_ADDRESS, remoteIp);
    writeAttribute(w, SPAN_ATTRIBUTES, K.ATTR_CLIENT_PORT, remotePort);
    writeAttribute(w, SPAN_ATTRIBUTES, K.ATTR_NETWORK_PEER_ADDRESS, remoteIp);
    writeAttribute(w, SPAN_ATTRIBUTES, K.ATTR_NETWORK_PEER_PORT, remotePort);
    writeAttribute(w, SPAN_ATTRIBUTES, K.ATTR_PROCESS_PID, pid);
    const bytes = Buffer.from(w.view());
    if (this.#blocks.size >= MAX_CONNECTION_BLOCKS) this.#blocks.clear();
    this.#blocks.set(key, { pid, localAddr, remoteIp, bytes });
    return bytes;
  }
}

export class SpanBuilder {
  /** Resources by service name, process name and pod name. */
  private readonly resources = new Map<string, Map<string, Map<string, OtlpResource>>>();
  private resourceCount = 0;
  private readonly host = hostname();
  private readonly w = new ProtobufWriter(8192);
  private readonly connections = new ConnectionAttributes();
  private readonly sink: SpanSink;
  private readonly sampler: TraceSampler;
  private readonly resourceAttributes: Readonly<Record<string, string>>;
  /** Spans the sampler left out of the export (their requests are stored and counted as usual). */
  sampledOut = 0;
  /** Spans handed to the sink, for export. */
  spansStarted = 0;

  constructor(sink: SpanSink, opts: SpanBuilderOptions = {}) {
    this.sink = sink;
    this.sampler = opts.sampler ?? new TraceSampler(DEFAULT_SAMPLER);
    this.resourceAttributes = opts.resourceAttributes ?? {};
  }

  /**
   * One Resource per service instance: service, process and (on Kubernetes) pod. A CLIENT span
   * reported late knows its parent's pod only by name: it finds the resource already made.
   */
  resourceFor(serviceName: string, processName: string, pod: PodMetadata | null, podName: string | null = pod?.podName ?? null): OtlpResource {
    let byProcess = this.resources.get(serviceName);
    if (!byProcess) this.resources.set(serviceName, (byProcess = new Map()));
    let byPod = byProcess.get(processName);
    if (!byPod) byProcess.set(processName, (byPod = new Map()));
    const podKey = podName ?? '';
    let r = byPod.get(podKey);
    if (!r) {
      if (this.resourceCount >= MAX_RESOURCES) {
        this.resources.clear();
        this.resourceCount = 0;
        return this.resourceFor(serviceName, processName, pod, podName);
      }
      r = this.encodeResource(serviceName, processName, pod);
      byPod.set(podKey, r);
      this.resourceCount++;
    }
    return r;
  }

  private encodeResource(serviceName: string, processName: string, pod: PodMetadata | null): OtlpResource {
    const attributes: Record<string, AttributeValue> = {
      ...this.resourceAttributes,
      ...(pod ? k8sResourceAttributes(pod) : {}),
      // The record's service name already chose between the process's own name and the pod's.
      [sc.ATTR_SERVICE_NAME]: serviceName,
      [sc.ATTR_PROCESS_EXECUTABLE_NAME]: processName,
      [sc.ATTR_HOST_NAME]: this.host,
      [sc.ATTR_TELEMETRY_SDK_NAME]: 'perfcatch',
      [sc.ATTR_TELEMETRY_SDK_LANGUAGE]: 'ebpf',
      [sc.ATTR_TELEMETRY_SDK_VERSION]: INSTRUMENTATION_SCOPE.version,
    };
    const w = new ProtobufWriter(512);
    for (const [key, value] of Object.entries(attributes)) writeAttribute(w, RESOURCE_ATTRIBUTES, keyFieldOf(key), value);
    return { bytes: Buffer.from(w.view()) };
  }

  /** Fields every span starts with: ids, name, kind, times. */
  private beginSpan(traceId: string, spanId: string, parentSpanId: string | null, name: string, kind: number, startNs: bigint, endNs: bigint): void {
    const w = this.w;
    w.reset();
    w.tag(SPAN_TRACE_ID, WireType.LEN);
    w.hexBytes(traceId);
    w.tag(SPAN_SPAN_ID, WireType.LEN);
    w.hexBytes(spanId);
    if (parentSpanId) {
      w.tag(SPAN_PARENT_SPAN_ID, WireType.LEN);
      w.hexBytes(parentSpanId);
    }
    w.tag(SPAN_NAME, WireType.LEN);
    w.string(name);
    w.tag(SPAN_KIND, WireType.VARINT);
    w.varint(kind);
    w.tag(SPAN_START, WireType.FIXED64);
    w.fixed64(startNs);
    w.tag(SPAN_END, WireType.FIXED64);
    w.fixed64(endNs >= startNs ? endNs : startNs);
  }

  /**
   * error.type, status (only ERROR is written: UNSET is the default) and flags. HTTP spans
   * give the status code as error.type, as the HTTP conventions say.
   */
  private endSpan(isError: boolean, status: number | null, flags: number): Buffer {
    const w = this.w;
    if (isError) {
      if (status !== null) this.str(K.ATTR_ERROR_TYPE, String(status));
      w.tag(SPAN_STATUS, WireType.LEN);
      w.varint(2);
      w.tag(STATUS_CODE, WireType.VARINT);
      w.varint(STATUS_ERROR);
    }
    w.tag(SPAN_FLAGS, WireType.FIXED32);
    w.fixed32(flags);
    return w.view();
  }

  private attr(keyField: Buffer, value: AttributeValue): void {
    writeAttribute(this.w, SPAN_ATTRIBUTES, keyField, value);
  }

  private int(keyField: Buffer, value: number): void {
    writeIntAttribute(this.w, keyField, value);
  }

  private str(keyField: Buffer, value: string): void {
    writeStringAttribute(this.w, keyField, value);
  }

  /** The request's SERVER span. */
  build(b: BuiltRequest): void {
    const r = b.record;
    const method = r.http_method;
    const route = r.route; // the record's template of b.http.path
    const parent: ParentContext =
      r.parent_span_id === null ? { kind: 'none' }
      : b.traceParent !== null ? { kind: 'remote', sampled: b.traceParent.sampled }
      : { kind: 'local' };
    if (!this.sampler.sampleRequest(r.span_id, r.trace_id, parent)) {
      this.sampledOut++;
      return;
    }
    const grpc = b.h2?.grpc ?? null;
    // The parent is an incoming traceparent (remote), or the caller's CLIENT span when the
    // caller runs on this host too (linked by the kernel from the connection's two ends).
    const name = grpc ? `${grpc.service}/${grpc.method}` : method ? (route ? `${method} ${route}` : method) : b.h2 ? 'h2 stream' : 'tcp request';
    this.beginSpan(r.trace_id, r.span_id, r.parent_span_id, name, KIND_SERVER, b.startNs, b.endNs);
    this.w.raw(this.connections.block(r.pid, b.localAddr, r.local_port, r.remote_ip, r.remote_port));
    this.int(K.ATTR_HTTP_REQUEST_SIZE, r.bytes_received);
    this.int(K.ATTR_HTTP_RESPONSE_SIZE, r.bytes_sent);
    this.int(K.ATTR_PERFCATCH_CPU_TIME_NS, b.cpuNs);
    this.str(K.ATTR_PERFCATCH_CPU_ATTRIBUTION, r.cpu_attribution);
    this.int(K.ATTR_PERFCATCH_CPU_AFTER_RESPONSE_NS, Math.round(r.cpu_after_response_ms * 1e6));
    this.int(K.ATTR_PERFCATCH_MEMORY_RSS_BYTES, r.memory_rss_bytes);
    this.str(K.ATTR_PERFCATCH_REQUEST_ID, r.request_id);
    if (b.h2) this.int(K.ATTR_PERFCATCH_H2_STREAM_ID, b.h2.streamId);
    else this.int(K.ATTR_PERFCATCH_CONNECTION_REQUEST_SEQ, b.seq);
    if (grpc) {
      this.str(K.ATTR_RPC_SYSTEM, 'grpc');
      this.str(K.ATTR_RPC_SERVICE, grpc.service);
      this.str(K.ATTR_RPC_METHOD, grpc.method);
      if (grpc.status !== null) this.int(K.ATTR_RPC_GRPC_STATUS_CODE, grpc.status);
    }
    if (b.http) {
      this.w.raw(SCHEME_HTTP);
      this.str(K.ATTR_HTTP_REQUEST_METHOD, b.http.method);
      this.str(K.ATTR_URL_PATH, b.http.path);
      this.w.raw(PROTOCOL_HTTP);
      this.str(K.ATTR_NETWORK_PROTOCOL_VERSION, b.http.version);
      const serverAddress = hostOfAuthority(b.http.headers.get('host'));
      if (serverAddress) this.str(K.ATTR_SERVER_ADDRESS, serverAddress);
      if (route) this.str(K.ATTR_PERFCATCH_ROUTE, route);
      if (b.http.query !== null && r.http_path) this.str(K.ATTR_URL_QUERY, r.http_path.slice(b.http.path.length + 1));
      const ua = b.http.headers.get('user-agent');
      if (ua) this.str(K.ATTR_USER_AGENT_ORIGINAL, ua.slice(0, 256));
    }
    if (r.http_status !== null) this.int(K.ATTR_HTTP_RESPONSE_STATUS_CODE, r.http_status);
    if (r.correlation_id) this.str(K.ATTR_PERFCATCH_CORRELATION_ID, r.correlation_id);
    if (b.captureIncomplete) this.w.raw(CAPTURE_INCOMPLETE);
    // Sampling policy: an exported span is marked sampled, including (with the default
    // always_on sampler) a child of a traceparent whose sampled flag is 00 (documented).
    // gRPC server spans: the status codes that mean the server failed (RPC conventions).
    const isError = grpc ? grpc.status !== null && GRPC_SERVER_ERRORS.has(grpc.status) : r.http_status !== null && r.http_status >= 500;
    const span = this.endSpan(isError, grpc ? grpc.status : r.http_status, spanFlags(TRACE_FLAG_SAMPLED, b.traceParent !== null && r.parent_span_id !== null));
    this.emit(this.resourceFor(r.service_name, r.process_name, b.pod), span);
  }

  /** A CLIENT span for one outbound exchange, child of its request's SERVER span. */
  buildClient(d: BuiltDependency, parent: RequestRecord): void {
    const r = d.record;
    if (!this.sampler.sampleClient(parent.span_id, parent.trace_id)) {
      this.sampledOut++;
      return;
    }
    const grpc = d.h2?.grpc ?? null;
    const name =
      grpc ? `${grpc.service}/${grpc.method}`
      : d.http ? `${d.http.method} ${routeTemplate(d.http.path)}`
      : d.h2 ? 'h2 stream'
      : `tcp ${r.peer_ip}:${r.peer_port}`;
    this.beginSpan(parent.trace_id, r.span_id, parent.span_id, name, KIND_CLIENT, d.startNs, d.endNs);
    this.str(K.ATTR_SERVER_ADDRESS, r.peer_ip);
    this.int(K.ATTR_SERVER_PORT, r.peer_port);
    this.str(K.ATTR_NETWORK_PEER_ADDRESS, r.peer_ip);
    this.int(K.ATTR_NETWORK_PEER_PORT, r.peer_port);
    this.str(K.ATTR_NETWORK_LOCAL_ADDRESS, d.localAddr);
    this.int(K.ATTR_NETWORK_LOCAL_PORT, d.localPort);
    this.w.raw(TRANSPORT_TCP);
    this.int(K.ATTR_HTTP_REQUEST_SIZE, r.bytes_sent);
    this.int(K.ATTR_HTTP_RESPONSE_SIZE, r.bytes_received);
    this.attr(K.ATTR_PERFCATCH_NEW_CONNECTION, r.new_connection);
    this.str(K.ATTR_PERFCATCH_CALLER_ATTRIBUTION, r.caller_attribution);
    if (r.connect_ms !== null) this.attr(K.ATTR_PERFCATCH_CONNECT_MS, r.connect_ms);
    if (d.http) {
      const host = d.http.headers.get('host') ?? `${r.peer_ip}:${r.peer_port}`;
      this.str(K.ATTR_HTTP_REQUEST_METHOD, d.http.method);
      this.str(K.ATTR_URL_PATH, d.http.path);
      this.str(K.ATTR_URL_FULL, `http://${host}${r.http_path ?? d.http.path}`);
      this.w.raw(PROTOCOL_HTTP);
      this.str(K.ATTR_NETWORK_PROTOCOL_VERSION, d.http.version);
    }
    if (d.h2) this.int(K.ATTR_PERFCATCH_H2_STREAM_ID, d.h2.streamId);
    if (grpc) {
      this.str(K.ATTR_RPC_SYSTEM, 'grpc');
      this.str(K.ATTR_RPC_SERVICE, grpc.service);
      this.str(K.ATTR_RPC_METHOD, grpc.method);
      if (grpc.status !== null) this.int(K.ATTR_RPC_GRPC_STATUS_CODE, grpc.status);
    }
    if (r.http_status !== null) this.int(K.ATTR_HTTP_RESPONSE_STATUS_CODE, r.http_status);
    // gRPC client spans: every status but OK is an error (RPC conventions); no status seen: unset.
    const isError = grpc ? grpc.status !== null && grpc.status !== 0 : r.http_status !== null && r.http_status >= 400;
    const span = this.endSpan(isError, grpc ? grpc.status : r.http_status, spanFlags(TRACE_FLAG_SAMPLED, false));
    this.emit(this.resourceFor(parent.service_name, parent.process_name, null, parent.pod_name), span);
  }

  private emit(resource: OtlpResource, span: Buffer): void {
    this.spansStarted++;
    this.sink(resource, span);
  }
}
