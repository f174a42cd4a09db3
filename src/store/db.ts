// Opening the edge database: WAL, a busy timeout, and migrations tracked by PRAGMA user_version.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import { LockedError, UsageError } from '../errors.js';
import { MIGRATIONS } from './schema.js';

const require = createRequire(import.meta.url);
export type DB = BetterSqlite3.Database;

export interface OpenOptions {
  readonly?: boolean;
  /** ms to wait on a lock held by another process before SQLITE_BUSY */
  busyTimeoutMs?: number;
  /** longest wait for another process's schema upgrade (default: upgradeWaitMs()) */
  upgradeWaitMs?: number;
  /** told once when this open waits for another process's upgrade (default: one line on stderr) */
  onUpgradeWait?: (line: string) => void;
  /** what set upgradeWaitMs, as the give-up message names it (default: "N s, SEDNA_LL_UPGRADE_WAIT_S") */
  upgradeWaitLimit?: string;
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
    try {
      migrate(db, {
        what: path,
        waitMs: opts.upgradeWaitMs ?? upgradeWaitMs(),
        limit: opts.upgradeWaitLimit,
        onWait: opts.onUpgradeWait ?? ((line) => void process.stderr.write(`sedna-ll: ${line}\n`)),
      });
    } catch (e) {
      db.close();
      throw e;
    }
  }
  return db;
}

/** Default longest wait for another process's upgrade of the schema. */
export const UPGRADE_WAIT_S = 600;

/**
 * The longest wait for another process's upgrade of the schema, in ms: $SEDNA_LL_UPGRADE_WAIT_S
 * seconds, else UPGRADE_WAIT_S. Minutes, not busy_timeout's 5 s: migration 6 rebuilds the
 * outbox's indexes, several seconds at millions of rows (longer on an SD card).
 */
export function upgradeWaitMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.SEDNA_LL_UPGRADE_WAIT_S;
  if (v === undefined || v === '') return UPGRADE_WAIT_S * 1000;
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v.trim()) || !Number.isFinite(n)) throw new UsageError(`SEDNA_LL_UPGRADE_WAIT_S "${v}": expected a number of seconds >= 0`);
  return Math.round(n * 1000);
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

/** A write lock held by another process less long than this is waited for without a word. */
const QUIET_WAIT_MS = 1000;
/** PRAGMA busy_timeout's largest value (a 32-bit int of ms, ~24.8 days; SEDNA_LL_UPGRADE_WAIT_S may ask more) */
const MAX_BUSY_TIMEOUT_MS = 2 ** 31 - 1;

export interface MigrateOptions {
  /** the database, as messages name it */
  what?: string;
  /** longest wait for another process holding the write lock while the schema is behind */
  waitMs?: number;
  /** told once, when the wait goes past QUIET_WAIT_MS */
  onWait?: (line: string) => void;
  /** what set waitMs, for the give-up message (default: "N s, SEDNA_LL_UPGRADE_WAIT_S") */
  limit?: string;
}

export function migrate(db: DB, o: MigrateOptions = {}): number {
  const newer = (v: number) => new Error(`database schema version ${v} is newer than this sedna-ll understands (${MIGRATIONS.length})`);
  let current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) throw newer(current);
  if (current === MIGRATIONS.length) return current;
  const what = o.what ?? 'the edge database';
  const waitMs = o.waitMs ?? UPGRADE_WAIT_S * 1000;
  const busyTimeout = db.pragma('busy_timeout', { simple: true }) as number;
  const start = Date.now();
  let told = false;
  try {
    while (current < MIGRATIONS.length) {
      // Each step under the write lock (IMMEDIATE), the version read again there: two processes
      // opening an outbox an upgrade left behind (serve and a cron sync) both saw the old version;
      // the second then ran the step again after the first's commit and failed ("no such index:
      // samples_state_time" for migration 6, which takes seconds on a big outbox). Now it waits
      // for the lock and finds the step done.
      const step = db.transaction(() => {
        const v = db.pragma('user_version', { simple: true }) as number;
        if (v > MIGRATIONS.length) throw newer(v);
        if (v === MIGRATIONS.length) return v;
        db.exec(MIGRATIONS[v]);
        db.pragma(`user_version = ${v + 1}`);
        return v + 1;
      });
      // The lock is waited for up to waitMs, not busy_timeout: a step of another process can
      // outlast busy_timeout (migration 6 on millions of rows), and the second process (a cron
      // sync while serve upgrades) then died with "database is locked". Any holder of the write
      // lock while the schema is behind is upgrading it (or an older sedna-ll still writing).
      // First a short quiet wait (ordinary write locks are held for milliseconds), then one line
      // saying why this command waits, then the rest of waitMs.
      const waited = Date.now() - start;
      const left = Math.max(0, waitMs - waited);
      // at most MAX_BUSY_TIMEOUT_MS: SQLite reads a larger busy_timeout as 0, no wait at all
      db.pragma(`busy_timeout = ${Math.min(told ? left : Math.min(QUIET_WAIT_MS, left), MAX_BUSY_TIMEOUT_MS)}`);
      try {
        current = step.immediate();
      } catch (e) {
        if (!isBusy(e)) throw e;
        if (told || left <= QUIET_WAIT_MS) {
          throw new LockedError(`${what}: still locked after ${Math.round((Date.now() - start) / 1000)} s of waiting for another sedna-ll to finish upgrading it (limit ${o.limit ?? `${Math.round(waitMs / 1000)} s, SEDNA_LL_UPGRADE_WAIT_S`}); nothing was lost, run this again once the upgrade is done`);
        }
        told = true;
        o.onWait?.(`waiting for another sedna-ll to finish upgrading ${what} (up to ${Math.round(waitMs / 1000)} s)`);
      }
    }
  } finally {
    db.pragma(`busy_timeout = ${busyTimeout}`);
  }
  return MIGRATIONS.length;
}

function isBusy(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
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
