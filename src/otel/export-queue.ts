/**
 * Encoded export requests waiting for the collector (issue 13, finding 9). With one export
 * at a time and no retry, a collector that hangs (each export waiting out its 10 s deadline)
 * passed about 100 spans/s and dropped the rest. Here requests wait in a queue bounded by
 * bytes, a few are in flight at once, and a failed request goes back to the head and is
 * retried after a growing pause, until it is older than `maxAgeMs`. Every item is counted
 * once: sent, failed (given up after retries), or dropped (the queue was full).
 */
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';

export interface ExportQueueOptions {
  /** Bytes of requests held (queued and in flight); past it the oldest queued go (dropped). */
  maxBytes: number;
  maxInFlight: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** A request failing for longer than this since it was queued is given up (failed). */
  maxAgeMs: number;
}

export const EXPORT_QUEUE_DEFAULTS: Readonly<ExportQueueOptions> = {
  // Measured (test/e2e/collector-hang.test.ts): a 60 s freeze at 2,000 spans/s queued 86 MB
  // of requests (about 670 bytes a span); the agent peaked at 240 MB, under the chart's 512 MiB.
  maxBytes: 128 * 1024 * 1024,
  maxInFlight: 4,
  initialBackoffMs: 500,
  maxBackoffMs: 30_000,
  maxAgeMs: 5 * 60_000,
};

export interface ExportQueueCounters {
  /** Items the endpoint accepted. */
  sent: number;
  /** Items given up after failing for maxAgeMs. */
  failed: number;
  /** Items dropped because the queue was full. */
  dropped: number;
  /** Failed attempts that were retried. */
  retries: number;
  /** Items queued or in flight. */
  queued: number;
  queuedBytes: number;
  inFlight: number;
}

/** One encoded request: its bytes and how many items (spans) it carries. */
export interface ExportRequest {
  bytes: Uint8Array;
  items: number;
}

interface Held extends ExportRequest {
  queuedAt: number;
}

export type SendRequest = (request: ExportRequest, done: (result: ExportResult) => void) => void;

export class ExportQueue {
  readonly #opts: ExportQueueOptions;
  readonly #send: SendRequest;
  readonly #now: () => number;
  #queue: Held[] = [];
  #backoffMs: number;
  /** No new attempt before this (epoch ms): set by a failure. */
  #resumeAt = 0;
  #timer: NodeJS.Timeout | null = null;
  /** Called with each failure's message (the caller decides how often to log). */
  onFailure: (message: string) => void = () => {};
  /** Called on the first success after failures. */
  onRecovered: () => void = () => {};
  /** Called once for each queued request that is done with (sent, given up or dropped):
   * nothing holds its bytes any more. */
  onReleased: (request: ExportRequest) => void = () => {};
  /** Epoch ms of the first failure since the last success, else null. */
  failingSince: number | null = null;
  readonly counters: ExportQueueCounters = { sent: 0, failed: 0, dropped: 0, retries: 0, queued: 0, queuedBytes: 0, inFlight: 0 };

  constructor(send: SendRequest, opts: Partial<ExportQueueOptions> = {}, now: () => number = Date.now) {
    this.#send = send;
    this.#opts = { ...EXPORT_QUEUE_DEFAULTS, ...opts };
    this.#backoffMs = this.#opts.initialBackoffMs;
    this.#now = now;
  }

  /** Queues a request and starts what may start. */
  enqueue(request: ExportRequest): void {
    const size = request.bytes.length;
    // Make room by dropping the oldest queued (not in flight): the newest are the most useful.
    while (this.#queue.length > 0 && this.counters.queuedBytes + size > this.#opts.maxBytes) {
      const oldest = this.#queue.shift()!;
      this.#release(oldest);
      this.counters.dropped += oldest.items;
    }
    if (this.counters.queuedBytes + size > this.#opts.maxBytes) {
      this.counters.dropped += request.items;
      return;
    }
    this.#queue.push({ ...request, queuedAt: this.#now() });
    this.counters.queued += request.items;
    this.counters.queuedBytes += size;
    this.pump();
  }

  /** Starts requests while fewer than maxInFlight run and no backoff holds them. */
  pump(): void {
    const now = this.#now();
    if (now < this.#resumeAt) return this.#wakeAt(this.#resumeAt);
    while (this.counters.inFlight < this.#opts.maxInFlight && this.#queue.length > 0) {
      const request = this.#queue.shift()!;
      this.counters.inFlight++;
      let settled = false;
      this.#send({ bytes: request.bytes, items: request.items }, (result) => {
        if (settled) return; // a transport that calls back twice must not count twice
        settled = true;
        this.counters.inFlight--;
        this.#settle(request, result);
      });
    }
  }

  /** Nothing queued or in flight. */
  get idle(): boolean {
    return this.#queue.length === 0 && this.counters.inFlight === 0;
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #settle(request: Held, result: ExportResult): void {
    const now = this.#now();
    if (result.code === ExportResultCode.SUCCESS) {
      this.#release(request);
      this.counters.sent += request.items;
      if (this.failingSince !== null) this.onRecovered();
      this.failingSince = null;
      this.#backoffMs = this.#opts.initialBackoffMs;
      this.#resumeAt = 0;
      this.pump();
      return;
    }
    this.failingSince ??= now;
    this.onFailure(result.error?.message ?? 'export failed');
    if (now - request.queuedAt >= this.#opts.maxAgeMs) {
      this.#release(request);
      this.counters.failed += request.items;
    } else {
      // Back to the head: order is kept as well as a few parallel requests allow.
      this.#queue.unshift(request);
      this.counters.retries++;
    }
    // One pause for the whole queue: a collector that is down gets no burst of retries.
    if (this.#resumeAt <= now) {
      this.#resumeAt = now + this.#backoffMs * (0.5 + Math.random() / 2);
      this.#backoffMs = Math.min(this.#backoffMs * 2, this.#opts.maxBackoffMs);
    }
    this.pump();
  }

  #release(request: Held): void {
    this.counters.queued -= request.items;
    this.counters.queuedBytes -= request.bytes.length;
    this.onReleased(request);
  }

  #wakeAt(at: number): void {
    if (this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.pump();
    }, Math.max(0, at - this.#now()));
    this.#timer.unref();
  }
}
