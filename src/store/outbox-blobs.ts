// Payloads too large for a row (over INLINE_MAX) live in blobs/<sha256>, a durable content-dir
// shared by every row with that payload. Writes happen under the outbox's write transaction:
// a blob is placed (temp, fsync, rename) before its row commits, and the directory fsynced once
// per batch before the commit. Deleting the last row of a blob moves the blob aside to
// tmp/blobdel-<sha>-<pid> (a tombstone, under the write lock so no concurrent writer can rely on
// it existing); after the commit it is unlinked, after a rollback moved back. A writer killed in
// between leaves the tombstone: the next open restores it if a row still needs it, else
// removes it, and sweeps the temp files of killed writers.
import { existsSync, readdirSync, renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { fsyncDir } from '../durable/atomic-write.js';
import { ContentDir } from '../durable/content-dir.js';
import { pidAlive } from '../durable/process.js';
import type { DB } from './db.js';
import type { HomePaths } from './home.js';

/** Payloads larger than this go to blobs/<sha> instead of the row. */
export const INLINE_MAX = 64 * 1024;

export class PayloadBlobs {
  private readonly files: ContentDir;
  private readonly referenced: BetterSqlite3.Statement;
  /** blobs moved aside by deletes in the running transaction: unlinked after commit, restored on rollback */
  private tombstones: { sha: string; path: string }[] = [];
  private dirDirty = false;

  constructor(
    db: DB,
    private readonly paths: HomePaths,
  ) {
    this.files = new ContentDir(paths.blobs, paths.tmp);
    this.referenced = db.prepare('SELECT 1 FROM samples WHERE payload_sha = ? AND payload IS NULL LIMIT 1').pluck();
    this.recover();
  }

  path(sha: string): string {
    return this.files.path(sha);
  }

  /** Payload bytes of a stored row (inline or from its blob). */
  read(row: { payload: Buffer | null; payload_sha: string }): Buffer {
    return row.payload ?? this.files.read(row.payload_sha);
  }

  /** Place blobs/<sha> unless present; inside a write transaction run by withTx. */
  ensure(sha: string, bytes: Buffer): void {
    if (this.files.putBytes(bytes, { sha, syncDir: false }).created) this.dirDirty = true;
  }

  /** Make the blobs placed so far durable: call before the transaction commits. */
  syncDir(): void {
    if (!this.dirDirty) return;
    fsyncDir(this.paths.blobs);
    this.dirDirty = false;
  }

  /** A row with a blob payload was deleted in this transaction: tombstone the blob if no row uses it now. */
  releaseIfUnused(sha: string): void {
    if (this.referenced.get(sha)) return;
    const dst = join(this.paths.tmp, `blobdel-${sha}-${process.pid}`);
    try {
      renameSync(this.files.path(sha), dst);
      this.tombstones.push({ sha, path: dst });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }

  /** Run a write transaction that may place or tombstone blobs; settle the tombstones after it ends. */
  withTx<T>(fn: () => T): T {
    this.tombstones = [];
    let ok = false;
    try {
      const r = fn();
      ok = true;
      return r;
    } finally {
      const ts = this.tombstones;
      this.tombstones = [];
      this.dirDirty = false;
      for (const t of ts) {
        try {
          if (ok) unlinkSync(t.path);
          else renameSync(t.path, this.files.path(t.sha));
        } catch {
          /* settled by recover() on the next open */
        }
      }
    }
  }

  /** Settle tombstones and temp files left by crashed writers (their pid no longer runs). */
  private recover(): void {
    this.files.sweepTemps();
    let names: string[];
    try {
      names = readdirSync(this.paths.tmp);
    } catch {
      return;
    }
    for (const n of names) {
      const m = /^blobdel-([0-9a-f]{64})-(\d+)$/.exec(n);
      if (!m || pidAlive(Number(m[2]))) continue;
      const p = join(this.paths.tmp, n);
      try {
        if (this.referenced.get(m[1]) && !existsSync(this.files.path(m[1]))) {
          renameSync(p, this.files.path(m[1])); // the delete did not commit: the row still needs it
        } else unlinkSync(p);
      } catch {
        /* another process is recovering it */
      }
    }
  }
}
