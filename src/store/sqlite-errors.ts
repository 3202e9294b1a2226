/**
 * One-line descriptions of the file-system and SQLite errors the on-disk store meets, and the
 * error it throws when it cannot open a database.
 */

export class StoreError extends Error {
  override name = 'StoreError';
}

/** Throws the StoreError for a database that cannot be opened: one line, naming the file. */
export function failOpen(file: string, reason: string): never {
  throw new StoreError(`cannot open database ${file}: ${oneLine(reason)}`);
}

export function describeFsError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'read-only file system';
    case 'ENOSPC':
      return 'no space left on device';
    case 'ENOENT':
      return 'directory does not exist';
    default:
      return e instanceof Error ? e.message : String(e);
  }
}

const SQLITE_IOERR = 10;
/** SQLITE_IOERR_READ, _SHORT_READ, _WRITE, _FSYNC, _DIR_FSYNC, _TRUNCATE, _FSTAT by extended code >> 8. */
const IOERR_OPERATIONS: Record<number, string> = {
  1: 'read',
  2: 'short read',
  3: 'write',
  4: 'fsync',
  5: 'directory fsync',
  6: 'truncate',
  7: 'fstat',
};

/** SQLite's own message, e.g. "database or disk is full", "attempt to write a readonly database". */
export function describeSqliteError(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as Error & { code?: string }).code;
    if (code !== undefined && code !== 'ERR_SQLITE_ERROR') return describeFsError(e);
    const errcode = (e as Error & { errcode?: number }).errcode;
    // SQLite's "disk I/O error" says nothing about which operation failed: name it.
    if (errcode !== undefined && (errcode & 0xff) === SQLITE_IOERR && errcode !== SQLITE_IOERR) {
      const op = IOERR_OPERATIONS[errcode >> 8];
      return `${e.message} (${op ?? `extended code ${errcode}`})`;
    }
    return e.message;
  }
  return String(e);
}

export function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}
