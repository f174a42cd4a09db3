// What the outbox holds, counted: bytes are tracked incrementally in kv 'outbox_bytes' (in the
// same transaction as the rows), so the quota check per batch is one point read; eviction,
// deletion and label counters live in kv too. `status` recounts from the rows and corrects a
// drift.
import type BetterSqlite3 from 'better-sqlite3';
import type { DB } from './db.js';

/**
 * Bytes a row is accounted for: payload plus its JSON columns plus a fixed per-row overhead.
 * Computed in SQL from columns that never change after insert, so insert and delete agree.
 */
export const ROW_BYTES_SQL = `(payload_bytes + length(attrs) + coalesce(length(scores), 0) + length(hard_reasons) + 64)`;

export interface EvictionCounters {
  count: number;
  bytes: number;
  uploaded: number;
  pending: number;
  labelled: number;
}

export interface OutboxCounts {
  pending: number;
  uploaded: number;
  pendingBytes: number;
  uploadedBytes: number;
  labelsPending: number;
  /** tracked bytes (kv outbox_bytes), what the quota compares */
  bytes: number;
  /** bytes of all rows, every state, counted from the rows in the same read as `bytes` */
  rowBytes: number;
  /** quota in bytes; 0 = unlimited */
  maxBytes: number;
  evicted: EvictionCounters;
  deletedUploaded: number;
}

export class OutboxAccounting {
  private readonly kvGet: BetterSqlite3.Statement;
  private readonly kvIncr: BetterSqlite3.Statement;

  constructor(
    private readonly db: DB,
    /** quota in bytes; 0 = unlimited */
    readonly maxBytes: number,
  ) {
    this.kvGet = db.prepare('SELECT value FROM kv WHERE key = ?').pluck();
    // the increment is bound as an integer string: better-sqlite3 binds JS numbers as REAL,
    // which the TEXT column would keep as "5.0"
    this.kvIncr = db.prepare(`INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + CAST(excluded.value AS INTEGER)`);
  }

  /** Add `by` to a kv counter; inside the caller's write transaction. */
  incr(key: string, by: number): void {
    this.kvIncr.run(key, String(Math.round(by)));
  }

  num(key: string): number {
    return Number(this.kvGet.get(key) ?? 0);
  }

  evictionCounters(): EvictionCounters {
    return {
      count: this.num('evicted_count'),
      bytes: this.num('evicted_bytes'),
      uploaded: this.num('evicted_uploaded'),
      pending: this.num('evicted_pending'),
      labelled: this.num('evicted_labelled'),
    };
  }

  /** Bytes the quota counts (kv outbox_bytes): one point read. */
  trackedBytes(): number {
    return this.num('outbox_bytes');
  }

  counts(): OutboxCounts {
    // one pass over the table, summed per state as it goes: GROUP BY state sorted every row in a
    // temp B-tree first (no index on state since schema migration 6; 300k rows: ~330 -> ~200 ms).
    // The same pass sums every row's bytes, read in one snapshot with the tracked count: status
    // checks the tracked count with it instead of a scan of its own (recountBytes)
    const c = this.db.transaction(() => ({
      ...(this.db
        .prepare(
          `SELECT COALESCE(SUM(state = 'pending'), 0) AS pending, COALESCE(SUM(state = 'uploaded'), 0) AS uploaded,
             COALESCE(SUM(CASE WHEN state = 'pending' THEN ${ROW_BYTES_SQL} END), 0) AS pendingBytes,
             COALESCE(SUM(CASE WHEN state = 'uploaded' THEN ${ROW_BYTES_SQL} END), 0) AS uploadedBytes,
             COALESCE(SUM(${ROW_BYTES_SQL}), 0) AS rowBytes
           FROM samples`,
        )
        .get() as { pending: number; uploaded: number; pendingBytes: number; uploadedBytes: number; rowBytes: number }),
      labelsPending: this.db.prepare(`SELECT COUNT(*) FROM samples WHERE label_state = 'pending'`).pluck().get() as number,
      bytes: this.trackedBytes(),
    }))();
    return {
      ...c,
      maxBytes: this.maxBytes,
      evicted: this.evictionCounters(),
      deletedUploaded: this.num('deleted_uploaded'),
    };
  }

  /**
   * Recompute the tracked byte count from the rows and correct kv if it drifted (status calls
   * it; an O(rows) scan). The read is one snapshot; the fix re-checks under the write lock.
   */
  recountBytes(): { tracked: number; actual: number } {
    const sum = this.db.prepare(`SELECT COALESCE(SUM(${ROW_BYTES_SQL}), 0) FROM samples`).pluck();
    const read = this.db.transaction(() => ({ tracked: this.num('outbox_bytes'), actual: sum.get() as number }));
    const r = read();
    if (r.actual === r.tracked) return r;
    return this.db
      .transaction(() => {
        const again = read();
        if (again.actual !== again.tracked) {
          this.db.prepare(`INSERT INTO kv (key, value) VALUES ('outbox_bytes', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`).run(String(again.actual));
        }
        return again;
      })
      .immediate();
  }
}
