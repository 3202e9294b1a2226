/**
 * RequestRecords kept as columns of fixed-size fields in typed arrays, one row per slot: the
 * ring buffer (request-store.ts) holds 50,000 requests without an object per request. A
 * record object per request, kept for the seconds it takes the ring to come round, was
 * promoted to the old generation and collected there: at 5,000 req/s that churn kept V8's
 * concurrent marker busy on every core. A row is turned back into a RequestRecord only when a
 * query returns it.
 *
 * Strings that repeat (process and service names, paths, routes, methods, addresses) are
 * kept as references to one copy; ids are kept as bytes. What does not fit a column (an id
 * that is not lowercase hex of its length, a request_id other than the span_id, a
 * dependency list) sits in a side table of the rows that need it.
 */
import { writeLowerHex } from '../util/hex.ts';
import type { CpuAttribution, DependencyRecord, RequestProtocol, RequestRecord } from '../types.ts';

const ATTRIBUTIONS: readonly CpuAttribution[] = ['exact', 'apportioned', 'unknown'];
/** Protocol column: the index, 0 for null; ABSENT where the stored record had no such field
 * (records written before it existed, e.g. an older database). */
const PROTOCOLS: readonly (RequestProtocol | null)[] = [null, 'http/1.0', 'http/1.1', 'h2'];
const ABSENT = -2;


/** Row flags: the ids are in the byte columns (else in the side table); a parent is set. */
const Id = { CANONICAL: 1, PARENT: 2 } as const;

/** The ids of a row that are not lowercase hex of their length (tests, older databases). */
interface OddIds {
  request_id: string;
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
}

/** Equal strings stored once: a fresh copy per request would be promoted with its row. */
class Interner {
  readonly #strings = new Map<string, string>();
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  intern(s: string | null): string | null {
    if (s === null) return null;
    const known = this.#strings.get(s);
    if (known !== undefined) return known;
    if (this.#strings.size >= this.#max) this.#strings.clear();
    this.#strings.set(s, s);
    return s;
  }
}

export class RequestColumns {
  readonly capacity: number;
  readonly #f64: {
    timestamp: Float64Array;
    duration: Float64Array;
    cpu: Float64Array;
    cpuAfter: Float64Array;
    rss: Float64Array;
    received: Float64Array;
    sent: Float64Array;
  };
  readonly #pid: Int32Array;
  readonly #localPort: Int32Array;
  readonly #remotePort: Int32Array;
  /** -1 for null. */
  readonly #status: Int32Array;
  readonly #attribution: Uint8Array;
  /** PROTOCOLS index, or ABSENT. */
  readonly #protocol: Int8Array;
  /** -1 for null, or ABSENT. */
  readonly #grpcStatus: Int32Array;
  readonly #flags: Uint8Array;
  readonly #trace: Buffer;
  readonly #span: Buffer;
  /** #span as pairs of u32, for comparing ids without a call into C++ per row. */
  readonly #span32: Uint32Array;
  readonly #parent: Buffer;
  readonly #process: string[];
  readonly #service: string[];
  readonly #namespace: (string | null)[];
  readonly #pod: (string | null)[];
  readonly #route: (string | null)[];
  readonly #remoteIp: string[];
  readonly #correlation: (string | null)[];
  readonly #method: (string | null)[];
  readonly #path: (string | null)[];
  readonly #oddIds = new Map<number, OddIds>();
  readonly #dependencies = new Map<number, DependencyRecord[]>();
  readonly #interner = new Interner(8192);

