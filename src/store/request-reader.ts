/** What the API and the CLI read requests from: the in-memory ring buffer or SQLite. */
import type { RequestRecord } from '../types.ts';
import type { QueryBudget } from './query-budget.ts';
import type { ServiceSummary } from './service-summary.ts';

export const DEFAULT_SINCE_MINUTES = 5;
export const DEFAULT_LIMIT = 50;

export interface RequestQuery {
  /** Matches process_name or service_name exactly. */
  process?: string;
  namespace?: string;
  pod?: string;
  correlation_id?: string;
  /** Matched against correlation_id (compiled for the linear-time engine: src/api/linear-regex.ts). */
  correlation_id_regex?: RegExp;
  /** Case-insensitive. */
  method?: string;
  /** Exact match against http_path. */
  path?: string;
  status?: number;
  /** `http/1.0`, `http/1.1` or `h2` (RequestRecord.protocol). */
  protocol?: string;
  /** gRPC status code (RequestRecord.grpc_status). */
  grpc_status?: number;
  min_duration_ms?: number;
  /** Only requests whose timestamp is within this many minutes of now. */
  since_minutes?: number;
  /** At most this many results, newest first. */
  limit?: number;
}

/** A reader answers at once (in memory) or later (the database, read off the agent's thread). */
export type Answer<T> = T | Promise<T>;

export interface RequestReader {
  /**
   * Matching requests, newest start first. Throws (or rejects with) QueryBudgetError once
   * over `budget`; a reader off the agent's thread applies its own, larger budget instead.
   */
  query(q: RequestQuery, nowSeconds?: number, budget?: QueryBudget): Answer<RequestRecord[]>;
  /** The request, or null when no stored request has this id. */
  findById(requestId: string): Answer<RequestRecord | null>;
  /** Per-service summaries of the requests that started within `sinceMinutes`. */
  services(sinceMinutes: number, nowSeconds?: number, budget?: QueryBudget): Answer<ServiceSummary[]>;
}
