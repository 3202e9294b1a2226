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

/** 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>, lowercase. */
const LENGTH = 55;
const DASH = 0x2d;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

export function parseTraceParent(value: string | undefined): TraceParent | null {
  if (!value) return null;
  const v = value.trim();
  if (v.length !== LENGTH || !v.startsWith('00-') || v.charCodeAt(35) !== DASH || v.charCodeAt(52) !== DASH) return null;
  if (!isLowerHex(v, 3, 35) || !isLowerHex(v, 36, 52) || !isLowerHex(v, 53, 55)) return null;
  const traceId = v.slice(3, 35);
  const parentSpanId = v.slice(36, 52);
  if (traceId === ZERO_TRACE || parentSpanId === ZERO_SPAN) return null;
  return { traceId, parentSpanId, sampled: (hexDigitValue(v.charCodeAt(54)) & 1) === 1 };
}

function isLowerHex(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}

function hexDigitValue(c: number): number {
  return c <= 0x39 ? c - 0x30 : c - 0x61 + 10;
}
