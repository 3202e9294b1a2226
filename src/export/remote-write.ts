/**
 * Prometheus remote-write 1.0 export of per-request samples: every RequestRecord becomes one
 * sample in each of five gauge-like series, stamped with the request's own start time, so a
 * TSDB (Prometheus, VictoriaMetrics, Mimir...) holds the raw per-request cost rather than only
 * the histograms of /metrics.
 *
 * Wire format: a protobuf `prometheus.WriteRequest` (three tiny messages, written below with
 * the shared src/util/protobuf-writer.ts), Snappy block-compressed, POSTed with the remote-write 0.1.0 headers. Delivery is
 * best effort and bounded: one request in flight, a failed batch is dropped and counted (no
 * retry queue), and samples that would overflow the queue are dropped and counted.
 */
import { compress } from 'snappyjs';
import type { Logger } from '../log.ts';
import { RouteLimiter } from '../metrics/route-limiter.ts';
import type { RequestRecord } from '../types.ts';
import { int64Size, ProtobufWriter, utf8Length, varintSize, WireType } from '../util/protobuf-writer.ts';

export interface RemoteWriterOptions {
  /** Remote-write endpoint, e.g. http://prometheus:9090/api/v1/write. */
  url: string;
  /** How often the queue is sent (one request per tick). Default 1000 ms. */
  flushIntervalMs?: number;
  /** Samples held at most; past that new samples are dropped and counted. Default 50 000. */
  maxQueue?: number;
  /** Timeout of one remote-write request. Default 5000 ms. */
  timeoutMs?: number;
  log?: Logger;
}

export interface RemoteWriteCounters {
  /** Samples the endpoint accepted (2xx). */
  samplesSent: number;
  /** Samples dropped: queue full, or their batch failed. */
  samplesDropped: number;
  /** Remote-write requests that failed (network error, timeout or non-2xx). */
  requestsFailed: number;
  /** The last failure, or null if none yet. */
  lastError: string | null;
}

/** The series written per request: metric name -> the RequestRecord field it carries. */
export const REMOTE_WRITE_SERIES = [
  ['perfcatch_request_duration_ms', (r: RequestRecord) => r.duration_ms],
  ['perfcatch_request_cpu_ms', (r: RequestRecord) => r.cpu_time_ms],
  ['perfcatch_request_bytes_received', (r: RequestRecord) => r.bytes_received],
  ['perfcatch_request_bytes_sent', (r: RequestRecord) => r.bytes_sent],
  ['perfcatch_request_memory_rss_bytes', (r: RequestRecord) => r.memory_rss_bytes],
] as const;

const STANDARD_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);

export type Label = readonly [name: string, value: string];

/** One series of a WriteRequest: labels (incl. __name__) and its samples. */
export interface TimeSeries {
  labels: readonly Label[];
  samples: readonly { value: number; timestampMs: number }[];
}

interface Pending {
  /** Identity of the series: metric name + label set. */
  key: string;
  labels: readonly Label[];
  value: number;
  timestampMs: number;
}

export class RemoteWriter {
  readonly counters: RemoteWriteCounters = { samplesSent: 0, samplesDropped: 0, requestsFailed: 0, lastError: null };
  readonly #url: string;
  readonly #maxQueue: number;
  readonly #timeoutMs: number;
  readonly #log: Logger | undefined;
  readonly #timer: NodeJS.Timeout;
  /** Distinct routes seen per service, capped like /metrics' route label. */
  readonly #routes = new RouteLimiter();
  #queue: Pending[] = [];
  #inFlight: Promise<void> | null = null;
  #failing = false;

  constructor(opts: RemoteWriterOptions) {
    this.#url = opts.url;
    this.#maxQueue = opts.maxQueue ?? 50_000;
    this.#timeoutMs = opts.timeoutMs ?? 5000;
    this.#log = opts.log;
    this.#timer = setInterval(() => void this.flush(), opts.flushIntervalMs ?? 1000);
    this.#timer.unref();
  }

