/**
 * With --db the API reads history from the database; while storage fails (a full or
 * read-only disk, I/O errors) the database misses what the ring buffer still holds, so the
 * API reads the ring buffer instead (issue 13, finding 6). A read that fails for any reason
 * but its budget is answered from the ring buffer too.
 */
import type { RequestRecord } from '../types.ts';
import { QueryBudgetError, type QueryBudget } from './query-budget.ts';
import type { Answer, RequestQuery, RequestReader } from './request-reader.ts';
import type { ServiceSummary } from './service-summary.ts';

export class FallbackReader implements RequestReader {
  readonly #primary: RequestReader;
  readonly #fallback: RequestReader;
  readonly #primaryHealthy: () => boolean;
  /** Reads answered from the fallback. */
  fallbackReads = 0;

  constructor(primary: RequestReader, fallback: RequestReader, primaryHealthy: () => boolean) {
    this.#primary = primary;
    this.#fallback = fallback;
    this.#primaryHealthy = primaryHealthy;
  }

  query(q: RequestQuery, nowSeconds?: number, budget?: QueryBudget): Answer<RequestRecord[]> {
    return this.#read((r) => r.query(q, nowSeconds, budget));
  }

  findById(requestId: string): Answer<RequestRecord | null> {
    return this.#read((r) => r.findById(requestId));
  }

  services(sinceMinutes: number, nowSeconds?: number, budget?: QueryBudget): Answer<ServiceSummary[]> {
    return this.#read((r) => r.services(sinceMinutes, nowSeconds, budget));
  }

  #read<T>(read: (r: RequestReader) => Answer<T>): Answer<T> {
    const fromFallback = () => {
      this.fallbackReads++;
      return read(this.#fallback);
    };
    if (!this.#primaryHealthy()) return fromFallback();
    let answer: Answer<T>;
    try {
      answer = read(this.#primary);
    } catch (e) {
      if (e instanceof QueryBudgetError) throw e;
      return fromFallback();
    }
    if (!(answer instanceof Promise)) return answer;
    return answer.catch((e: unknown) => {
      if (e instanceof QueryBudgetError) throw e;
      return fromFallback();
    });
  }
}
