/** What the API and the CLI read requests from: the in-memory ring buffer or SQLite. */
import type { RequestRecord } from '../types.ts';
import type { QueryBudget } from './query-budget.ts';
import type { RequestQuery } from './request-store.ts';
import type { ServiceSummary } from './service-summary.ts';

/** A reader answers at once (in memory) or later (the database, read off the agent's thread). */
type Answer<T> = T | Promise<T>;

export interface RequestReader {
  /**
   * Matching requests, newest start first. Throws (or rejects with) QueryBudgetError once
   * over `budget`; a reader off the agent's thread applies its own, larger budget instead.
   */
  query(q: RequestQuery, nowSeconds?: number, budget?: QueryBudget): Answer<RequestRecord[]>;
  findById(requestId: string): Answer<RequestRecord | null | undefined>;
  /** Per-service summaries of the requests that started within `sinceMinutes`. */
  services(sinceMinutes: number, nowSeconds?: number, budget?: QueryBudget): Answer<ServiceSummary[]>;
}
