import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import type { RequestQuery } from '../../src/store/request-reader.ts';
import { RequestStore } from '../../src/store/request-store.ts';
import { StoreError } from '../../src/store/sqlite-errors.ts';
import { SqliteStore, type SqliteStoreOptions } from '../../src/store/sqlite-store.ts';
import type { RequestRecord } from '../../src/types.ts';
import { bigDependencies, sampleDependency, sampleRecord } from './sample-record.ts';

const NOW = 1_800_000_000;
/** Far enough that age retention (relative to the wall clock) never touches NOW-based records. */
const FOREVER_HOURS = 1e6;

let tmp: string;
const open: SqliteStore[] = [];

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'perfcatch-sqlite-'));
});
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

let dbCount = 0;
function dbPath(dir = tmp): string {
  return path.join(dir, `requests-${++dbCount}.db`);
}

function openStore(opts: Partial<SqliteStoreOptions> = {}): SqliteStore {
  const s = SqliteStore.open({ path: dbPath(), retentionHours: FOREVER_HOURS, maxSizeMb: 100, ...opts });
  open.push(s);
  return s;
}

const ids = (records: RequestRecord[]) => records.map((r) => r.request_id);

function fileMode(p: string): number {
  return fs.statSync(p).mode & 0o777;
}

/** Rows in the database file as another connection sees them (no flush). */
function rowsOnDisk(p: string): number {
  const db = new DatabaseSync(p, { readOnly: true });
  try {
    return Number(db.prepare('SELECT COUNT(*) AS n FROM requests').get()!['n']);
  } finally {
    db.close();
  }
}

/** A varied, deterministic set: every filterable field takes several values, timestamps tie and arrive out of order. */
function varietyOfRecords(): RequestRecord[] {
  let seed = 42;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const pick = <T>(xs: T[]): T => xs[rand(xs.length)]!;
  const offsets = [1, 2, 2, 5, 30, 61, 90, 200, 299, 301, 600, 3000, 7200, 0.5];
  const out: RequestRecord[] = [];
  for (let i = 0; i < 120; i++) {
    out.push(
      sampleRecord({
        request_id: `req-${i}`,
        timestamp: NOW - pick(offsets) - (i % 7 === 0 ? 0 : rand(1000) / 1000),
        pid: 100 + rand(3),
        process_name: pick(['node', 'nginx', 'python3']),
        service_name: pick(['checkout', 'edge', 'api', 'node']),
        namespace: pick([null, 'prod', 'staging']),
        pod_name: pick([null, 'pod-a', 'pod-b']),
        route: pick(['/', '/users/{id}', null]),
        correlation_id: pick([null, 'abc-1', 'ABC-2', 'xyz', 'order-17']),
        http_method: pick(['GET', 'post', 'Post', 'DELETE', null]),
        http_path: pick(['/', '/users', '/users/42', null]),
        http_status: pick([200, 201, 404, 503, null]),
        duration_ms: pick([0.125, 3, 10, 49.999, 50, 250.5, 1200]),
        cpu_time_ms: rand(100) / 7,
        dependencies: rand(3) === 0 ? [sampleDependency(i), sampleDependency(i + 1)] : [],
      }),
    );
  }
  return out;
}