  /** Samples waiting for the next flush. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Queues the request's samples (all of them, or none if the queue has no room). */
  add(r: RequestRecord): void {
    if (this.#queue.length + REMOTE_WRITE_SERIES.length > this.#maxQueue) {
      this.counters.samplesDropped += REMOTE_WRITE_SERIES.length;
      return;
    }
    const timestampMs = Math.round(r.timestamp * 1000);
    if (!Number.isSafeInteger(timestampMs)) {
      this.counters.samplesDropped += REMOTE_WRITE_SERIES.length;
      return;
    }
    const labels = requestLabels(r, this.#routes.label(r.service_name, r.route));
    const labelKey = labels.map(([n, v]) => `${n}=${v}`).join('\u0000');
    for (const [name, read] of REMOTE_WRITE_SERIES) {
      this.#queue.push({
        key: `${name}\u0000${labelKey}`,
        labels: sortLabels([['__name__', name], ...labels]),
        value: read(r),
        timestampMs,
      });
    }
  }

  /**
   * Sends what is queued as one request, unless one is already in flight (then this waits for
   * that one and sends nothing: the next tick will). Never rejects.
   */
  flush(): Promise<void> {
    if (this.#inFlight) return this.#inFlight;
    if (this.#queue.length === 0) return Promise.resolve();
    const batch = this.#queue;
    this.#queue = [];
    this.#inFlight = this.#send(batch).finally(() => {
      this.#inFlight = null;
    });
    return this.#inFlight;
  }

  /** Stops the timer and flushes once (after any request already in flight). */
  async shutdown(): Promise<void> {
    clearInterval(this.#timer);
    if (this.#inFlight) await this.#inFlight;
    await this.flush();
  }

  async #send(batch: Pending[]): Promise<void> {
    try {
      const body = compress(encodeWriteRequest(groupSeries(batch)));
      const res = await fetch(this.#url, {
        method: 'POST',
        headers: {
          'Content-Encoding': 'snappy',
          'Content-Type': 'application/x-protobuf',
          'User-Agent': 'perfcatch',
          'X-Prometheus-Remote-Write-Version': '0.1.0',
        },
        body,
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      const text = await res.text().catch(() => '');
      if (!res.ok) throw new Error(`HTTP ${res.status}${text ? `: ${text.trim().slice(0, 200)}` : ''}`);
      this.counters.samplesSent += batch.length;
      if (this.#failing) this.#log?.info(`remote write to ${this.#url} recovered`);
      this.#failing = false;
    } catch (err) {
      const msg = err instanceof Error ? (err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message) : String(err);
      this.counters.requestsFailed += 1;
      this.counters.samplesDropped += batch.length;
      this.counters.lastError = msg;
      // Once per outage at warn level; the rest (one a tick) at debug.
      const line = `remote write to ${this.#url} failed, ${batch.length} samples dropped: ${msg}`;
      if (this.#failing) this.#log?.debug(line);
      else this.#log?.warn(line);
      this.#failing = true;
    }
  }
}

/**
 * Bounded labels only: service, process, namespace/pod (when known), port, method, status
 * class and route template (capped per service by the writer, as on /metrics). Never the
 * request id, trace id, raw path, peer address or correlation id: each would make a new series
 * per request and blow up the TSDB's index. Labels with an empty value are left out
 * (Prometheus treats empty as absent). Sorted by name.
 */
export function requestLabels(r: RequestRecord, route: string = r.route ?? 'none'): Label[] {
  const labels: Label[] = [
    ['service', r.service_name],
    ['process', r.process_name],
    ['port', String(r.local_port)],
    ['method', normaliseMethod(r.http_method)],
    ['status_class', statusClass(r.http_status)],
    ['route', route],
  ];
  if (r.namespace !== null) labels.push(['namespace', r.namespace]);
  if (r.pod_name !== null) labels.push(['pod', r.pod_name]);
  return sortLabels(labels.filter(([, v]) => v !== ''));
}

function normaliseMethod(method: string | null): string {
  const upper = method?.toUpperCase();
  return upper !== undefined && STANDARD_METHODS.has(upper) ? upper : 'OTHER';
}

function statusClass(status: number | null): string {
  return status !== null && status >= 100 && status <= 599 ? `${Math.floor(status / 100)}xx` : 'none';
}

function sortLabels(labels: Label[]): Label[] {
  // Label names are ASCII, so UTF-16 order is byte order, which remote write requires.
  return labels.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Groups samples by series, each series' samples in timestamp order (stable for ties). */
function groupSeries(batch: readonly Pending[]): TimeSeries[] {
  const bySeries = new Map<string, { labels: readonly Label[]; samples: { value: number; timestampMs: number }[] }>();
  for (const p of batch) {
    let s = bySeries.get(p.key);
    if (!s) bySeries.set(p.key, (s = { labels: p.labels, samples: [] }));
    s.samples.push({ value: p.value, timestampMs: p.timestampMs });
  }
  const out = [...bySeries.values()];
  for (const s of out) s.samples.sort((a, b) => a.timestampMs - b.timestampMs);
  return out;
}

// ---- protobuf -------------------------------------------------------------------------------
//
//   message WriteRequest { repeated TimeSeries timeseries = 1; }
//   message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//   message Label        { string name = 1; string value = 2; }
//   message Sample       { double value = 1; int64 timestamp = 2; }
//
// Every field is written, zero values included (a decoder accepts both). Lengths are computed
// first, so the message is written in one pass into one exactly sized buffer.

/** Bytes of a length-delimited field (tag, length, body) whose tag fits one byte. */
const lenField = (len: number) => 1 + varintSize(len) + len;

/** A WriteRequest with these series, ready to be Snappy-compressed. */
export function encodeWriteRequest(series: readonly TimeSeries[]): Buffer<ArrayBuffer> {
  // Pass 1: measure every label string and compute every message length.
  const sized = series.map((s) => {
    const labels = s.labels.map(([name, value]) => {
      const nameLen = utf8Length(name);
      const valueLen = utf8Length(value);
      return { name, value, nameLen, valueLen, len: lenField(nameLen) + lenField(valueLen) };
    });
    let len = 0;
    for (const l of labels) len += lenField(l.len);
    for (const p of s.samples) {
      if (!Number.isSafeInteger(p.timestampMs)) throw new RangeError(`sample timestamp ${p.timestampMs} is not an integer`);
      len += lenField(sampleLen(p.timestampMs));
    }
    return { labels, samples: s.samples, len };
  });
  let total = 0;
  for (const s of sized) total += lenField(s.len);

  // Pass 2: write, into a buffer of exactly that size.
  const w = new ProtobufWriter(total);
  for (const s of sized) {
    w.tag(1, WireType.LEN); // WriteRequest.timeseries
    w.varint(s.len);
    for (const l of s.labels) {
      w.tag(1, WireType.LEN); // TimeSeries.labels
      w.varint(l.len);
      w.tag(1, WireType.LEN); // Label.name
      w.varint(l.nameLen);
      w.utf8(l.name, l.nameLen);
      w.tag(2, WireType.LEN); // Label.value
      w.varint(l.valueLen);
      w.utf8(l.value, l.valueLen);
    }
    for (const p of s.samples) {
      w.tag(2, WireType.LEN); // TimeSeries.samples
      w.varint(sampleLen(p.timestampMs));
      w.tag(1, WireType.FIXED64); // Sample.value
      w.double(p.value);
      w.tag(2, WireType.VARINT); // Sample.timestamp
      w.int64(p.timestampMs);
    }
  }
  if (w.pos !== total) throw new Error(`remote write encoding: wrote ${w.pos} of ${total} bytes`);
  return w.view();
}

/** A Sample's body: the double's tag and 8 bytes, the timestamp's tag and varint. */
function sampleLen(timestampMs: number): number {
  return 1 + 8 + 1 + int64Size(timestampMs);
}
