/**
 * Opening the on-disk store's file. The checks here turn what SQLite would report vaguely (or
 * work around by falling back to a read-only connection) into one line: a missing directory,
 * no write permission, a directory where the file should be. A new database and its -wal and
 * -shm files get no group or other bits, and a failed open leaves no file behind.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { describeFsError, describeSqliteError, failOpen, StoreError } from './sqlite-errors.ts';
import { checkSchema, initialize } from './sqlite-schema.ts';

/**
 * Opens `file` (creating it unless `readOnly`), creates or checks its schema and hands the
 * connection to `use`, whose result it returns. Throws StoreError with one line on failure,
 * after closing the connection and removing a file it created.
 */
export function openDatabase<T>(file: string, readOnly: boolean, use: (db: DatabaseSync) => T): T {
  const fail = (reason: string): never => failOpen(file, reason);
  const dir = path.dirname(path.resolve(file));
  const dirStat = statOrNull(dir);
  if (!dirStat) fail('directory does not exist');
  if (!dirStat!.isDirectory()) fail(`${dir} is not a directory`);
  const fileStat = statOrNull(file);
  if (fileStat?.isDirectory()) fail('is a directory');
  if (!fileStat && readOnly) fail('file does not exist');

  if (!readOnly) {
    // SQLite would fall back to a read-only connection, or fail with a vague message.
    if (fileStat) checkAccess(file, fs.constants.R_OK | fs.constants.W_OK, fail);
    checkAccess(dir, fs.constants.W_OK | fs.constants.X_OK, fail, `directory ${dir} is not writable`);
  }

  const created = !fileStat;
  if (created) {
    try {
      const fd = fs.openSync(file, 'a', 0o600);
      try {
        fs.fchmodSync(fd, 0o600);
      } finally {
        fs.closeSync(fd);
      }
    } catch (e) {
      fail(describeFsError(e));
    }
  }

  // The -wal and -shm files are created by SQLite on first access: no group/other bits.
  const oldUmask = setUmask(0o077);
  let db: DatabaseSync | null = null;
  try {
    // Loaded on use, so that everything else still runs on a Node.js without node:sqlite.
    const sqlite = process.getBuiltinModule('node:sqlite') as typeof import('node:sqlite') | undefined;
    if (!sqlite) throw new Error(`this Node.js (${process.version}) has no node:sqlite; use Node.js 24`);
    db = new sqlite.DatabaseSync(file, readOnly ? { readOnly: true, timeout: 2000 } : { timeout: 100 });
    if (readOnly) checkSchema(db, true);
    else initialize(db);
    const opened = use(db);
    if (created) {
      for (const suffix of ['-wal', '-shm']) {
        try {
          fs.chmodSync(file + suffix, 0o600);
        } catch {
          // not there (yet): SQLite gives it the database file's mode when it creates it
        }
      }
    }
    return opened;
  } catch (e) {
    try {
      db?.close();
    } catch {
      // already failing
    }
    if (created) {
      // Leave nothing behind that a later open would take for a database.
      for (const suffix of ['', '-wal', '-shm']) {
        try {
          fs.rmSync(file + suffix, { force: true });
        } catch {
          // best effort
        }
      }
    }
    if (e instanceof StoreError) throw e;
    return fail(describeSqliteError(e));
  } finally {
    if (oldUmask !== null) setUmask(oldUmask);
  }
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}

function checkAccess(p: string, mode: number, fail: (reason: string) => never, denied?: string): void {
  try {
    fs.accessSync(p, mode);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    fail(denied !== undefined && (code === 'EACCES' || code === 'EPERM') ? denied : describeFsError(e));
  }
}

function setUmask(mask: number): number | null {
  try {
    return process.umask(mask);
  } catch {
    return null; // worker threads cannot change it
  }
}
