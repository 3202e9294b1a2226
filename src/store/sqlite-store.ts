/**
 * Optional on-disk history of requests (`--db PATH`): the same queries as the in-memory ring
 * buffer, over days instead of minutes.
 *
 * Writes never block the pipeline on disk: add() queues in memory and a timer writes the
 * queue in one transaction. Retention keeps the database within an age and a size. Disk
 * failures (full, read-only, I/O errors) are counted and logged, never thrown: the agent
 * keeps running on its in-memory buffer.
 *
 * Opening the file and its permissions are in sqlite-open.ts, the schema in sqlite-schema.ts,
 * the one-line error descriptions in sqlite-errors.ts.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { Logger } from '../log.ts';
import type { RequestRecord } from '../types.ts';
import { QueryBudget } from './query-budget.ts';
import { DEFAULT_LIMIT, DEFAULT_SINCE_MINUTES, type RequestQuery, type RequestReader } from './request-reader.ts';
import { ServiceSummaryBuilder, type ServiceSummary, type SummaryInput } from './service-summary.ts';
import { describeSqliteError, failOpen, oneLine } from './sqlite-errors.ts';
import { openDatabase } from './sqlite-open.ts';
import { COLUMNS, VALUES } from './sqlite-schema.ts';

/** Records waiting for the next flush, at most; beyond that add() drops and counts. */
export const MAX_QUEUED = 20_000;
export const DEFAULT_FLUSH_INTERVAL_MS = 250;
export const RETENTION_INTERVAL_MS = 60_000;
/** Size retention deletes down to this share of the limit, so it does not run on every flush. */
const SIZE_TARGET = 0.9;
/** Distinct error messages logged, at most (then they are only counted). */
const MAX_LOGGED_ERRORS = 100;

export interface SqliteStoreOptions {
  path: string;
  /** Rows whose request started longer ago than this are deleted. */
  retentionHours: number;
  /** The database (page_count * page_size) is kept within this by deleting the oldest rows. */
  maxSizeMb: number;
  flushIntervalMs?: number;
  /** For the CLI: query only, no writes, no timers. */
  readOnly?: boolean;
  log?: Logger;
}

export interface SqliteStoreHealth {
  /** The last write (flush or retention) succeeded. */
  ok: boolean;
  path: string;
  rows: number;
  sizeBytes: number;
  queued: number;
  /** Failed flushes and retention passes. */
  writeErrors: number;
  /** Records lost: in failed flushes, or added while the queue was full. */
  droppedRecords: number;
  lastError: string | null;
}

interface Queued {
  record: RequestRecord;
  /** Update in place (keeping its position among equal timestamps) rather than add anew. */
  upsert: boolean;
}

interface Statements {
  insert: StatementSync;
  upsert: StatementSync;
  byId: StatementSync;
  exists: StatementSync;
  since: StatementSync;
  summaryInputs: StatementSync;
  deleteOlder: StatementSync;
  deleteOldest: StatementSync;
  count: StatementSync;
}

/**
 * The name of the SQL function that charges each row a query reads to its budget. SQLite
 * runs a whole scan inside one step, where JavaScript cannot look at the clock: a function
 * in the WHERE clause is called for every row the scan visits, and its throw ends the scan.
 */
const BUDGET_FUNCTION = 'perfcatch_budget';

export class SqliteStore implements RequestReader {
  readonly path: string;
  readonly readOnly: boolean;
  readonly #db: DatabaseSync;
  readonly #st: Statements;
  readonly #retentionSeconds: number;
  readonly #maxBytes: number;
  readonly #flushIntervalMs: number;
  readonly #log: Logger | undefined;
  #queue: Queued[] = [];
  #flushTimer: NodeJS.Timeout | null = null;
  #retentionTimer: NodeJS.Timeout | null = null;
  #closed = false;
  #lastWriteOk = true;
  #writeErrors = 0;
  #droppedRecords = 0;
  #queueOverflowed = false;
  #lastError: string | null = null;
  readonly #loggedErrors = new Set<string>();
  /** Rows in the table: counted once at open, then kept by every insert and delete, so /health never scans. */
  #rows = 0;
  /** The budget the running query charges its rows to (queries run one at a time). */
  #budget: QueryBudget | null = null;
  readonly #queries = new Map<string, StatementSync>();

