/**
 * A request's or an exchange's duration in the records' unit (ms), from its kernel timestamps.
 * An end before the start (a record cut short) is 0, never a negative duration.
 */
export function durationMs(startNs: bigint, endNs: bigint): number {
  return Number(endNs > startNs ? endNs - startNs : 0n) / 1e6;
}
