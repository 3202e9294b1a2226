/**
 * SqliteStore on disks that fail: real file systems mounted for the test (a tmpfs that fills
 * up, one remounted read-only, an ext4 image that turns read-only on an error). Mounting needs
 * root (CAP_SYS_ADMIN) and a loop device, so these live with the end-to-end tests; the rest of
 * SqliteStore is tested without root in test/unit/sqlite-store.test.ts.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import type { RequestRecord } from '../../src/types.ts';
import { bigDependencies, sampleRecord } from '../unit/sample-record.ts';

const NOW = 1_800_000_000;
/** Far enough that age retention (relative to the wall clock) never touches NOW-based records. */
const FOREVER_HOURS = 1e6;

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'perfcatch-sqlite-disk-'));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

let dbCount = 0;
function dbPath(dir: string): string {
  return path.join(dir, `requests-${++dbCount}.db`);
}

const ids = (records: RequestRecord[]) => records.map((r) => r.request_id);

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(
      `\`${cmd} ${args.join(' ')}\` failed: ${(err.stderr || err.message).trim()}. ` +
        'These tests mount small file systems and need root (CAP_SYS_ADMIN) and, for the read-only test, a loop device.',
    );
  }
}

describe('SqliteStore: disk failures', () => {
  const mounts: string[] = [];
  const stores: SqliteStore[] = [];

  function mountTmpfs(size: string): string {
    const dir = fs.mkdtempSync(path.join(tmp, 'mnt-'));
    sh('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir]);
    mounts.push(dir);
    return dir;
  }

  after(() => {
    for (const s of stores) s.close();
    for (const dir of mounts.reverse()) {
      try {
        execFileSync('umount', [dir], { stdio: 'ignore' });
      } catch {
        execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
      }
    }
  });

  it('a full disk: writes fail, are counted, nothing is thrown, add() keeps working', async () => {
    const dir = mountTmpfs('256k');
    const p = dbPath(dir);
    const lines: string[] = [];
    const log = { error: (m: string) => lines.push(m), warn: (m: string) => lines.push(m), info: (m: string) => lines.push(m), debug() {} };
    const db = SqliteStore.open({ path: p, retentionHours: FOREVER_HOURS, maxSizeMb: 1024, flushIntervalMs: 20, log });
    stores.push(db);
    let i = 0;
    while (db.health().writeErrors === 0 && i < 2000) {
      for (let j = 0; j < 5; j++, i++) db.add(sampleRecord({ request_id: `r${i}`, dependencies: bigDependencies(4) }));
      db.flush();
    }
    const h = db.health();
    assert.ok(h.writeErrors > 0, 'the disk never filled up');
    assert.ok(h.droppedRecords >= 5);
    assert.equal(h.ok, false);
    assert.match(h.lastError ?? '', /full/i);
    assert.ok(h.rows > 0, 'rows written before the disk filled up stay readable');

    // Keeps accepting records; timer-driven flushes fail quietly (an escaping exception would fail the test).
    const before = h.writeErrors;
    for (let k = 0; k < 50; k++) db.add(sampleRecord({ request_id: `after-${k}`, dependencies: bigDependencies(4) }));
    assert.equal(db.health().queued, 50);
    await sleep(100);
    const later = db.health();
    assert.equal(later.queued, 0);
    assert.ok(later.writeErrors > before);
    assert.ok(later.droppedRecords >= h.droppedRecords + 50);
    db.flush();
    assert.ok(db.query({}, NOW).length > 0);
    // Logged once per distinct error, not once per failure.
    const errorLines = lines.filter((l) => /failed/.test(l));
    assert.ok(errorLines.length >= 1 && errorLines.length < later.writeErrors, errorLines.join('\n'));
  });

  it('a file system already read-only at start: open fails with one line', () => {
    const dir = mountTmpfs('1m');
    const p = dbPath(dir);
    const db = SqliteStore.open({ path: p, retentionHours: FOREVER_HOURS, maxSizeMb: 10 });
    db.add(sampleRecord());
    db.close();
    sh('mount', ['-o', 'remount,ro', dir]);
    assert.throws(() => SqliteStore.open({ path: p, retentionHours: FOREVER_HOURS, maxSizeMb: 10 }), {
      name: 'StoreError',
      message: `cannot open database ${p}: read-only file system`,
    });
    const p2 = dbPath(dir);
    assert.throws(() => SqliteStore.open({ path: p2, retentionHours: FOREVER_HOURS, maxSizeMb: 10 }), {
      message: `cannot open database ${p2}: read-only file system`,
    });
  });

  it('a disk that turns read-only under a running store: writes fail, are counted, nothing is thrown', async () => {
    // Linux refuses `mount -o remount,ro` while a file is open for writing, so this uses what
    // really happens on a failing disk: ext4 with errors=remount-ro, made to report an error.
    const image = path.join(tmp, 'ext4.img');
    fs.writeFileSync(image, '');
    fs.truncateSync(image, 8 * 1024 * 1024);
    sh('mkfs.ext4', ['-q', '-F', image]);
    const dir = fs.mkdtempSync(path.join(tmp, 'mnt-'));
    sh('mount', ['-o', 'loop,errors=remount-ro', image, dir]);
    mounts.push(dir);
    const device = path.basename(sh('findmnt', ['-n', '-o', 'SOURCE', dir]).trim());

    const p = dbPath(dir);
    const db = SqliteStore.open({ path: p, retentionHours: FOREVER_HOURS, maxSizeMb: 10, flushIntervalMs: 20 });
    stores.push(db);
    db.add(sampleRecord({ request_id: 'before' }));
    db.flush();
    assert.equal(db.health().ok, true);

    fs.writeFileSync(`/sys/fs/ext4/${device}/trigger_fs_error`, '1');
    assert.match(sh('findmnt', ['-n', '-o', 'OPTIONS', dir]), /\bro\b|emergency_ro/);

    for (let k = 0; k < 10; k++) db.add(sampleRecord({ request_id: `after-${k}` }));
    db.flush();
    const h = db.health();
    assert.equal(h.ok, false);
    assert.equal(h.writeErrors, 1);
    assert.equal(h.droppedRecords, 10);
    assert.equal(h.lastError, 'write of 10 records: disk I/O error (write)');

    db.add(sampleRecord({ request_id: 'later' }));
    await sleep(100); // the timer's flush fails quietly
    assert.equal(db.health().writeErrors, 2);
    assert.equal(db.health().droppedRecords, 11);
    assert.deepEqual(ids(db.query({}, NOW)), ['before']);
  });
});
