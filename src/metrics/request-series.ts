/**
 * Per-label-set request counts and cost histograms, cumulative since the series appeared.
 * Aggregated here rather than by SDK instruments: the SDK hashes the attributes of every
 * record() call, which was about a tenth of the agent's busy time at 30K requests/s. Finding a
 * request's series builds no key and, once the series exists, allocates nothing.
 */
import type { Attributes, HrTime } from '@opentelemetry/api';
import { hrTime } from '@opentelemetry/core';
import type { DependencyRecord, RequestRecord } from '../types.ts';
import { writeLowerHex } from '../util/hex.ts';
import { RouteLimiter } from './route-limiter.ts';

export const DURATION_BUCKETS_MS: readonly number[] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
export const CPU_BUCKETS_MS: readonly number[] = [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000];

/** `method` label values; anything else is OTHER. */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 'OTHER'] as const;
const OTHER_METHOD = METHODS.length - 1;
const METHOD_INDEX = new Map<string, number>(METHODS.slice(0, OTHER_METHOD).map((m, i) => [m, i]));
/** `status_class` label values, indexed by the status' hundreds digit (0: no valid status). */
const STATUS_CLASSES = ['none', '1xx', '2xx', '3xx', '4xx', '5xx'] as const;

const EXEMPLAR_ID_BYTES = 24;
const Held = { NONE: 0, BYTES: 1, ODD: 2 } as const;

/** A trace id then a span id as bytes into `out` at `at`; false when either is not W3C hex. */
function writeExemplarIds(traceId: string, spanId: string, out: Uint8Array, at: number): boolean {
  return writeLowerHex(traceId, 32, out, at) && writeLowerHex(spanId, 16, out, at + 16);
}

/**
 * The latest measurement of each bucket with the request that made it (its trace and span):
 * a spike in a panel then opens that request. Parallel typed arrays, so recording allocates
 * nothing; the ids are kept as bytes, not as the record's strings, which an old-generation
 * array would keep alive (and an id sliced from the id pool's hex string, its whole pool).
 */
export class BucketExemplars {
  readonly values: Float64Array;
  /** Epoch milliseconds of the measurement (the request's end). */
  readonly timesMs: Float64Array;
  /** Per bucket: 16 bytes of trace id, then 8 of span id. */
  readonly #ids: Uint8Array;
  /** Per bucket: NONE, or where its ids are. */
  readonly #held: Uint8Array;
  /** Ids that are not lowercase hex of their length (tests, odd traceparents), by bucket. */
  readonly #odd = new Map<number, { traceId: string; spanId: string }>();

  constructor(buckets: number) {
    this.values = new Float64Array(buckets);
    this.timesMs = new Float64Array(buckets);
    this.#ids = new Uint8Array(buckets * EXEMPLAR_ID_BYTES);
    this.#held = new Uint8Array(buckets);
  }

