/**
 * The API shares the agent's only thread with recording. One query is bounded by its
 * budget (src/store/query-budget.ts); many queries at once are bounded here: queries may use
 * at most a share of the thread over time, and past it new queries are refused (429) without
 * running, so recording always keeps the rest (issue 13, finding 2).
 */

export const API_LIMITS = {
  /** Share of the thread queries may use over time; recording keeps the rest. */
  queryShare: 0.5,
  /** Query time owed (already beyond the share) under which a new query may still start. */
  admitBelowMs: 50,
  maxUrlLength: 4_096,
  maxHeaderBytes: 8_192,
  maxRequestIdLength: 64,
  maxConnections: 64,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
} as const;

/**
 * A leaky bucket of query time: each query adds what it took, and the debt drains at
 * `queryShare` ms per ms. A new query starts only once the debt is nearly paid, so after a
 * 500 ms query the next waits 1 s, whatever the number of clients.
 */
export class ApiLoadGuard {
  #debtMs = 0;
  #at = performance.now();

  /** True when a query may run now. */
  admit(): boolean {
    this.#drain();
    return this.#debtMs < API_LIMITS.admitBelowMs;
  }

  /** A query took `ms` of the thread. */
  spent(ms: number): void {
    this.#drain();
    this.#debtMs += ms * (1 - API_LIMITS.queryShare) / API_LIMITS.queryShare;
  }

  #drain(): void {
    const now = performance.now();
    this.#debtMs = Math.max(0, this.#debtMs - (now - this.#at));
    this.#at = now;
  }
}
