/** What the API and the CLI read requests from: the in-memory ring buffer or SQLite. */
import type { RequestRecord } from '../types.ts';
import type { QueryBudget } from './query-budget.ts';
import type { RequestQuery } from './request-store.ts';
import type { ServiceSummary } from './service-summary.ts';

export interface RequestReader {
  /** Matching requests, newest start first. Throws QueryBudgetError once over `budget`. */
  query(q: RequestQuery, nowSeconds?: number, budget?: QueryBudget): RequestRecord[];
  findById(requestId: string): RequestRecord | null | undefined;
  /** Per-service summaries of the requests that started within `sinceMinutes`. */
  services(sinceMinutes: number, nowSeconds?: number, budget?: QueryBudget): ServiceSummary[];
}
