/**
 * Issue 13, finding 3: database reads run in a worker thread with a capped heap and a
 * budget, so a week-long query neither stops the agent's thread nor runs it out of memory.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { QueryBudgetError, unboundedBudget } from '../../src/store/query-budget.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { SqliteReader } from '../../src/store/sqlite-reader.ts';
import { writeBigDatabase } from '../harness/big-db.ts';

const ROWS = 20_000;

describe('SqliteReader (worker thread)', () => {
  let dir: string;
  let file: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perfcatch-reader-'));
    file = path.join(dir, 'big.db');
    writeBigDatabase(file, ROWS, 7 * 86400);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('answers a week-long summary and query off the calling thread', async () => {
    const reader = new SqliteReader(file);
    try {
      const services = await reader.services(10_080);
      assert.equal(services.length, 5);
      assert.equal(services.reduce((n, s) => n + s.count, 0), ROWS);
      assert.equal(services.reduce((n, s) => n + s.errors, 0), ROWS / 50);
      const some = await reader.query({ since_minutes: 10_080, limit: 10, correlation_id_regex: new RegExp('^corr-1999[0-9]$', 'l') });
      assert.deepEqual(some.map((r) => r.correlation_id), Array.from({ length: 10 }, (_, i) => `corr-${19_999 - i}`));
      assert.equal((await reader.findById((ROWS - 1).toString(16).padStart(16, '0')))?.correlation_id, `corr-${ROWS - 1}`);
      assert.equal(await reader.findById('nope'), null);
    } finally {
      await reader.close();
    }
  });

  it('the calling thread stays free while the worker scans', async () => {
    const reader = new SqliteReader(file);
    try {
      let worst = 0;
      let last = performance.now();
      const timer = setInterval(() => {
        worst = Math.max(worst, performance.now() - last);
        last = performance.now();
      }, 5);
      const started = performance.now();
      for (let i = 0; i < 3; i++) await reader.services(10_080);
      clearInterval(timer);
      // The same summary on the calling thread (what the API did before) stalls it throughout.
      const inThread = SqliteStore.open({ path: file, readOnly: true, retentionHours: 1e6, maxSizeMb: 1e6 });
      const t0 = performance.now();
      inThread.services(10_080, undefined, unboundedBudget());
      const inThreadMs = performance.now() - t0;
      inThread.close();
      console.log(
        `# 3 week-long summaries of ${ROWS} rows: ${(performance.now() - started).toFixed(0)} ms; worst stall of the calling thread ` +
          `${worst.toFixed(0)} ms (one summary in the thread: ${inThreadMs.toFixed(0)} ms)`,
      );
      assert.ok(worst < inThreadMs / 2, `calling thread stalled ${worst.toFixed(0)} ms; in-thread summary ${inThreadMs.toFixed(0)} ms`);
    } finally {
      await reader.close();
    }
  });

  it('a query over the worker heap is a QueryBudgetError; the next query gets a new worker', async () => {
    const reader = new SqliteReader(file, () => {}, { heapMb: 16 });
    try {
      await assert.rejects(reader.query({ since_minutes: 10_080, limit: 10_000 }), (e: unknown) => e instanceof QueryBudgetError && /MB/.test(e.message));
      assert.equal(reader.workerRestarts, 1);
      assert.equal((await reader.query({ since_minutes: 10_080, limit: 5 })).length, 5);
    } finally {
      await reader.close();
    }
  });

  it('over the row budget is a QueryBudgetError; more than maxQueued at once are refused with 429', async () => {
    const reader = new SqliteReader(file, () => {}, { rowBudget: 1_000, maxQueued: 2 });
    try {
      await assert.rejects(reader.services(10_080), (e: unknown) => e instanceof QueryBudgetError && e.status === 422);
      const answers = await Promise.allSettled([1, 2, 3].map(() => reader.query({ since_minutes: 10_080, limit: 1 })));
      assert.deepEqual(answers.map((a) => a.status), ['fulfilled', 'fulfilled', 'rejected']);
      const refused = (answers[2] as PromiseRejectedResult).reason;
      assert.ok(refused instanceof QueryBudgetError && refused.status === 429);
    } finally {
      await reader.close();
    }
  });
});
