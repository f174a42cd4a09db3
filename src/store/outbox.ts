// The hard-sample outbox: durable local store of samples waiting to go to the KB. This is its
// writer; the concepts around it have a module each: payload blobs with their crash recovery
// (outbox-blobs.ts), the eviction policy (outbox-eviction.ts), labels (outbox-labels.ts) and
// the byte and event accounting (outbox-accounting.ts). Sync reads through
// sync/outbox-reader.ts; `samples ls|stats|export` through samples-query.ts.
//
// Write path (infer / serve): logBatch stores a batch in ONE immediate transaction with
// prepared statements. A sample id is a UUIDv7 (or a caller's id within the one sample-id rule,
// format/protocol.ts); the same payload for the same task is stored once (UNIQUE(task,
// payload_sha)): the existing row's dup_count goes up and its id is returned. Payloads above
// INLINE_MAX live in blobs/<sha256> (placed before the row commits); smaller ones in table
// sample_payloads next to their row (schema migration 4: marking a sample uploaded then
// rewrites a small row, not its payload's page). When the commit returns, every sample
// reported logged survives a kill -9 or a power cut (WAL + synchronous=FULL, see db.ts; `serve`
// commits with NORMAL and reports a sample logged only after its own fdatasync of the WAL,
// wal-durability.ts). Over
// quota, the same transaction evicts (outbox-eviction.ts).
import { createHash } from 'node:crypto';
import type BetterSqlite3 from 'better-sqlite3';
import { SAMPLE_ID_RULE, isSampleId } from '../format/protocol.js';
import type { DB } from './db.js';
import type { EdgeConfig, HomePaths } from './home.js';
import { type EvictionCounters, OutboxAccounting, type OutboxCounts, ROW_BYTES_SQL } from './outbox-accounting.js';
import { INLINE_MAX, PayloadBlobs } from './outbox-blobs.js';
import { Eviction, type VictimRow } from './outbox-eviction.js';
import { OutboxLabels } from './outbox-labels.js';
import { NO_TASK } from './sample-row.js';
import { uuidv7 } from './uuid7.js';

export { INLINE_MAX, ROW_BYTES_SQL };
export type { EvictionCounters, OutboxCounts };
// PAYLOAD_SQL is re-exported for bench/sync.ts, which reads payloads the way the outbox does
export { PAYLOAD_SQL } from './sample-row.js';

export type PayloadKind = 'f32' | 'png' | 'jpeg' | 'npy';

export interface LogRecord {
  /**
   * Sample id to use instead of a fresh UUIDv7 (e.g. one pre-allocated by serve). It is the
   * sync upsert key, so it must be globally unique; NOT the input record's own "id".
   */
  id?: string;
  /** null: no task could serve the sample (stored as NO_TASK) */
  task: string | null;
  /** normalised attributes */
  attrs: Record<string, string>;
  payloadKind: PayloadKind;
  payload: Buffer;
  predLabel: string | null;
  scores: number[];
  hard: boolean;
  hardReasons: string[];
  unseen: boolean;
  unseenReason: string | null;
  /** 0..1, eviction value: higher is kept longer */
  hardness: number;
  kbVersion: string | null;
  /** image samples: JSON of the preprocessing the model used (the index's), logged with the original bytes */
  preprocessing?: string | null;
}

/** A sample the KB acked, as the push reader saw it (Outbox.markUploadedRows). */
export interface AckedRow {
  rowid: number;
  id: string;
  /** the label sent with it, if any */
  label?: string | null;
}

export interface LogResult {
  sampleId: string;
  /** the payload was already stored for this task; sampleId is the existing row's */
  duplicate: boolean;
  /** the sample was stored and then evicted in the same transaction (the outbox is full of more valuable ones) */
  evicted: boolean;
}

