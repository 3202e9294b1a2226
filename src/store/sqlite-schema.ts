/**
 * The on-disk store's schema: the requests table and its indexes, the pragmas a database
 * opened for writing gets, and the version check that refuses foreign or newer files.
 */
import type { DatabaseSync } from 'node:sqlite';
import { StoreError } from './sqlite-errors.ts';

/** Schema version kept in `PRAGMA user_version`. */
export const SCHEMA_VERSION = 1;
/** The WAL file is truncated back to this after a checkpoint. */
const JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024;

const SCHEMA = `
CREATE TABLE requests (
  seq            INTEGER PRIMARY KEY,  -- insertion order, breaks timestamp ties like the ring buffer
  request_id     TEXT NOT NULL UNIQUE,
  timestamp      REAL NOT NULL,        -- epoch seconds at the request's start
  service_name   TEXT NOT NULL,
  process_name   TEXT NOT NULL,
  namespace      TEXT,
  pod_name       TEXT,
  correlation_id TEXT,
  http_method    TEXT,                 -- upper-cased, for the case-insensitive filter
  http_path      TEXT,
  http_status    INTEGER,
  duration_ms    REAL NOT NULL,
  record         TEXT NOT NULL         -- the whole RequestRecord as JSON, dependencies included
);
CREATE INDEX requests_timestamp   ON requests (timestamp, seq);
CREATE INDEX requests_service     ON requests (service_name, timestamp);
CREATE INDEX requests_process     ON requests (process_name, timestamp);
CREATE INDEX requests_correlation ON requests (correlation_id) WHERE correlation_id IS NOT NULL;
CREATE INDEX requests_status      ON requests (http_status, timestamp);
`;

/** The columns a write fills, in the order of its `?` placeholders. */
export const COLUMNS = `request_id, timestamp, service_name, process_name, namespace, pod_name, correlation_id,
  http_method, http_path, http_status, duration_ms, record`;
export const VALUES = '?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?';

/** Creates or checks the schema of a database opened for writing. */
export function initialize(db: DatabaseSync): void {
  const version = checkSchema(db, false);
  if (version === 0) {
    // auto_vacuum must be chosen before the first table exists.
    db.exec('PRAGMA auto_vacuum = INCREMENTAL');
  }
  const mode = db.prepare('PRAGMA journal_mode = WAL').get()!['journal_mode'];
  if (String(mode).toLowerCase() !== 'wal') throw new StoreError(`cannot enable WAL journal mode (got ${String(mode)})`);
  db.exec('PRAGMA synchronous = NORMAL');
  db.exec(`PRAGMA journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
  if (version === 0) {
    db.exec('BEGIN');
    try {
      db.exec(SCHEMA);
      db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
      db.exec('COMMIT');
    } catch (e) {
      if (db.isTransaction) db.exec('ROLLBACK');
      throw e;
    }
  }
}

/** The schema version; throws StoreError for a foreign or newer database. */
export function checkSchema(db: DatabaseSync, readOnly: boolean): number {
  const version = Number(db.prepare('PRAGMA user_version').get()!['user_version']);
  if (version > SCHEMA_VERSION) {
    throw new StoreError(`schema version ${version} is newer than this PerfCatch supports (${SCHEMA_VERSION})`);
  }
  if (version === 0) {
    const tables = Number(db.prepare("SELECT COUNT(*) AS n FROM sqlite_schema WHERE type = 'table'").get()!['n']);
    if (tables > 0 || readOnly) throw new StoreError('not a PerfCatch database');
  }
  return version;
}
