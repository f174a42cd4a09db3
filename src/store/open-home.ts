// Opening an existing edge home for a command (config + database), and turning storage
// failures (busy / read-only / full disk / not a database) into one line naming the file.
import { accessSync, constants, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { ReportedError, NotFoundError } from '../errors.js';
import { keepPrivate, sqliteFiles } from './private-files.js';
import { type DB, openEdgeDb } from './db.js';
import { type EdgeConfig, type HomePaths, homePaths, loadConfig, resolveHome } from './home.js';

export interface OpenHome {
  paths: HomePaths;
  cfg: EdgeConfig;
  db: DB;
}

/**
 * A one-line message for a storage error, or null when it is not one. SQLite codes come from
 * better-sqlite3's SqliteError.code; file-system ones from errno codes.
 */
export function storageErrorMessage(e: unknown, file: string): string | null {
  const code = (e as { code?: unknown })?.code;
  if (typeof code !== 'string') return null;
  const path = (e as NodeJS.ErrnoException).path ?? file;
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return `${file}: database is locked by another process (still busy after the timeout); retry when it is done`;
  }
  if (code === 'SQLITE_READONLY_DIRECTORY') return `${dirname(path)}: read-only; cannot open ${path} (SQLite needs to create its WAL files there)`;
  if (code.startsWith('SQLITE_READONLY') || code === 'EROFS') return `${path}: read-only; cannot write`;
  if (code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'EDQUOT') return `${path}: disk full; nothing was written by this command`;
  if (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT')) return `${file}: not a valid sedna-ll database (${code})`;
  if (code.startsWith('SQLITE_CANTOPEN') || code === 'EACCES' || code === 'EPERM') {
    // SQLite cannot create its WAL / shared-memory files next to a database in a read-only
    // directory: say so, rather than a bare "cannot open"
    if (!writable(dirname(path))) return `${dirname(path)}: read-only; cannot open ${path} for writing (${code})`;
    return `${path}: cannot open (${code})`;
  }
  if (code.startsWith('SQLITE_IOERR') || code === 'EIO') return `${path}: I/O error (${code})`;
  return null;
}

/** Rethrow a storage error as a ReportedError naming the file; other errors pass through. */
export function asStorageError(e: unknown, file: string): unknown {
  if (e instanceof ReportedError) return e;
  const msg = storageErrorMessage(e, file);
  return msg ? new ReportedError(msg) : e;
}

/**
 * Open the edge home named by --home / $SEDNA_LL_HOME / ~/.sedna-ll (must be initialised).
 * readonly 'when-needed': read-write (migrations run), else read-only when the home is on
 * read-only storage: for commands that only read (status).
 */
export function openHome(homeOpt?: string, opts: { readonly?: boolean | 'when-needed' } = {}): OpenHome {
  const home = resolveHome(homeOpt);
  const paths = homePaths(home);
  let cfg: EdgeConfig;
  try {
    cfg = loadConfig(home);
  } catch (e) {
    // loadConfig's own errors (no home, invalid config: exit 2, as in every command) pass through
    throw e instanceof ReportedError ? e : new ReportedError((e as Error).message);
  }
  // a missing database is an error, not an empty edge (`status` reported pending 0, exit 0)
  if (!existsSync(paths.db)) throw new NotFoundError(`${paths.db}: missing (config.json is there but the edge database is gone); restore it from a backup or run "sedna-ll init" again`);
  keepPrivate(home, [...sqliteFiles(paths.db), paths.config, paths.token]);
  let db: DB;
  try {
    if (opts.readonly === 'when-needed') {
      try {
        db = openEdgeDb(paths.db);
      } catch (e) {
        if (!/read-only/.test(storageErrorMessage(e, paths.db) ?? '')) throw e;
        db = openEdgeDb(paths.db, { readonly: true });
      }
    } else db = openEdgeDb(paths.db, { readonly: opts.readonly });
  } catch (e) {
    // openEdgeDb already names the file when the open itself fails; pragmas and migrations
    // (busy, read-only) surface raw SqliteErrors
    throw asStorageError(e, paths.db);
  }
  return { paths, cfg, db };
}

/** Run fn with an open home, closing the database afterwards and mapping storage errors. */
export async function withHome<T>(homeOpt: string | undefined, fn: (h: OpenHome) => T | Promise<T>, opts: { readonly?: boolean | 'when-needed' } = {}): Promise<T> {
  const h = openHome(homeOpt, opts);
  try {
    return await fn(h);
  } catch (e) {
    throw asStorageError(e, h.paths.db);
  } finally {
    try {
      h.db.close();
    } catch {
      /* already closed */
    }
  }
}

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}
