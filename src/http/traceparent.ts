/**
 * W3C Trace Context `traceparent` parsing (https://www.w3.org/TR/trace-context/).
 * Only version 00 is accepted; anything else starts a new root trace.
 */

export interface TraceParent {
  traceId: string;
  parentSpanId: string;
  /** The sampled bit of trace-flags. */
  sampled: boolean;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

export function parseTraceParent(value: string | undefined): TraceParent | null {
  if (!value) return null;
  const m = TRACEPARENT.exec(value.trim());
  if (!m) return null;
  const [, traceId, parentSpanId, flags] = m as unknown as [string, string, string, string];
  if (traceId === ZERO_TRACE || parentSpanId === ZERO_SPAN) return null;
  return { traceId, parentSpanId, sampled: (parseInt(flags, 16) & 1) === 1 };
}