describe('SqliteStore: file', () => {
  it('creates the database and its WAL files with mode 0600, in WAL mode', () => {
    const p = dbPath();
    const s = SqliteStore.open({ path: p, retentionHours: 1, maxSizeMb: 10 });
    open.push(s);
    s.add(sampleRecord());
    s.flush();
    assert.equal(fileMode(p), 0o600);
    assert.equal(fileMode(`${p}-wal`), 0o600);
    assert.equal(fileMode(`${p}-shm`), 0o600);
    const db = new DatabaseSync(p, { readOnly: true });
    try {
      assert.equal(db.prepare('PRAGMA journal_mode').get()!['journal_mode'], 'wal');
      assert.equal(db.prepare('PRAGMA auto_vacuum').get()!['auto_vacuum'], 2); // incremental
      assert.equal(db.prepare('PRAGMA user_version').get()!['user_version'], 1);
    } finally {
      db.close();
    }
  });

  it('fails to open with one clear line', () => {
    const missingDir = path.join(tmp, 'no-such-dir', 'x.db');
    assert.throws(() => SqliteStore.open({ path: missingDir, retentionHours: 1, maxSizeMb: 1 }), (e: unknown) => {
      assert.ok(e instanceof StoreError);
      assert.equal(e.message, `cannot open database ${missingDir}: directory does not exist`);
      return true;
    });

    const notDb = path.join(tmp, 'not-a-db.db');
    fs.writeFileSync(notDb, 'x'.repeat(4096));
    assert.throws(() => SqliteStore.open({ path: notDb, retentionHours: 1, maxSizeMb: 1 }), (e: unknown) => {
      assert.ok(e instanceof StoreError);
      assert.equal(e.message, `cannot open database ${notDb}: file is not a database`);
      return true;
    });

    const missing = path.join(tmp, 'missing.db');
    assert.throws(() => SqliteStore.open({ path: missing, retentionHours: 1, maxSizeMb: 1, readOnly: true }), {
      name: 'StoreError',
      message: `cannot open database ${missing}: file does not exist`,
    });
    assert.equal(fs.existsSync(missing), false);

    assert.throws(() => SqliteStore.open({ path: tmp, retentionHours: 1, maxSizeMb: 1 }), {
      message: `cannot open database ${tmp}: is a directory`,
    });
    assert.throws(() => SqliteStore.open({ path: dbPath(), retentionHours: 0, maxSizeMb: 1 }), /retention must be a positive number of hours/);
  });

  it('keeps records across close and reopen, and opens read-only for the CLI', () => {
    const p = dbPath();
    const s = SqliteStore.open({ path: p, retentionHours: FOREVER_HOURS, maxSizeMb: 10 });
    const r = sampleRecord({ request_id: 'kept', dependencies: [sampleDependency(1), sampleDependency(2)] });
    s.add(r);
    s.close();
    s.close(); // idempotent

    const again = SqliteStore.open({ path: p, retentionHours: FOREVER_HOURS, maxSizeMb: 10 });
    open.push(again);
    assert.deepEqual(again.findById('kept'), r);
    assert.deepEqual(again.query({}, NOW), [r]);
    again.close();

    const ro = SqliteStore.open({ path: p, retentionHours: FOREVER_HOURS, maxSizeMb: 10, readOnly: true });
    open.push(ro);
    assert.deepEqual(ro.findById('kept'), r);
    assert.deepEqual(ro.records(5, NOW), [r]);
    ro.add(sampleRecord({ request_id: 'not-written' })); // dropped, not thrown
    assert.equal(ro.findById('not-written'), null);
    assert.equal(ro.health().droppedRecords, 1);
  });
});

