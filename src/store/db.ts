// Opening the edge database: WAL, a busy timeout, and migrations tracked by PRAGMA user_version.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import { MIGRATIONS } from './schema.js';

const require = createRequire(import.meta.url);
export type DB = BetterSqlite3.Database;

export interface OpenOptions {
  readonly?: boolean;
  /** ms to wait on a lock held by another process before SQLITE_BUSY */
  busyTimeoutMs?: number;
}

export function openEdgeDb(path: string, opts: OpenOptions = {}): DB {
  const Database = require('better-sqlite3') as typeof BetterSqlite3;
  let db: DB;
  try {
    db = new Database(path, { readonly: !!opts.readonly, fileMustExist: !!opts.readonly });
  } catch (e) {
    throw new Error(`${path}: cannot open database: ${(e as Error).message}`);
  }
  if (opts.readonly) db = readableOnReadOnlyDir(db, path);
  db.pragma(`busy_timeout = ${opts.busyTimeoutMs ?? 5000}`);
  if (!opts.readonly) {
    db.pragma('journal_mode = WAL');
    // FULL: a sample reported "logged" must survive a power cut, not only a process kill
    // (`serve` switches its connection to NORMAL and fsyncs the WAL itself before it reports a
    // sample logged: wal-durability.ts)
    db.pragma('synchronous = FULL');
    migrate(db);
  }
  return db;
}

/** Largest database read into memory when its directory is read-only (see below). */
const MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024;

/**
 * A WAL database cannot be read in place from a read-only directory: SQLite must create its
 * -shm file next to it (SQLITE_READONLY_DIRECTORY on the first read). When there is no WAL
 * content to replay (no -wal file, or an empty one: a clean shutdown), the file alone is the
 * whole database: read-only commands then read an in-memory copy of it (header switched to
 * rollback journal mode, which memory databases need). Otherwise the error stands.
 */
function readableOnReadOnlyDir(db: DB, path: string): DB {
  try {
    db.prepare('SELECT count(*) FROM sqlite_master').get();
    return db;
  } catch (e) {
    const code = String((e as { code?: unknown }).code ?? '');
    if (code !== 'SQLITE_READONLY_DIRECTORY' && !code.startsWith('SQLITE_CANTOPEN')) throw e;
    const wal = `${path}-wal`;
    if ((existsSync(wal) && statSync(wal).size > 0) || statSync(path).size > MAX_SNAPSHOT_BYTES) throw e;
    db.close();
    const bytes = readFileSync(path);
    if (bytes[18] === 2) bytes[18] = bytes[19] = 1;
    const Database = require('better-sqlite3') as typeof BetterSqlite3;
    return new Database(bytes, { readonly: true });
  }
}

export function migrate(db: DB): number {
  const newer = (v: number) => new Error(`database schema version ${v} is newer than this sedna-ll understands (${MIGRATIONS.length})`);
  let current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) throw newer(current);
  while (current < MIGRATIONS.length) {
    // Each step under the write lock (IMMEDIATE), the version read again there: two processes
    // opening an outbox an upgrade left behind (serve and a cron sync) both saw the old version;
    // the second then ran the step again after the first's commit and failed ("no such index:
    // samples_state_time" for migration 6, which takes seconds on a big outbox). Now it waits
    // (busy_timeout) and finds the step done.
    current = db
      .transaction(() => {
        const v = db.pragma('user_version', { simple: true }) as number;
        if (v > MIGRATIONS.length) throw newer(v);
        if (v === MIGRATIONS.length) return v;
        db.exec(MIGRATIONS[v]);
        db.pragma(`user_version = ${v + 1}`);
        return v + 1;
      })
      .immediate();
  }
  return MIGRATIONS.length;
}

export function kvGet(db: DB, key: string): string | null {
  const r = db.prepare('SELECT value FROM kv WHERE key = ?').get(key) as { value: string } | undefined;
  return r ? r.value : null;
}

export function kvSet(db: DB, key: string, value: string | number | null): void {
  if (value === null) db.prepare('DELETE FROM kv WHERE key = ?').run(key);
  else db.prepare('INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, String(value));
}

export function kvIncr(db: DB, key: string, by = 1): void {
  // better-sqlite3 binds JS numbers as REAL: cast, or the TEXT column would end up holding "5.0"
  db.prepare("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + CAST(? AS INTEGER)").run(key, String(by), by);
}

export function logEvent(db: DB, kind: string, detail: Record<string, unknown> = {}): void {
  db.prepare('INSERT INTO events (ts, kind, detail) VALUES (?, ?, ?)').run(Date.now(), kind, JSON.stringify(detail));
}
