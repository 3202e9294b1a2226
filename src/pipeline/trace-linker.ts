/**
 * Links traces without instrumentation: when caller and callee both run on this host, the
 * kernel tells the callee's request which client connection called it (pc_request.
 * peer_conn_id); request N on the callee's connection answers exchange N on the caller's.
 * The callee's SERVER span then becomes a child of the caller's CLIENT span. Records and
 * exchanges reach userspace in either order, so a callee may wait here for its caller, at
 * most `timeoutMs`, after which it goes out unlinked (counted). A traceparent always wins.
 */
import { BoundedMap } from '../util/bounded-map.ts';
import type { BuiltRequest } from './request-builder.ts';

interface SpanIds {
  traceId: string;
  spanId: string;
}

const MAX_CLIENT_SPANS = 65536;

export class TraceLinker {
  private readonly clientSpans = new BoundedMap<string, SpanIds>(MAX_CLIENT_SPANS);
  private readonly waiting = new Map<string, { built: BuiltRequest; timer: NodeJS.Timeout }>();
  private readonly release: (b: BuiltRequest) => void;
  private readonly timeoutMs: number;
  linksMade = 0;
  linksTimedOut = 0;

  constructor(release: (b: BuiltRequest) => void, timeoutMs = 5_000) {
    this.release = release;
    this.timeoutMs = timeoutMs;
  }

  /** A request is ready: release it now, linked if its caller is known, or wait for the caller. */
  offer(b: BuiltRequest): void {
    const key = b.callerExchangeKey;
    if (!key || b.traceParent) return this.release(b);
    const caller = this.clientSpans.get(key);
    if (caller) {
      this.link(b, caller);
      return this.release(b);
    }
    const timer = setTimeout(() => {
      this.waiting.delete(key);
      this.linksTimedOut++;
      this.release(b);
    }, this.timeoutMs);
    timer.unref();
    this.waiting.set(key, { built: b, timer });
  }

  /** A CLIENT span got its ids: remember them, and release a callee waiting for them. */
  clientSpanReady(exchangeKey: string, ids: SpanIds): void {
    this.clientSpans.set(exchangeKey, ids);
    const w = this.waiting.get(exchangeKey);
    if (!w) return;
    this.waiting.delete(exchangeKey);
    clearTimeout(w.timer);
    this.link(w.built, ids);
    this.release(w.built);
  }

  /** Releases everything still waiting (shutdown). */
  flush(): void {
    for (const [key, w] of this.waiting) {
      clearTimeout(w.timer);
      this.waiting.delete(key);
      this.release(w.built);
    }
  }

  private link(b: BuiltRequest, caller: SpanIds): void {
    b.record.trace_id = caller.traceId;
    b.record.parent_span_id = caller.spanId;
    this.linksMade++;
  }
}
