/**
 * Correlation ID extraction: the first non-empty value among the configured headers, custom
 * ones first, then the built-ins. Header names are matched case-insensitively (the parser
 * lowercases them).
 */
import { parseTraceParent, type TraceParent } from './traceparent.ts';

export const BUILTIN_CORRELATION_HEADERS = [
  'x-correlation-id',
  'x-request-id',
  'x-trace-id',
  'traceparent',
  'x-amzn-trace-id',
  'request-id',
  'correlation-id',
] as const;

/** Longer values are cut: they end up in labels, spans and storage. */
const MAX_CORRELATION_ID = 256;

export class CorrelationExtractor {
  /** The headers checked, in order: what the request head parser must read. */
  readonly headerNames: readonly string[];

  constructor(customHeaders: readonly string[]) {
    const custom = customHeaders.map((h) => h.trim().toLowerCase()).filter((h) => h.length > 0);
    this.headerNames = [...new Set([...custom, ...BUILTIN_CORRELATION_HEADERS])];
  }

  /** `traceParent`: the traceparent header already parsed, when the caller has done it. */
  extract(headers: ReadonlyMap<string, string>, traceParent?: TraceParent | null): string | null {
    if (headers.size === 0) return null;
    for (const name of this.headerNames) {
      const raw = headers.get(name);
      if (!raw) continue;
      // For traceparent the trace id is what correlates requests across services.
      const value = name === 'traceparent' ? (traceParent === undefined ? parseTraceParent(raw) : traceParent)?.traceId : raw.trim();
      if (value) return value.slice(0, MAX_CORRELATION_ID);
    }
    return null;
  }
}
