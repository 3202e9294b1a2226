/**
 * What one API query may cost. Everything the API does runs on the agent's only thread, the
 * one that also drains the loader: a query that runs long stops recording. So each query gets
 * a deadline and a bound on the rows it may read, and a query over either is abandoned and
 * answered 422 (issue 13, finding 2), rather than finished late.
 */

/** Wall-clock time one query may run. */
export const QUERY_TIME_BUDGET_MS = 300;
/** Rows one query may read from the database (each is parsed, or summed: this bounds memory too). */
export const QUERY_ROW_BUDGET = 200_000;
/** Records between two looks at the clock: a record costs well under a microsecond to filter. */
const CLOCK_EVERY = 512;

export class QueryBudgetError extends Error {
  override name = 'QueryBudgetError';
  /** 422: this query is too costly as asked; 429: too many queries under way, retry later. */
  readonly status: 422 | 429;

  constructor(message: string, status: 422 | 429 = 422) {
    super(message);
    this.status = status;
  }
}

export class QueryBudget {
  readonly #deadline: number;
  readonly #maxRows: number;
  #rows = 0;
  #ticks = 0;
  #exceeded: QueryBudgetError | null = null;

  constructor(timeMs: number = QUERY_TIME_BUDGET_MS, maxRows: number = QUERY_ROW_BUDGET) {
    this.#deadline = performance.now() + timeMs;
    this.#maxRows = maxRows;
  }

  /** One in-memory record looked at; throws QueryBudgetError once over time. */
  tick(): void {
    if (++this.#ticks % CLOCK_EVERY === 0) this.checkTime();
  }

  /** One database row read (and parsed): counts against the row budget too. */
  rowRead(): void {
    if (++this.#rows > this.#maxRows) {
      this.#fail(`query read more than ${this.#maxRows} rows; narrow it (since, process, status, path)`);
    }
    this.tick();
  }

  /** The error this budget threw, if it did (SQLite wraps errors thrown inside a scan). */
  get exceeded(): QueryBudgetError | null {
    return this.#exceeded;
  }

  #fail(message: string): never {
    this.#exceeded = new QueryBudgetError(message);
    throw this.#exceeded;
  }

  checkTime(): void {
    if (performance.now() > this.#deadline) {
      this.#fail('query ran over its time budget; narrow it (since, process, status, path) or simplify the pattern');
    }
  }

  get rowsRead(): number {
    return this.#rows;
  }
}

/** No budget: for the CLI reading its own database, where no one else waits. */
export function unboundedBudget(): QueryBudget {
  return new QueryBudget(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);
}