  constructor(capacity: number) {
    this.capacity = capacity;
    const f64 = () => new Float64Array(capacity);
    this.#f64 = { timestamp: f64(), duration: f64(), cpu: f64(), cpuAfter: f64(), rss: f64(), received: f64(), sent: f64() };
    this.#pid = new Int32Array(capacity);
    this.#localPort = new Int32Array(capacity);
    this.#remotePort = new Int32Array(capacity);
    this.#status = new Int32Array(capacity);
    this.#attribution = new Uint8Array(capacity);
    this.#protocol = new Int8Array(capacity);
    this.#grpcStatus = new Int32Array(capacity);
    this.#flags = new Uint8Array(capacity);
    this.#trace = Buffer.alloc(capacity * 16);
    this.#span = Buffer.alloc(capacity * 8); // its own ArrayBuffer at offset 0: u32-aligned
    this.#span32 = new Uint32Array(this.#span.buffer, this.#span.byteOffset, capacity * 2);
    this.#parent = Buffer.alloc(capacity * 8);
    const refs = <T>(): T[] => new Array<T>(capacity).fill(null as T);
    this.#process = refs();
    this.#service = refs();
    this.#namespace = refs();
    this.#pod = refs();
    this.#route = refs();
    this.#remoteIp = refs();
    this.#correlation = refs();
    this.#method = refs();
    this.#path = refs();
  }