describe('SqliteStore: queries', () => {
  it('answers every query exactly like the ring buffer', () => {
    const records = varietyOfRecords();
    const mem = new RequestStore(1000);
    const db = openStore();
    for (const r of records) {
      mem.add(r);
      db.add(r);
    }
    const queries: RequestQuery[] = [
      {},
      { limit: 3 },
      { limit: 1 },
      { since_minutes: 1e6, limit: 1000 },
      { since_minutes: 0.5 },
      { since_minutes: 10 },
      { since_minutes: 120, limit: 500 },
      { process: 'node' },
      { process: 'edge', since_minutes: 1e6 },
      { process: 'nginx', since_minutes: 1e6, limit: 500 },
      { process: 'ngin' },
      { namespace: 'prod', since_minutes: 1e6 },
      { namespace: 'nope' },
      { pod: 'pod-a', since_minutes: 1e6 },
      { correlation_id: 'abc-1', since_minutes: 1e6 },
      { correlation_id: 'abc' },
      { correlation_id_regex: /^abc/i, since_minutes: 1e6 },
      { correlation_id_regex: /^abc/i, since_minutes: 1e6, limit: 2 },
      { correlation_id_regex: /-\d+$/ },
      { correlation_id_regex: /./, since_minutes: 1e6, limit: 1000 },
      { method: 'post', since_minutes: 1e6 },
      { method: 'POST', since_minutes: 1e6 },
      { method: 'Get' },
      { path: '/users', since_minutes: 1e6 },
      { path: '/user' },
      { status: 503, since_minutes: 1e6 },
      { status: 404 },
      { min_duration_ms: 50, since_minutes: 1e6 },
      { min_duration_ms: 49.999 },
      { min_duration_ms: 10, method: 'get', status: 200, path: '/', since_minutes: 1e6 },
      { process: 'checkout', namespace: 'prod', pod: 'pod-b', since_minutes: 1e6 },
      { correlation_id: 'xyz', correlation_id_regex: /y/, method: 'delete', since_minutes: 1e6 },
    ];
    for (const q of queries) {
      const expected = mem.query(q, NOW);
      assert.deepEqual(db.query(q, NOW), expected, `query ${JSON.stringify(q, (_k, v: unknown) => (v instanceof RegExp ? String(v) : v))}`);
    }
    // The set is varied enough to mean something.
    assert.ok(mem.query({ since_minutes: 1e6, limit: 1000 }, NOW).length === records.length);
    assert.ok(mem.query({ correlation_id_regex: /^abc/i, since_minutes: 1e6 }, NOW).length > 2);

    for (const r of records) assert.deepEqual(db.findById(r.request_id), mem.findById(r.request_id));
    assert.equal(db.findById('missing'), null);
    const withDeps = records.find((r) => r.dependencies.length > 0)!;
    assert.deepEqual(db.findById(withDeps.request_id)!.dependencies, withDeps.dependencies);

    // records() feeds service summaries: the same set as the ring buffer, newest first.
    for (const since of [0.5, 5, 60, 1e6]) {
      assert.deepEqual(db.records(since, NOW), mem.query({ since_minutes: since, limit: 1e9 }, NOW));
    }
  });

  it('sorts by start time, newest first, ties in insertion order like the ring buffer', () => {
    const mem = new RequestStore(10);
    const db = openStore();
    for (const [id, ts] of [[1, NOW - 4 * 60], [2, NOW - 30 * 60], [3, NOW - 6 * 60], [4, NOW - 10], [5, NOW - 10]] as const) {
      const r = sampleRecord({ request_id: `req-${id}`, timestamp: ts });
      mem.add(r);
      db.add(r);
    }
    assert.deepEqual(ids(db.query({}, NOW)), ['req-5', 'req-4', 'req-1']);
    assert.deepEqual(ids(db.query({ since_minutes: 60 }, NOW)), ids(mem.query({ since_minutes: 60 }, NOW)));
    assert.deepEqual(ids(db.query({ since_minutes: 60 }, NOW)), ['req-5', 'req-4', 'req-1', 'req-3', 'req-2']);
  });

  it('defaults to the last 5 minutes of the wall clock and 50 results', () => {
    const db = openStore();
    const now = Date.now() / 1000;
    for (let i = 0; i < 60; i++) db.add(sampleRecord({ request_id: `r${i}`, timestamp: now - 1 + i / 1000 }));
    db.add(sampleRecord({ request_id: 'old', timestamp: now - 6 * 60 }));
    const got = db.query({});
    assert.equal(got.length, 50);
    assert.equal(got[0]!.request_id, 'r59');
    assert.equal(db.query({ limit: 100 }).length, 60);
  });

  it('upsert replaces a record by request_id, keeping its place among equal timestamps', () => {
    const db = openStore();
    db.add(sampleRecord({ request_id: 'a', timestamp: NOW - 1 }));
    db.add(sampleRecord({ request_id: 'b', timestamp: NOW - 1 }));
    db.flush();
    const late = sampleRecord({ request_id: 'a', timestamp: NOW - 1, duration_ms: 99, dependencies: [sampleDependency(3)] });
    db.upsert(late);
    assert.deepEqual(db.findById('a'), late);
    assert.deepEqual(ids(db.query({}, NOW)), ['b', 'a']);
    assert.deepEqual(ids(db.query({ min_duration_ms: 50 }, NOW)), ['a']);
    assert.equal(db.health().rows, 2);
    // upsert of an unknown id inserts it; add of a known id replaces it (as the newest).
    db.upsert(sampleRecord({ request_id: 'c', timestamp: NOW - 1 }));
    db.add(sampleRecord({ request_id: 'b', timestamp: NOW - 1, http_status: 500 }));
    assert.deepEqual(ids(db.query({}, NOW)), ['b', 'c', 'a']);
    assert.equal(db.findById('b')!.http_status, 500);
    assert.equal(db.health().rows, 3);
  });
});

describe('SqliteStore: batching', () => {
  it('add() returns at once and the rows reach the file after the flush interval', async () => {
    const p = dbPath();
    const db = SqliteStore.open({ path: p, retentionHours: FOREVER_HOURS, maxSizeMb: 10, flushIntervalMs: 50 });
    open.push(db);
    const started = performance.now();
    for (let i = 0; i < 1000; i++) db.add(sampleRecord({ request_id: `r${i}`, dependencies: [sampleDependency(i)] }));
    assert.ok(performance.now() - started < 200, 'add() must not write to disk');
    assert.equal(db.health().queued, 1000);
    assert.equal(rowsOnDisk(p), 0);
    await sleep(250);
    assert.equal(db.health().queued, 0);
    assert.equal(rowsOnDisk(p), 1000);
    assert.deepEqual(db.health(), {
      ok: true,
      path: p,
      rows: 1000,
      sizeBytes: db.health().sizeBytes,
      queued: 0,
      writeErrors: 0,
      droppedRecords: 0,
      lastError: null,
    });
    assert.ok(db.health().sizeBytes > 0);
  });

  it('close() writes what is queued', () => {
    const p = dbPath();
    const db = SqliteStore.open({ path: p, retentionHours: FOREVER_HOURS, maxSizeMb: 10, flushIntervalMs: 60_000 });
    db.add(sampleRecord());
    db.close();
    assert.equal(rowsOnDisk(p), 1);
  });

  it('drops and counts records beyond the queue bound', () => {
    const db = openStore({ flushIntervalMs: 60_000 });
    const r = sampleRecord();
    for (let i = 0; i < 20_010; i++) db.add(r);
    assert.equal(db.health().queued, 20_000);
    assert.equal(db.health().droppedRecords, 10);
    assert.equal(db.health().writeErrors, 0);
  });
});