  /** The bucket's ids become the source's: its bytes when it has them, else its strings. */
  setIds(bucket: number, source: ExemplarSource): void {
    const at = bucket * EXEMPLAR_ID_BYTES;
    const bytes = source.idBytes;
    if (bytes) for (let i = 0; i < EXEMPLAR_ID_BYTES; i++) this.#ids[at + i] = bytes[i]!;
    if (bytes || writeExemplarIds(source.traceId, source.spanId, this.#ids, at)) {
      this.#held[bucket] = Held.BYTES;
      if (this.#odd.size !== 0) this.#odd.delete(bucket);
    } else {
      this.#held[bucket] = Held.ODD;
      this.#odd.set(bucket, { traceId: source.traceId, spanId: source.spanId });
    }
  }

  /** The bucket's ids, or null when it has no exemplar yet. */
  idsAt(bucket: number): { traceId: string; spanId: string } | null {
    const held = this.#held[bucket];
    if (held === Held.ODD) return this.#odd.get(bucket)!;
    if (held !== Held.BYTES) return null;
    const at = bucket * EXEMPLAR_ID_BYTES;
    const ids = Buffer.from(this.#ids.buffer, this.#ids.byteOffset + at, EXEMPLAR_ID_BYTES);
    return { traceId: ids.toString('hex', 0, 16), spanId: ids.toString('hex', 16, 24) };
  }
}

/** What an exemplar points at: a request's ids and when it ended. */
export interface ExemplarSource {
  traceId: string;
  spanId: string;
  timeMs: number;
  /** The ids as bytes (trace, then span), when the caller converted them once for several histograms. */
  idBytes?: Uint8Array | null;
}

/** Explicit-bucket histogram with inclusive upper bounds, like the SDK's. */
export class BucketHistogram {
  readonly boundaries: readonly number[];
  /** One per boundary, then the +Inf bucket. */
  readonly counts: Float64Array;
  readonly exemplars: BucketExemplars;
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;

  constructor(boundaries: readonly number[]) {
    this.boundaries = boundaries;
    this.counts = new Float64Array(boundaries.length + 1);
    this.exemplars = new BucketExemplars(boundaries.length + 1);
  }

  record(value: number, source?: ExemplarSource): void {
    // The SDK's histograms drop negative values (and count NaN nowhere); so do these.
    if (!(value >= 0)) return;
    const bounds = this.boundaries;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.count++;
    this.sum += value;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
    if (source) {
      const e = this.exemplars;
      e.values[i] = value;
      e.timesMs[i] = source.timeMs;
      e.setIds(i, source);
    }
  }
}

/** A request's exemplar source, reused: record() copies what it keeps. */
const requestIdBytes = new Uint8Array(EXEMPLAR_ID_BYTES);
const requestSource: ExemplarSource = { traceId: '', spanId: '', timeMs: 0, idBytes: null };

/**
 * The exemplar source for a span; its ids are converted to bytes once for every histogram it
 * goes to (a request's four: two tables, duration and CPU in each).
 */
function exemplarSource(traceId: string, spanId: string, timeMs: number): ExemplarSource {
  if (traceId !== requestSource.traceId || spanId !== requestSource.spanId) {
    requestSource.traceId = traceId;
    requestSource.spanId = spanId;
    requestSource.idBytes = writeExemplarIds(traceId, spanId, requestIdBytes, 0) ? requestIdBytes : null;
  }
  requestSource.timeMs = timeMs;
  return requestSource;
}

const sourceOf = (r: RequestRecord) => exemplarSource(r.trace_id, r.span_id, r.timestamp * 1000 + r.duration_ms);

/** One label set's cumulative totals. */
export class RequestSeries {
  readonly attributes: Attributes;
  /** Epoch seconds of the newest request recorded (from the record: no clock read). */
  lastSeen = 0;
  /** Where it sits in the table's index, to take it out when it expires. */
  slots: Slots | null = null;
  slot = 0;
  /** When the series appeared: the start of its cumulative counts. */
  readonly startTime: HrTime = hrTime();
  requests = 0;
  bytesReceived = 0;
  bytesSent = 0;
  readonly duration = new BucketHistogram(DURATION_BUCKETS_MS);
  readonly cpu = new BucketHistogram(CPU_BUCKETS_MS);

  constructor(attributes: Attributes) {
    this.attributes = attributes;
  }

  record(r: RequestRecord): void {
    if (r.timestamp > this.lastSeen) this.lastSeen = r.timestamp;
    this.requests++;
    this.bytesReceived += r.bytes_received;
    this.bytesSent += r.bytes_sent;
    const source = sourceOf(r);
    this.duration.record(r.duration_ms, source);
    this.cpu.record(r.cpu_time_ms, source);
  }
}

/** A route's series, one slot per (method, status class). */
type Slots = (RequestSeries | undefined)[];
type RouteIndex = Map<string, Slots>;
/** service → process → port → namespace → pod → route label → slots. */
type SeriesIndex = Map<string, Map<string, Map<number, Map<string | null, Map<string | null, RouteIndex>>>>>;

/** Every label set's series; route labels are capped per service by RouteLimiter. */
export class RequestSeriesTable {
  readonly #routes = new RouteLimiter();
  // Keyed by the record's own values (service, process and pod strings are shared per
  // process), so a lookup hashes no new string except the route.
  #index: SeriesIndex = new Map();
  #all: RequestSeries[] = [];
  /** Series removed by expire(). */
  expired = 0;
  /**
   * The last request's label values (the record's own strings) and its series: consecutive
   * requests mostly share them, and a match skips the index's six lookups. Forgotten by
   * expire(), the only place a series or a route label stops being what a lookup would give.
   */
  #last: RequestSeries | null = null;
  #lastService = '';
  #lastProcess = '';
  #lastPort = -1;
  #lastNamespace: string | null = null;
  #lastPod: string | null = null;
  #lastRoute: string | null = null;
  #lastMethod = -1;
  #lastStatus = -1;

  /** Every series, in the order they appeared. */
  get all(): readonly RequestSeries[] {
    return this.#all;
  }

  record(r: RequestRecord): void {
    const method = methodIndex(r.http_method);
    const status = statusClassIndex(r.http_status);
    const last = this.#last;
    if (
      last !== null &&
      method === this.#lastMethod &&
      status === this.#lastStatus &&
      r.route === this.#lastRoute &&
      r.local_port === this.#lastPort &&
      r.service_name === this.#lastService &&
      r.process_name === this.#lastProcess &&
      r.pod_name === this.#lastPod &&
      r.namespace === this.#lastNamespace
    ) {
      last.record(r);
      return;
    }
    const series = this.#seriesOf(r, method, status);
    this.#last = series;
    this.#lastService = r.service_name;
    this.#lastProcess = r.process_name;
    this.#lastPort = r.local_port;
    this.#lastNamespace = r.namespace;
    this.#lastPod = r.pod_name;
    this.#lastRoute = r.route;
    this.#lastMethod = method;
    this.#lastStatus = status;
    series.record(r);
  }

  #seriesOf(r: RequestRecord, method: number, status: number): RequestSeries {
    const route = this.#routes.label(r.service_name, r.route);
    const byProcess = child(this.#index, r.service_name);
    const byPort = child(byProcess, r.process_name);
    const byNamespace = child(byPort, r.local_port);
    const byPod = child(byNamespace, r.namespace);
    const byRoute = child(byPod, r.pod_name);
    let slots = byRoute.get(route);
    if (!slots) {
      slots = new Array<RequestSeries | undefined>(METHODS.length * STATUS_CLASSES.length);
      byRoute.set(route, slots);
    }
    const slot = method * STATUS_CLASSES.length + status;
    let series = slots[slot];
    if (!series) {
      series = new RequestSeries(requestLabels(r, METHODS[method]!, STATUS_CLASSES[status]!, route));
      series.slots = slots;
      series.slot = slot;
      slots[slot] = series;
      this.#all.push(series);
    }
    return series;
  }

  /**
   * Forgets series with no request since `cutoffSeconds` (epoch): pods, processes and ports
   * come and go, and each left series behind for good (issue 13, finding 8). A series that
   * comes back starts its cumulative counts afresh, with a new start time, as Prometheus
   * expects of a reset. Emptied index branches go when the index is rebuilt from the rest.
   */
  expire(cutoffSeconds: number): number {
    this.#last = null;
    const kept: RequestSeries[] = [];
    let removed = 0;
    for (const series of this.#all) {
      if (series.lastSeen >= cutoffSeconds) {
        kept.push(series);
        continue;
      }
      if (series.slots) series.slots[series.slot] = undefined;
      removed++;
    }
    if (removed === 0) return 0;
    this.#all = kept;
    this.#pruneIndex();
    this.#routes.retain(new Set(kept.map((series) => String(series.attributes.service))));
    this.expired += removed;
    return removed;
  }

  /** Drops index branches that lead to no series. */
  #pruneIndex(): void {
    const prune = (map: Map<unknown, unknown>, depth: number): boolean => {
      for (const [key, value] of map) {
        const empty = depth === 0 ? (value as Slots).every((s) => s === undefined) : prune(value as Map<unknown, unknown>, depth - 1);
        if (empty) map.delete(key);
      }
      return map.size === 0;
    };
    // service → process → port → namespace → pod → route → slots: five maps above the routes.
    prune(this.#index as Map<unknown, unknown>, 5);
  }
}

/** The map under `key`, created empty on first use. */
function child<K, M extends Map<unknown, unknown>>(map: Map<K, M>, key: K): M {
  let next = map.get(key);
  if (!next) {
    next = new Map() as M;
    map.set(key, next);
  }
  return next;
}

/** Only bounded labels: never the raw path, peer address, request or correlation id. */
function requestLabels(r: RequestRecord, method: string, status: string, route: string): Attributes {
  const labels: Attributes = {
    service: r.service_name,
    process: r.process_name,
    port: String(r.local_port),
    method,
    status_class: status,
    route,
  };
  if (r.namespace !== null) labels.namespace = r.namespace;
  if (r.pod_name !== null) labels.pod = r.pod_name;
  return labels;
}

function methodIndex(method: string | null): number {
  if (method === null) return OTHER_METHOD;
  // Methods are almost always upper case already: look up before allocating an upper-cased copy.
  return METHOD_INDEX.get(method) ?? METHOD_INDEX.get(method.toUpperCase()) ?? OTHER_METHOD;
}

function statusClassIndex(status: number | null): number {
  return status !== null && status >= 100 && status <= 599 ? Math.floor(status / 100) : 0;
}

/**
 * The semantic conventions' advised buckets for http.server/client.request.duration (seconds).
 * The per-request CPU histogram uses the perfcatch_request_cpu_ms buckets, in seconds.
 */
export const HTTP_DURATION_BUCKETS_S: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
export const CPU_BUCKETS_S: readonly number[] = CPU_BUCKETS_MS.map((ms) => ms / 1000);

/** One label set of the standard HTTP metrics: durations in seconds (and CPU for servers). */
export class HttpSeries {
  readonly attributes: Attributes;
  readonly startTime: HrTime = hrTime();
  readonly duration = new BucketHistogram(HTTP_DURATION_BUCKETS_S);
  readonly cpu = new BucketHistogram(CPU_BUCKETS_S);

  constructor(attributes: Attributes) {
    this.attributes = attributes;
  }
}

/**
 * http.server.request.duration and http.client.request.duration with the conventions' stable
 * attributes (method, status code, error.type, url.scheme; server.address and server.port for
 * calls), plus service.name: all services share the agent's Resource. No http.route: PerfCatch's
 * route is its own guess from the path, not the framework's (it stays on perfcatch_* metrics).
 */
export class HttpSeriesTable {
  /** service -> method index * 1000 + status (0: none) -> series. */
  readonly #server = new Map<string, Map<number, HttpSeries>>();
  /** service -> "method status peer port" -> series. */
  readonly #client = new Map<string, Map<string, HttpSeries>>();
  readonly server: HttpSeries[] = [];
  readonly client: HttpSeries[] = [];

  record(r: RequestRecord): void {
    const method = methodIndex(r.http_method);
    const status = r.http_status !== null && r.http_status >= 100 && r.http_status <= 599 ? r.http_status : 0;
    const byKey = child(this.#server, r.service_name);
    const key = method * 1000 + status;
    let series = byKey.get(key);
    if (!series) {
      series = new HttpSeries(httpAttributes(r.service_name, METHODS[method]!, status, status >= 500));
      byKey.set(key, series);
      this.server.push(series);
    }
    const source = sourceOf(r);
    series.duration.record(r.duration_ms / 1000, source);
    series.cpu.record(r.cpu_time_ms / 1000, source);
    for (const d of r.dependencies) this.recordClient(r.service_name, d, r.trace_id);
  }

  private recordClient(service: string, d: DependencyRecord, traceId: string): void {
    const method = METHODS[methodIndex(d.http_method)]!;
    const status = d.http_status !== null && d.http_status >= 100 && d.http_status <= 599 ? d.http_status : 0;
    const byKey = child(this.#client, service);
    const key = `${method} ${status} ${d.peer_ip} ${d.peer_port}`;
    let series = byKey.get(key);
    if (!series) {
      series = new HttpSeries({ ...httpAttributes(service, method, status, status >= 400), 'server.address': d.peer_ip, 'server.port': d.peer_port });
      byKey.set(key, series);
      this.client.push(series);
    }
    // The exemplar is the call's CLIENT span, in its request's trace.
    series.duration.record(d.duration_ms / 1000, exemplarSource(traceId, d.span_id, d.timestamp * 1000 + d.duration_ms));
  }
}

function httpAttributes(service: string, method: string, status: number, isError: boolean): Attributes {
  // OTHER is the conventions' _OTHER for methods outside the known set.
  const attributes: Attributes = { 'service.name': service, 'http.request.method': method === 'OTHER' ? '_OTHER' : method, 'url.scheme': 'http' };
  if (status !== 0) attributes['http.response.status_code'] = status;
  if (isError) attributes['error.type'] = String(status);
  return attributes;
}