  /** Writes a record into a row (replacing what was there). */
  write(row: number, r: RequestRecord): void {
    const f = this.#f64;
    f.timestamp[row] = r.timestamp;
    f.duration[row] = r.duration_ms;
    f.cpu[row] = r.cpu_time_ms;
    f.cpuAfter[row] = r.cpu_after_response_ms;
    f.rss[row] = r.memory_rss_bytes;
    f.received[row] = r.bytes_received;
    f.sent[row] = r.bytes_sent;
    this.#pid[row] = r.pid;
    this.#localPort[row] = r.local_port;
    this.#remotePort[row] = r.remote_port;
    this.#status[row] = r.http_status ?? -1;
    this.#attribution[row] = ATTRIBUTIONS.indexOf(r.cpu_attribution);
    this.#protocol[row] = r.protocol === undefined ? ABSENT : Math.max(0, PROTOCOLS.indexOf(r.protocol));
    this.#grpcStatus[row] = r.grpc_status === undefined ? ABSENT : (r.grpc_status ?? -1);
    this.#process[row] = r.process_name;
    this.#service[row] = r.service_name;
    this.#namespace[row] = r.namespace;
    this.#pod[row] = r.pod_name;
    const interner = this.#interner;
    this.#route[row] = interner.intern(r.route);
    this.#remoteIp[row] = interner.intern(r.remote_ip)!;
    this.#correlation[row] = r.correlation_id;
    this.#method[row] = interner.intern(r.http_method);
    this.#path[row] = interner.intern(r.http_path);
    if (r.dependencies.length) this.#dependencies.set(row, r.dependencies);
    else if (this.#dependencies.size !== 0) this.#dependencies.delete(row); // most stores have none: no hash lookup
    this.#writeIds(row, r);
  }

  #writeIds(row: number, r: RequestRecord): void {
    const parent = r.parent_span_id;
    // Checked and converted in one pass; a row whose ids do not all fit keeps them aside.
    const canonical =
      r.request_id === r.span_id &&
      writeLowerHex(r.trace_id, 32, this.#trace, row * 16) &&
      writeLowerHex(r.span_id, 16, this.#span, row * 8) &&
      (parent === null || writeLowerHex(parent, 16, this.#parent, row * 8));
    if (!canonical) {
      this.#flags[row] = 0;
      this.#oddIds.set(row, { request_id: r.request_id, trace_id: r.trace_id, span_id: r.span_id, parent_span_id: parent });
      return;
    }
    if (this.#oddIds.size !== 0) this.#oddIds.delete(row);
    this.#flags[row] = Id.CANONICAL | (parent !== null ? Id.PARENT : 0);
  }

  /** The row as a RequestRecord (a new object; the dependency list is the stored one). */
  read(row: number): RequestRecord {
    const f = this.#f64;
    const odd = this.#flags[row]! & Id.CANONICAL ? undefined : this.#oddIds.get(row);
    const spanId = odd ? odd.span_id : this.#span.toString('hex', row * 8, row * 8 + 8);
    const status = this.#status[row]!;
    return {
      request_id: odd ? odd.request_id : spanId,
      trace_id: odd ? odd.trace_id : this.#trace.toString('hex', row * 16, row * 16 + 16),
      span_id: spanId,
      parent_span_id: odd ? odd.parent_span_id : this.#flags[row]! & Id.PARENT ? this.#parent.toString('hex', row * 8, row * 8 + 8) : null,
      timestamp: f.timestamp[row]!,
      pid: this.#pid[row]!,
      process_name: this.#process[row]!,
      service_name: this.#service[row]!,
      namespace: this.#namespace[row]!,
      pod_name: this.#pod[row]!,
      route: this.#route[row]!,
      local_port: this.#localPort[row]!,
      remote_ip: this.#remoteIp[row]!,
      remote_port: this.#remotePort[row]!,
      duration_ms: f.duration[row]!,
      cpu_time_ms: f.cpu[row]!,
      cpu_attribution: ATTRIBUTIONS[this.#attribution[row]!]!,
      cpu_after_response_ms: f.cpuAfter[row]!,
      memory_rss_bytes: f.rss[row]!,
      bytes_received: f.received[row]!,
      bytes_sent: f.sent[row]!,
      correlation_id: this.#correlation[row]!,
      http_method: this.#method[row]!,
      http_path: this.#path[row]!,
      http_status: status === -1 ? null : status,
      ...(this.#protocol[row] === ABSENT ? {} : { protocol: this.protocol(row) }),
      ...(this.#grpcStatus[row] === ABSENT ? {} : { grpc_status: this.grpcStatus(row) }),
      dependencies: this.#dependencies.get(row) ?? [],
    };
  }

  /** Column readers for filters: no object per row scanned. */
  timestamp(row: number): number {
    return this.#f64.timestamp[row]!;
  }
  duration(row: number): number {
    return this.#f64.duration[row]!;
  }
  cpu(row: number): number {
    return this.#f64.cpu[row]!;
  }
  received(row: number): number {
    return this.#f64.received[row]!;
  }
  sent(row: number): number {
    return this.#f64.sent[row]!;
  }
  status(row: number): number | null {
    const s = this.#status[row]!;
    return s === -1 ? null : s;
  }
  protocol(row: number): RequestProtocol | null {
    const p = this.#protocol[row]!;
    return p === ABSENT ? null : PROTOCOLS[p]!;
  }
  grpcStatus(row: number): number | null {
    const s = this.#grpcStatus[row]!;
    return s < 0 ? null : s;
  }
  processName(row: number): string {
    return this.#process[row]!;
  }
  serviceName(row: number): string {
    return this.#service[row]!;
  }
  namespace(row: number): string | null {
    return this.#namespace[row]!;
  }
  podName(row: number): string | null {
    return this.#pod[row]!;
  }
  correlationId(row: number): string | null {
    return this.#correlation[row]!;
  }
  method(row: number): string | null {
    return this.#method[row]!;
  }
  path(row: number): string | null {
    return this.#path[row]!;
  }

  /** Whether the row's request_id is `id`; `key` is requestIdKey(id). */
  hasRequestId(row: number, id: string, key: Uint32Array | null): boolean {
    if (!(this.#flags[row]! & Id.CANONICAL)) return this.#oddIds.get(row)?.request_id === id;
    return key !== null && this.#span32[row * 2] === key[0] && this.#span32[row * 2 + 1] === key[1];
  }

  /** `id` as the two u32 a canonical row stores, or null when no canonical row can have it. */
  static requestIdKey(id: string): Uint32Array | null {
    const bytes = new Uint8Array(8);
    return writeLowerHex(id, 16, bytes, 0) ? new Uint32Array(bytes.buffer) : null;
  }
}