describe('SqliteStore: retention', () => {
  it('deletes rows older than the retention, at open and on demand', () => {
    const p = dbPath();
    const now = Date.now() / 1000;
    const db = SqliteStore.open({ path: p, retentionHours: 1, maxSizeMb: 10 });
    db.add(sampleRecord({ request_id: 'fresh', timestamp: now - 10 * 60 }));
    db.add(sampleRecord({ request_id: 'old', timestamp: now - 2 * 3600 }));
    db.add(sampleRecord({ request_id: 'older', timestamp: now - 30 * 3600 }));
    db.flush();
    assert.equal(db.health().rows, 3);
    db.retain(now);
    assert.deepEqual(ids(db.query({ since_minutes: 1e6 }, now)), ['fresh']);
    db.close();

    const db2 = SqliteStore.open({ path: p, retentionHours: 1, maxSizeMb: 10 });
    open.push(db2);
    db2.add(sampleRecord({ request_id: 'stale', timestamp: now - 5 * 3600 }));
    db2.close();
    assert.equal(rowsOnDisk(p), 2);
    const db3 = SqliteStore.open({ path: p, retentionHours: 1, maxSizeMb: 10 });
    open.push(db3);
    assert.deepEqual(ids(db3.query({ since_minutes: 1e6 }, now)), ['fresh']);
  });

  it('keeps the file within the size limit by deleting the oldest rows', () => {
    const p = dbPath();
    const limit = 1024 * 1024;
    const db = SqliteStore.open({ path: p, retentionHours: FOREVER_HOURS, maxSizeMb: 1, flushIntervalMs: 60_000 });
    open.push(db);
    const n = 600;
    for (let i = 0; i < n; i++) {
      // Start times out of insertion order for some, to check "oldest" means oldest start.
      const ts = NOW - 10_000 + i + (i % 50 === 0 ? 100_000 : 0);
      db.add(sampleRecord({ request_id: `r${i}`, timestamp: ts, dependencies: bigDependencies(12) }));
    }
    const bytesAdded = n * JSON.stringify(sampleRecord({ dependencies: bigDependencies(12) })).length;
    assert.ok(bytesAdded > 2 * limit, `test data (${bytesAdded} bytes) must exceed the limit`);
    db.flush(); // writes 600 rows, then retention runs since the file is over the limit

    const h = db.health();
    assert.ok(h.sizeBytes <= limit, `page_count * page_size ${h.sizeBytes} > ${limit}`);
    assert.ok(fs.statSync(p).size <= limit, `file size ${fs.statSync(p).size} > ${limit}`);
    assert.ok(h.rows > 50 && h.rows < n, `rows ${h.rows}`);
    assert.ok(h.ok);
    const kept = db.records(1e9, NOW);
    assert.equal(kept.length, h.rows);
    // The newest starts survived: every kept row starts after every deleted one.
    const all = Array.from({ length: n }, (_, i) => ({ id: `r${i}`, ts: NOW - 10_000 + i + (i % 50 === 0 ? 100_000 : 0) }));
    all.sort((a, b) => b.ts - a.ts);
    assert.deepEqual(new Set(ids(kept)), new Set(all.slice(0, h.rows).map((x) => x.id)));
    assert.ok(db.findById('r0'), 'r0 started late (out of order), so it is among the newest');
    assert.equal(db.findById('r1'), null);
    assert.ok(db.findById(`r${n - 1}`));

    // Stays within the limit as more arrives.
    for (let i = n; i < n + 300; i++) db.add(sampleRecord({ request_id: `r${i}`, timestamp: NOW - 10_000 + i, dependencies: bigDependencies(12) }));
    db.flush();
    assert.ok(db.health().sizeBytes <= limit);
    assert.ok(db.findById(`r${n + 299}`));
  });
});