const EMPTY = Buffer.alloc(0);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export class Outbox {
  readonly maxBytes: number;
  private readonly acct: OutboxAccounting;
  private readonly blobs: PayloadBlobs;
  private readonly eviction: Eviction;
  private readonly labels: OutboxLabels;
  private readonly st: {
    upsert: BetterSqlite3.Statement;
    putPayload: BetterSqlite3.Statement;
    del: BetterSqlite3.Statement;
  };
  private readonly logTx: (recs: LogRecord[], prepared: Prepared[]) => LogResult[];

  constructor(
    private readonly db: DB,
    private readonly paths: HomePaths,
    cfg: Pick<EdgeConfig, 'outbox'>,
  ) {
    const mb = cfg.outbox?.max_mb ?? 0;
    this.maxBytes = mb > 0 ? Math.floor(mb * 1024 * 1024) : 0;
    this.acct = new OutboxAccounting(db, this.maxBytes);
    this.blobs = new PayloadBlobs(db, paths);
    this.eviction = new Eviction(db, this.acct, (v) => this.deleteRowInTx(v));
    this.labels = new OutboxLabels(db, this.acct);
    this.st = {
      upsert: db.prepare(
        `INSERT INTO samples (id, payload_sha, task, attrs, payload_kind, payload, payload_bytes, pred_label, scores,
           hard, hard_reasons, unseen, unseen_reason, hardness, kb_version, created_at, payload_ext, preprocessing)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (task, payload_sha) DO UPDATE SET dup_count = dup_count + 1
         RETURNING id, dup_count, ${ROW_BYTES_SQL} AS acct`,
      ),
      // OR REPLACE: a payload row can only pre-exist if its sample was deleted without the
      // trigger (never by this code); the new sample's bytes are the right ones either way
      putPayload: db.prepare('INSERT OR REPLACE INTO sample_payloads (id, payload) VALUES (?, ?)'),
      del: db.prepare('DELETE FROM samples WHERE id = ?'),
    };
    const tx = db.transaction((recs: LogRecord[], prepared: Prepared[]) => this.logInTx(recs, prepared));
    this.logTx = (recs, prepared) => this.blobs.withTx(() => tx.immediate(recs, prepared));
  }

  /** Store a batch in one transaction; returns, per record in order, its sample id. */
  logBatch(recs: LogRecord[]): LogResult[] {
    if (recs.length === 0) return [];
    // hashing and JSON outside the write lock
    const now = Date.now();
    const prepared: Prepared[] = recs.map((r) => {
      if (r.id !== undefined && !isSampleId(r.id)) throw new Error(`sample id "${r.id}": expected ${SAMPLE_ID_RULE}`);
      if (!Number.isFinite(r.hardness)) throw new Error(`sample for task "${r.task}": hardness ${r.hardness} is not a finite number`);
      return {
        id: r.id ?? uuidv7(now),
        sha: sha256(r.payload),
        attrs: JSON.stringify(r.attrs),
        scores: JSON.stringify(r.scores),
        reasons: JSON.stringify(r.hardReasons),
      };
    });
    return this.logTx(recs, prepared);
  }

  private logInTx(recs: LogRecord[], prepared: Prepared[]): LogResult[] {
    const out: LogResult[] = new Array(recs.length);
    let added = 0;
    let addedBytes = 0;
    const now = Date.now();
    for (let i = 0; i < recs.length; i++) {
      const r = recs[i];
      const p = prepared[i];
      const inBlob = r.payload.length > INLINE_MAX;
      if (inBlob) this.blobs.ensure(p.sha, r.payload);
      // inline payloads go to sample_payloads (payload_ext 1, the row holds an empty blob): see
      // schema migration 4; NULL still means blobs/<sha>
      const row = this.st.upsert.get(
        p.id, p.sha, r.task ?? NO_TASK, p.attrs, r.payloadKind, inBlob ? null : EMPTY, r.payload.length, r.predLabel, p.scores,
        r.hard ? 1 : 0, p.reasons, r.unseen ? 1 : 0, r.unseenReason, r.hardness, r.kbVersion, now, inBlob ? 0 : 1, r.preprocessing ?? null,
      ) as { id: string; dup_count: number; acct: number };
      const duplicate = row.id !== p.id || row.dup_count > 0;
      if (!duplicate && !inBlob) this.st.putPayload.run(p.id, r.payload);
      if (!duplicate) {
        added++;
        addedBytes += row.acct;
      }
      out[i] = { sampleId: row.id, duplicate, evicted: false };
    }
    this.blobs.syncDir();
    if (added) {
      this.acct.incr('outbox_bytes', addedBytes);
      this.acct.incr('outbox_logged', added);
    }
    const gone = this.eviction.enforceQuota();
    if (gone.size) for (const o of out) if (gone.has(o.sampleId)) o.evicted = true;
    return out;
  }

  /** Delete one sample row and release its blob if no other row uses it; inside a write transaction. */
  private deleteRowInTx(v: Pick<VictimRow, 'id' | 'payload_sha' | 'in_blob'>): void {
    this.st.del.run(v.id);
    if (v.in_blob) this.blobs.releaseIfUnused(v.payload_sha);
  }

  blobPath(sha: string): string {
    return this.blobs.path(sha);
  }

  /** The directories of payload blobs and their temporary files (for a reader on another connection). */
  blobDirs(): { blobs: string; tmp: string } {
    return { blobs: this.paths.blobs, tmp: this.paths.tmp };
  }

  /** Payload bytes of a stored row (inline or from its blob). */
  readPayload(row: { payload: Buffer | null; payload_sha: string }): Buffer {
    return this.blobs.read(row);
  }

  // ---- sync: acks ------------------------------------------------------------------------

  /**
   * Mark samples the KB has durably stored as uploaded. When the push carried labels, pass
   * them as sentLabels: a label is marked uploaded only if it is still the one that was sent
   * (a correction made during the push stays pending). Returns the number of rows changed.
   */
  markUploaded(ids: readonly string[], sentLabels?: Readonly<Record<string, string | null | undefined>>): number {
    const up = this.db.prepare(`UPDATE samples SET state = 'uploaded', uploaded_at = ? WHERE id = ? AND state = 'pending'`);
    const lab = this.db.prepare(`UPDATE samples SET label_state = 'uploaded' WHERE id = ? AND label_state = 'pending' AND label = ?`);
    return this.db
      .transaction(() => {
        const now = Date.now();
        let n = 0;
        for (const id of ids) {
          n += up.run(now, id).changes;
          const l = sentLabels?.[id];
          if (l != null) lab.run(id, l);
        }
        return n;
      })
      .immediate();
  }

  /**
   * markUploaded for rows the caller read (the push reader knows each sample's rowid): the
   * update finds each row by rowid, in rowid order, instead of looking each id up in the
   * primary key index. The id is checked too: a rowid freed by an eviction during the push may
   * belong to a newer sample by now, which was never sent. `label`: the label that was sent
   * (the label CAS of markUploaded). Returns the number of rows changed.
   */
  markUploadedRows(rows: readonly AckedRow[]): number {
    const up = this.db.prepare(`UPDATE samples SET state = 'uploaded', uploaded_at = ? WHERE rowid = ? AND id = ? AND state = 'pending'`);
    const lab = this.db.prepare(`UPDATE samples SET label_state = 'uploaded' WHERE rowid = ? AND id = ? AND label_state = 'pending' AND label = ?`);
    const sorted = [...rows].sort((a, b) => a.rowid - b.rowid);
    return this.db
      .transaction(() => {
        const now = Date.now();
        let n = 0;
        for (const r of sorted) {
          n += up.run(now, r.rowid, r.id).changes;
          if (r.label != null) lab.run(r.rowid, r.id, r.label);
        }
        return n;
      })
      .immediate();
  }

  /**
   * Delete uploaded samples (upload policy retention=delete). Rows whose label still waits for
   * upload are kept. Returns the number deleted.
   */
  deleteUploaded(ids: readonly string[]): number {
    const sel = this.db.prepare(
      `SELECT id, payload_sha, payload IS NULL AS in_blob, ${ROW_BYTES_SQL} AS acct FROM samples
       WHERE id = ? AND state = 'uploaded' AND label_state IS NOT 'pending'`,
    );
    return this.blobs.withTx(() =>
      this.db
        .transaction(() => {
          let n = 0;
          let bytes = 0;
          for (const id of ids) {
            const v = sel.get(id) as VictimRow | undefined;
            if (!v) continue;
            this.deleteRowInTx(v);
            n++;
            bytes += v.acct;
          }
          if (n) {
            this.acct.incr('outbox_bytes', -bytes);
            this.acct.incr('deleted_uploaded', n);
          }
          return n;
        })
        .immediate(),
    );
  }

  // ---- labels and accounting (their own modules) -----------------------------------------

  setLabels(items: readonly { id: string; label: string }[]): { updated: number; unchanged: number; unknown: string[] } {
    return this.labels.setLabels(items);
  }

  pendingLabels(limit: number): { id: string; label: string; labelledAt: number }[] {
    return this.labels.pendingLabels(limit);
  }

  markLabelsUploaded(items: readonly (string | { id: string; label: string })[]): number {
    return this.labels.markLabelsUploaded(items);
  }

  evictionCounters(): EvictionCounters {
    return this.acct.evictionCounters();
  }

  trackedBytes(): number {
    return this.acct.trackedBytes();
  }

  counts(): OutboxCounts {
    return this.acct.counts();
  }

  recountBytes(): { tracked: number; actual: number } {
    return this.acct.recountBytes();
  }
}

interface Prepared {
  id: string;
  sha: string;
  attrs: string;
  scores: string;
  reasons: string;
}

