/** What the API and the CLI read requests from: the in-memory ring buffer or SQLite. */
import type { RequestRecord } from '../types.ts';
import type { RequestQuery } from './request-store.ts';

export interface RequestReader {
  /** Matching requests, newest start first. */
  query(q: RequestQuery, nowSeconds?: number): RequestRecord[];
  findById(requestId: string): RequestRecord | null | undefined;
  /** Every request that started within `sinceMinutes`. */
  records(sinceMinutes: number, nowSeconds?: number): RequestRecord[];
}