  private constructor(db: DatabaseSync, opts: SqliteStoreOptions) {
    this.#db = db;
    this.path = opts.path;
    this.readOnly = opts.readOnly ?? false;
    this.#retentionSeconds = opts.retentionHours * 3600;
    this.#maxBytes = opts.maxSizeMb * 1024 * 1024;
    this.#flushIntervalMs = opts.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS;
    this.#log = opts.log;
    // Not deterministic: SQLite must call it for every row, never fold it into a constant.
    db.function(BUDGET_FUNCTION, { deterministic: false, directOnly: true }, () => {
      this.#budget?.rowRead();
      return 1;
    });
    this.#st = {
      insert: db.prepare(`INSERT OR REPLACE INTO requests (${COLUMNS}) VALUES (${VALUES})`),
      upsert: db.prepare(
        `INSERT INTO requests (${COLUMNS}) VALUES (${VALUES}) ON CONFLICT (request_id) DO UPDATE SET
          timestamp = excluded.timestamp, service_name = excluded.service_name,
          process_name = excluded.process_name, namespace = excluded.namespace,
          pod_name = excluded.pod_name, correlation_id = excluded.correlation_id,
          http_method = excluded.http_method, http_path = excluded.http_path,
          http_status = excluded.http_status, duration_ms = excluded.duration_ms,
          record = excluded.record`,
      ),
      byId: db.prepare('SELECT record FROM requests WHERE request_id = ?'),
      exists: db.prepare('SELECT 1 AS found FROM requests WHERE request_id = ?'),
      since: db.prepare(`SELECT record FROM requests WHERE timestamp >= ? AND ${BUDGET_FUNCTION}() ORDER BY timestamp DESC, seq DESC`),
      // Numbers only (the JSON record is not parsed in JavaScript), streamed into the summary.
      summaryInputs: db.prepare(
        `SELECT service_name, process_name, http_status, duration_ms,
           json_extract(record, '$.cpu_time_ms') AS cpu_time_ms,
           json_extract(record, '$.bytes_received') AS bytes_received,
           json_extract(record, '$.bytes_sent') AS bytes_sent, timestamp
         FROM requests WHERE timestamp >= ? AND ${BUDGET_FUNCTION}()`,
      ),
      deleteOlder: db.prepare('DELETE FROM requests WHERE timestamp < ?'),
      deleteOldest: db.prepare(
        'DELETE FROM requests WHERE seq IN (SELECT seq FROM requests ORDER BY timestamp, seq LIMIT ?)',
      ),
      count: db.prepare('SELECT COUNT(*) AS n FROM requests'),
    };
  }

  /** Opens (creating if needed) the database; throws StoreError with one line on failure. */
  static open(opts: SqliteStoreOptions): SqliteStore {
    const fail = (reason: string): never => failOpen(opts.path, reason);
    if (!(opts.retentionHours > 0)) fail(`retention must be a positive number of hours, got ${opts.retentionHours}`);
    if (!(opts.maxSizeMb > 0)) fail(`maximum size must be a positive number of MB, got ${opts.maxSizeMb}`);
    const flushMs = opts.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS;
    if (!(flushMs > 0)) fail(`flush interval must be a positive number of ms, got ${flushMs}`);
    const readOnly = opts.readOnly ?? false;
    const store = openDatabase(opts.path, readOnly, (db) => {
      const opened = new SqliteStore(db, { ...opts, readOnly });
      // The one full count, at open (the CLI's read-only handle never needs it).
      if (!readOnly) opened.#rows = opened.#countAll();
      return opened;
    });
    if (!readOnly) {
      store.retain();
      store.#retentionTimer = setInterval(() => store.retain(), RETENTION_INTERVAL_MS);
      store.#retentionTimer.unref();
    }
    return store;
  }

  /** Queues a new record (replacing any stored one with the same request_id); never blocks. */
  add(r: RequestRecord): void {
    this.#enqueue(r, false);
  }

  /** Queues a changed record (late dependency, updated numbers): replaces it by request_id. */
  upsert(r: RequestRecord): void {
    this.#enqueue(r, true);
  }

  #enqueue(record: RequestRecord, upsert: boolean): void {
    if (this.#closed || this.readOnly) {
      this.#droppedRecords++;
      return;
    }
    if (this.#queue.length >= MAX_QUEUED) {
      this.#droppedRecords++;
      if (!this.#queueOverflowed) {
        this.#queueOverflowed = true;
        this.#log?.warn(`database ${this.path}: write queue full (${MAX_QUEUED} records), dropping records`);
      }
      return;
    }
    this.#queue.push({ record, upsert });
    if (this.#flushTimer === null) {
      this.#flushTimer = setTimeout(() => {
        this.#flushTimer = null;
        this.flush();
      }, this.#flushIntervalMs);
      this.#flushTimer.unref();
    }
  }

  /** Writes the queue now, in one transaction. A failed batch is dropped and counted. */
  flush(): void {
    if (this.#flushTimer !== null) {
      clearTimeout(this.#flushTimer);
      this.#flushTimer = null;
    }
    if (this.#closed || this.#queue.length === 0) return;
    const batch = this.#queue;
    this.#queue = [];
    this.#queueOverflowed = false;
    let added = 0;
    try {
      this.#db.exec('BEGIN');
      for (const { record: r, upsert } of batch) {
        // An index lookup (microseconds) keeps the row count exact without COUNT(*).
        if (this.#st.exists.get(r.request_id) === undefined) added++;
        (upsert ? this.#st.upsert : this.#st.insert).run(
          r.request_id,
          r.timestamp,
          r.service_name,
          r.process_name,
          r.namespace,
          r.pod_name,
          r.correlation_id,
          r.http_method === null ? null : r.http_method.toUpperCase(),
          r.http_path,
          r.http_status,
          r.duration_ms,
          JSON.stringify(r),
        );
      }
      this.#db.exec('COMMIT');
      this.#rows += added;
    } catch (e) {
      this.#rollback();
      this.#droppedRecords += batch.length;
      this.#writeFailed(e, `write of ${batch.length} records`);
      return;
    }
    this.#writeSucceeded();
    // Between retention passes, keep to the size limit as it is reached.
    let over = false;
    try {
      over = this.#sizeBytes() > this.#maxBytes;
    } catch (e) {
      this.#noteError(e, 'size check');
    }
    if (over) this.retain();
  }

  /**
   * Deletes rows older than the retention, then the oldest rows while the database is over
   * its size limit, and gives the freed pages back to the file system. Runs at open and
   * every minute; public for tests.
   */
  retain(nowSeconds: number = Date.now() / 1000): void {
    if (this.#closed || this.readOnly) return;
    let deleted = 0;
    try {
      deleted += Number(this.#st.deleteOlder.run(nowSeconds - this.#retentionSeconds).changes);
      this.#db.exec('PRAGMA incremental_vacuum');
      const target = this.#maxBytes * SIZE_TARGET;
      for (let pass = 0; pass < 100 && this.#sizeBytes() > this.#maxBytes; pass++) {
        const rows = this.#countRows();
        if (rows === 0) break;
        const size = this.#sizeBytes();
        // Rows are about the same size: delete the share of them that is over the target.
        const n = Math.min(rows, Math.max(1, Math.ceil((rows * (size - target)) / size)));
        deleted += Number(this.#st.deleteOldest.run(n).changes);
        this.#db.exec('PRAGMA incremental_vacuum');
      }
      // Copy the WAL into the file (passive: never waits for a reader) so it really shrinks.
      if (deleted > 0) this.#db.exec('PRAGMA wal_checkpoint(PASSIVE)');
    } catch (e) {
      this.#rollback();
      this.#writeFailed(e, 'retention');
      // Statements outside a transaction commit one by one: a failure mid-way may have
      // deleted rows this count did not see. Count again (rare: only after a failure).
      this.#rows = this.#countAll();
      return;
    } finally {
      this.#rows = Math.max(0, this.#rows - deleted);
    }
  }

  /** Matching requests, newest start first: the ring buffer's semantics. */
  query(q: RequestQuery, nowSeconds: number = Date.now() / 1000, budget: QueryBudget = new QueryBudget()): RequestRecord[] {
    this.flush();
    const limit = Math.max(0, Math.min(Number.MAX_SAFE_INTEGER, Math.floor(q.limit ?? DEFAULT_LIMIT)));
    if (limit === 0) return [];
    // The budget function comes right after the index range, so it sees every row scanned.
    const where = ['timestamp >= ?', `${BUDGET_FUNCTION}()`];
    const params: (string | number)[] = [nowSeconds - (q.since_minutes ?? DEFAULT_SINCE_MINUTES) * 60];
    if (q.process !== undefined) {
      where.push('(process_name = ? OR service_name = ?)');
      params.push(q.process, q.process);
    }
    const equal = (column: string, value: string | number | undefined) => {
      if (value === undefined) return;
      where.push(`${column} = ?`);
      params.push(value);
    };
    equal('namespace', q.namespace);
    equal('pod_name', q.pod);
    equal('correlation_id', q.correlation_id);
    equal('http_method', q.method?.toUpperCase());
    equal('http_path', q.path);
    equal('http_status', q.status);
    // HTTP/2 fields live in the record's JSON (no column: the schema is unchanged).
    equal("json_extract(record, '$.protocol')", q.protocol);
    equal("json_extract(record, '$.grpc_status')", q.grpc_status);
    if (q.min_duration_ms !== undefined) {
      where.push('duration_ms >= ?');
      params.push(q.min_duration_ms);
    }
    const regex = q.correlation_id_regex;
    if (regex !== undefined) where.push('correlation_id IS NOT NULL');
    const sql = `SELECT correlation_id, record FROM requests WHERE ${where.join(' AND ')} ORDER BY timestamp DESC, seq DESC`;
    return this.#withBudget(budget, () => {
      if (regex === undefined) return this.#prepared(`${sql} LIMIT ?`).all(...params, limit).map(parseRow);
      // The regex is applied here, so stop reading once enough rows matched.
      const out: RequestRecord[] = [];
      eachRow(this.#prepared(sql), params, (row) => {
        if (!regex.test(String(row['correlation_id']))) return true;
        out.push(parseRow(row));
        return out.length < limit;
      });
      return out;
    });
  }

  findById(requestId: string): RequestRecord | null {
    this.flush();
    const row = this.#st.byId.get(requestId);
    return row === undefined ? null : parseRow(row);
  }

  /** Every request that started within `sinceMinutes`, newest first, within `budget`. */
  records(sinceMinutes: number, nowSeconds: number = Date.now() / 1000, budget: QueryBudget = new QueryBudget()): RequestRecord[] {
    this.flush();
    return this.#withBudget(budget, () => this.#st.since.all(nowSeconds - sinceMinutes * 60).map(parseRow));
  }

  /** Per-service summaries, streamed from SQL columns: memory is two numbers per request. */
  services(sinceMinutes: number, nowSeconds: number = Date.now() / 1000, budget: QueryBudget = new QueryBudget()): ServiceSummary[] {
    this.flush();
    return this.#withBudget(budget, () => {
      const builder = new ServiceSummaryBuilder();
      eachRow(this.#st.summaryInputs, [nowSeconds - sinceMinutes * 60], (row) => {
        builder.add(row as unknown as SummaryInput);
        return true;
      });
      return builder.summaries();
    });
  }

  /** Cheap: no scan (the row count is kept, the size is two pragmas). */
  health(): SqliteStoreHealth {
    const rows = this.#rows;
    let sizeBytes = 0;
    if (!this.#closed) {
      try {
        sizeBytes = this.#sizeBytes();
      } catch (e) {
        this.#noteError(e, 'health');
      }
    }
    return {
      ok: this.#lastWriteOk,
      path: this.path,
      rows,
      sizeBytes,
      queued: this.#queue.length,
      writeErrors: this.#writeErrors,
      droppedRecords: this.#droppedRecords,
      lastError: this.#lastError,
    };
  }

  get writeErrors(): number {
    return this.#writeErrors;
  }

  get droppedRecords(): number {
    return this.#droppedRecords;
  }

  get lastError(): string | null {
    return this.#lastError;
  }

  /** Flushes the queue, stops the timers and closes the database. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.flush();
    if (this.#retentionTimer !== null) clearInterval(this.#retentionTimer);
    this.#retentionTimer = null;
    this.#closed = true;
    try {
      this.#db.close();
    } catch (e) {
      this.#noteError(e, 'close');
    }
  }

  /** Query statements by SQL text (one per combination of filters). */
  #prepared(sql: string): StatementSync {
    let st = this.#queries.get(sql);
    if (st === undefined) {
      st = this.#db.prepare(sql);
      this.#queries.set(sql, st);
    }
    return st;
  }

  #countRows(): number {
    return this.#rows;
  }

  #countAll(): number {
    try {
      return Number(this.#st.count.get()!['n']);
    } catch {
      return this.#rows;
    }
  }

  /** Runs `read` with every row its statements visit charged to `budget`. */
  #withBudget<T>(budget: QueryBudget, read: () => T): T {
    this.#budget = budget;
    try {
      return read();
    } catch (e) {
      // SQLite wraps the function's throw: hand back the budget's own error.
      const over = budget.exceeded;
      if (over !== null) throw over;
      throw e;
    } finally {
      this.#budget = null;
    }
  }

  /** The database's size: page_count * page_size (freed pages are given back by retention). */
  #sizeBytes(): number {
    const pages = Number(this.#prepared('PRAGMA page_count').get()!['page_count']);
    const pageSize = Number(this.#prepared('PRAGMA page_size').get()!['page_size']);
    return pages * pageSize;
  }

  #rollback(): void {
    try {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
    } catch {
      // SQLite may have rolled back already (SQLITE_FULL, I/O errors)
    }
  }

  #writeFailed(e: unknown, what: string): void {
    this.#writeErrors++;
    this.#lastWriteOk = false;
    this.#noteError(e, what);
  }

  #writeSucceeded(): void {
    if (!this.#lastWriteOk) this.#log?.info(`database ${this.path}: writes succeed again`);
    this.#lastWriteOk = true;
  }

  #noteError(e: unknown, what: string): void {
    const reason = oneLine(describeSqliteError(e));
    this.#lastError = `${what}: ${reason}`;
    if (this.#loggedErrors.has(reason) || this.#loggedErrors.size >= MAX_LOGGED_ERRORS) return;
    this.#loggedErrors.add(reason);
    this.#log?.error(`database ${this.path}: ${what} failed: ${reason} (further occurrences are only counted)`);
  }
}

/**
 * Streams a statement's rows to `each` until it returns false. The iterator is always closed,
 * which resets the statement: one left mid-scan by a throw (the budget's) fails its next run.
 */
function eachRow(st: StatementSync, params: (string | number)[], each: (row: Record<string, unknown>) => boolean): void {
  const rows = st.iterate(...params);
  try {
    for (let next = rows.next(); !next.done; next = rows.next()) if (!each(next.value as Record<string, unknown>)) break;
  } finally {
    rows.return?.();
  }
}

function parseRow(row: Record<string, unknown>): RequestRecord {
  return JSON.parse(String(row['record'])) as RequestRecord;
}
