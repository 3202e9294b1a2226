/**
 * /health's status: `capture_down` (503) when no loader runs, `degraded` (200, with reasons)
 * when capture runs but part of what the agent promises does not (issue 13, finding 6), else
 * `ok`. Each reason is one line a user can act on.
 */

/** Export failing for longer than this degrades the agent (a short blip does not). */
export const EXPORT_FAILING_DEGRADES_AFTER_MS = 60_000;
/** A loader restart keeps the agent degraded this long (its in-flight requests were lost). */
export const LOADER_RESTART_DEGRADES_FOR_MS = 5 * 60_000;
/** Records lost to a full connection table keep the agent degraded this long after the last. */
export const CONN_TABLE_FULL_DEGRADES_FOR_MS = 5 * 60_000;

export interface HealthInputs {
  captureUp: boolean;
  nowMs: number;
  /** --db: null when off. */
  storage: { ok: boolean; lastError: string | null } | null;
  /** Since when span export has failed without a success in between; null when it is not failing (or off). */
  exportFailingSinceMs: number | null;
  lastLoaderRestartMs: number | null;
  loaderRestarts: number;
  /** Records lost because the kernel's connection table was full (--conn-table-size). */
  connTableFull: { lost: number; lastLossMs: number | null; size: number };
  /** --namespace/--pods hold the kernel filter to the pods the API server told us of. */
  podFilter: { connected: boolean; synced: boolean; lastError: string | null } | null;
}

export type HealthStatus = 'ok' | 'degraded' | 'capture_down';

export function degradedReasons(h: HealthInputs): string[] {
  const reasons: string[] = [];
  if (h.storage && !h.storage.ok) {
    reasons.push(`storage failing (${h.storage.lastError ?? 'write failed'}): the API reads the in-memory buffer`);
  }
  if (h.exportFailingSinceMs !== null && h.nowMs - h.exportFailingSinceMs > EXPORT_FAILING_DEGRADES_AFTER_MS) {
    reasons.push(`span export failing for ${Math.round((h.nowMs - h.exportFailingSinceMs) / 1000)} s`);
  }
  if (h.lastLoaderRestartMs !== null && h.nowMs - h.lastLoaderRestartMs < LOADER_RESTART_DEGRADES_FOR_MS) {
    reasons.push(`loader restarted (${h.loaderRestarts} in all, the last ${Math.round((h.nowMs - h.lastLoaderRestartMs) / 1000)} s ago)`);
  }
  const full = h.connTableFull;
  if (full.lastLossMs !== null && h.nowMs - full.lastLossMs < CONN_TABLE_FULL_DEGRADES_FOR_MS) {
    reasons.push(
      `connection table full (${full.size} connections, --conn-table-size): ${full.lost} records lost in all, ` +
        `the last ${Math.round((h.nowMs - full.lastLossMs) / 1000)} s ago`,
    );
  }
  if (h.podFilter && !h.podFilter.connected) {
    const kept = h.podFilter.synced ? 'keeps the last known pods' : 'stays closed (no pod is captured)';
    reasons.push(`Kubernetes API unreachable (${h.podFilter.lastError ?? 'no answer'}): the --namespace/--pods kernel filter ${kept}`);
  }
  return reasons;
}

export function healthStatus(captureUp: boolean, reasons: readonly string[]): HealthStatus {
  return !captureUp ? 'capture_down' : reasons.length > 0 ? 'degraded' : 'ok';
}
