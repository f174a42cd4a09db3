// The hard-sample outbox: durable local store of samples waiting to go to the KB.
//
// Write path (infer / serve): logBatch stores a batch in ONE immediate transaction with
// prepared statements. A sample id is a UUIDv7; the same payload for the same task is stored
// once (UNIQUE(task, payload_sha)): the existing row's dup_count goes up and its id is returned.
// Payloads above INLINE_MAX live in blobs/<sha256> (content-addressed, written and fsynced
// before the row commits); smaller ones in table sample_payloads next to their row (schema
// migration 4: marking a sample uploaded then rewrites a small row, not its payload's page). When the commit returns, every sample reported logged survives a
// kill -9 or a power cut (WAL + synchronous=FULL, see db.ts).
//
// Quota: bytes are tracked incrementally in kv 'outbox_bytes' (same transaction as the rows),
// so the check per batch is one point read. Over quota, rows are evicted in value order (index
// samples_evict): fully uploaded first, then pending ones unlabelled before labelled, lowest
// hardness first, oldest first. A just-logged sample can itself be the least valuable; it is
// then reported evicted (not logged). Every eviction is counted in kv and in an events row.
//
// Read path for sync: pendingBatch / markUploaded / deleteUploaded / pendingLabels /
// markLabelsUploaded / counts.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import type { DB } from './db.js';
import { fsyncDir } from '../durable/atomic-write.js';
import { pidAlive } from '../durable/process.js';
import { ContentDir } from '../durable/content-dir.js';
import { SAMPLE_ID_RULE, isSampleId } from '../format/protocol.js';
import type { EdgeConfig, HomePaths } from './home.js';
import { uuidv7 } from './uuid7.js';
import { type DecodedSampleRow, NO_TASK, PAYLOAD_SQL, type SampleRow, SAMPLE_COLS, blobError, decodeSampleRow } from './sample-row.js';

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
}

export interface LogResult {
  sampleId: string;
  /** the payload was already stored for this task; sampleId is the existing row's */
  duplicate: boolean;
  /** the sample was stored and then evicted in the same transaction (the outbox is full of more valuable ones) */
  evicted: boolean;
}

/**
 * A stored sample as pendingBatch returns it: the decoded row, with the payload loaded (from
 * its blob if needed) when it was asked for.
 */
export type OutboxSample = Omit<DecodedSampleRow, 'payload'> & {
  /** null when not requested, or when the blob is missing (payload_error says why) */
  payload: Buffer | null;
  payload_error?: string;
};

export interface PendingBatch {
  samples: OutboxSample[];
  /** pass to the next pendingBatch call to continue after this batch; null when nothing was returned */
  cursor: string | null;
}

export interface OutboxCounts {
  pending: number;
  uploaded: number;
  pendingBytes: number;
  uploadedBytes: number;
  labelsPending: number;
  /** tracked bytes (kv outbox_bytes), what the quota compares */
  bytes: number;
  /** quota in bytes; 0 = unlimited */
  maxBytes: number;
  evicted: EvictionCounters;
  deletedUploaded: number;
}

export interface EvictionCounters {
  count: number;
  bytes: number;
  uploaded: number;
  pending: number;
  labelled: number;
}

/** Eviction rounds closer than this to the previous one are merged into its events row. */
const EVICT_EVENT_MERGE_MS = 60_000;
/** Sample ids listed per eviction event (the counters are exact; the list is for a look). */
const EVICT_EVENT_IDS = 200;

/** Payloads larger than this go to blobs/<sha> instead of the row. */
export const INLINE_MAX = 64 * 1024;

/**
 * Bytes a row is accounted for: payload plus its JSON columns plus a fixed per-row overhead.
 * Computed in SQL from columns that never change after insert, so insert and delete agree.
 */
const ROW_BYTES_SQL = `(payload_bytes + length(attrs) + coalesce(length(scores), 0) + length(hard_reasons) + 64)`;

/** Eviction order: the same expressions as index samples_evict (schema migration 2). */
const EVICT_ORDER_SQL = `(state = 'pending' OR label_state IS 'pending'), (label IS NOT NULL), hardness, created_at`;

interface VictimRow {
  id: string;
  task: string;
  payload_sha: string;
  in_blob: number;
  needs_upload: number;
  labelled: number;
  acct: number;
}

const EMPTY = Buffer.alloc(0);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export class Outbox {
  readonly maxBytes: number;
  private readonly st: {
    upsert: BetterSqlite3.Statement;
    putPayload: BetterSqlite3.Statement;
    kvGet: BetterSqlite3.Statement;
    kvIncr: BetterSqlite3.Statement;
    victims: BetterSqlite3.Statement;
    del: BetterSqlite3.Statement;
    blobRef: BetterSqlite3.Statement;
    event: BetterSqlite3.Statement;
    lastEvent: BetterSqlite3.Statement;
    updEvent: BetterSqlite3.Statement;
  };
  /** blobs renamed aside by deletes in the running transaction: unlinked after commit, restored on rollback */
  private tombstones: { sha: string; path: string }[] = [];
  private blobDirDirty = false;
  private readonly blobs: ContentDir;
  private readonly logTx: (recs: LogRecord[], prepared: Prepared[]) => LogResult[];

  constructor(
    private readonly db: DB,
    private readonly paths: HomePaths,
    cfg: Pick<EdgeConfig, 'outbox'>,
  ) {
    const mb = cfg.outbox?.max_mb ?? 0;
    this.maxBytes = mb > 0 ? Math.floor(mb * 1024 * 1024) : 0;
    this.blobs = new ContentDir(paths.blobs, paths.tmp);
    this.st = {
      upsert: db.prepare(
        `INSERT INTO samples (id, payload_sha, task, attrs, payload_kind, payload, payload_bytes, pred_label, scores,
           hard, hard_reasons, unseen, unseen_reason, hardness, kb_version, created_at, payload_ext)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (task, payload_sha) DO UPDATE SET dup_count = dup_count + 1
         RETURNING id, dup_count, ${ROW_BYTES_SQL} AS acct`,
      ),
      // OR REPLACE: a payload row can only pre-exist if its sample was deleted without the
      // trigger (never by this code); the new sample's bytes are the right ones either way
      putPayload: db.prepare('INSERT OR REPLACE INTO sample_payloads (id, payload) VALUES (?, ?)'),
      kvGet: db.prepare('SELECT value FROM kv WHERE key = ?').pluck(),
      // the increment is bound as an integer string: better-sqlite3 binds JS numbers as REAL,
      // which the TEXT column would keep as "5.0"
      kvIncr: db.prepare(`INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + CAST(excluded.value AS INTEGER)`),
      victims: db.prepare(
        `SELECT id, task, payload_sha, payload IS NULL AS in_blob, (state = 'pending' OR label_state IS 'pending') AS needs_upload,
           (label IS NOT NULL) AS labelled, ${ROW_BYTES_SQL} AS acct
         FROM samples ORDER BY ${EVICT_ORDER_SQL} LIMIT ?`,
      ),
      del: db.prepare('DELETE FROM samples WHERE id = ?'),
      blobRef: db.prepare('SELECT 1 FROM samples WHERE payload_sha = ? AND payload IS NULL LIMIT 1').pluck(),
      event: db.prepare('INSERT INTO events (ts, kind, detail) VALUES (?, ?, ?)'),
      lastEvent: db.prepare('SELECT id, ts, kind, detail FROM events ORDER BY id DESC LIMIT 1'),
      updEvent: db.prepare('UPDATE events SET detail = ? WHERE id = ?'),
    };
    const tx = db.transaction((recs: LogRecord[], prepared: Prepared[]) => this.logInTx(recs, prepared));
    this.logTx = (recs, prepared) => this.withBlobTx(() => tx.immediate(recs, prepared));
    this.recoverTombstones();
  }

  private incr(key: string, by: number): void {
    this.st.kvIncr.run(key, String(Math.round(by)));
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
      if (inBlob) this.ensureBlob(p.sha, r.payload);
      // inline payloads go to sample_payloads (payload_ext 1, the row holds an empty blob): see
      // schema migration 4; NULL still means blobs/<sha>
      const row = this.st.upsert.get(
        p.id, p.sha, r.task ?? NO_TASK, p.attrs, r.payloadKind, inBlob ? null : EMPTY, r.payload.length, r.predLabel, p.scores,
        r.hard ? 1 : 0, p.reasons, r.unseen ? 1 : 0, r.unseenReason, r.hardness, r.kbVersion, now, inBlob ? 0 : 1,
      ) as { id: string; dup_count: number; acct: number };
      const duplicate = row.id !== p.id || row.dup_count > 0;
      if (!duplicate && !inBlob) this.st.putPayload.run(p.id, r.payload);
      if (!duplicate) {
        added++;
        addedBytes += row.acct;
      }
      out[i] = { sampleId: row.id, duplicate, evicted: false };
    }
    if (this.blobDirDirty) {
      fsyncDir(this.paths.blobs);
      this.blobDirDirty = false;
    }
    if (added) {
      this.incr('outbox_bytes', addedBytes);
      this.incr('outbox_logged', added);
    }
    if (this.maxBytes > 0) {
      const total = Number(this.st.kvGet.get('outbox_bytes') ?? 0);
      if (total > this.maxBytes) {
        const gone = this.evictInTx(total - this.maxBytes);
        if (gone.size) for (const o of out) if (gone.has(o.sampleId)) o.evicted = true;
      }
    }
    return out;
  }

  /** Delete rows in value order until `need` bytes are freed. Runs inside a write transaction. */
  private evictInTx(need: number): Set<string> {
    const gone = new Set<string>();
    const c: EvictionCounters = { count: 0, bytes: 0, uploaded: 0, pending: 0, labelled: 0 };
    const byTask = new Map<string, number>();
    while (c.bytes < need) {
      const rows = this.st.victims.all(256) as VictimRow[];
      if (rows.length === 0) break;
      for (const v of rows) {
        if (c.bytes >= need) break;
        this.deleteRowInTx(v);
        gone.add(v.id);
        c.count++;
        c.bytes += v.acct;
        if (v.needs_upload) c.pending++;
        else c.uploaded++;
        if (v.labelled && v.needs_upload) c.labelled++;
        byTask.set(v.task, (byTask.get(v.task) ?? 0) + 1);
      }
    }
    if (c.count) {
      this.incr('outbox_bytes', -c.bytes);
      this.incr('evicted_count', c.count);
      this.incr('evicted_bytes', c.bytes);
      this.incr('evicted_uploaded', c.uploaded);
      this.incr('evicted_pending', c.pending);
      this.incr('evicted_labelled', c.labelled);
      for (const [t, n] of byTask) this.incr(`evicted_task:${t}`, n);
      this.recordEvictionEvent(c, byTask, [...gone]);
    }
    return gone;
  }

  /**
   * One events row per eviction round, except that rounds within EVICT_EVENT_MERGE_MS of the
   * previous one (and with no other event in between) are merged into it: at steady state over
   * quota every batch evicts, and a row per batch would grow the events table without bound.
   * The kv counters stay exact; an event lists at most EVICT_EVENT_IDS sample ids.
   */
  private recordEvictionEvent(c: EvictionCounters, byTask: Map<string, number>, ids: string[]): void {
    const now = Date.now();
    const last = this.st.lastEvent.get() as { id: number; ts: number; kind: string; detail: string } | undefined;
    if (last && last.kind === 'outbox_evicted' && now - last.ts < EVICT_EVENT_MERGE_MS) {
      const d = JSON.parse(last.detail) as EvictionCounters & { by_task: Record<string, number>; ids: string[]; rounds?: number; last_ts?: number; max_bytes: number };
      for (const k of ['count', 'bytes', 'uploaded', 'pending', 'labelled'] as const) d[k] = (d[k] ?? 0) + c[k];
      for (const [t, n] of byTask) d.by_task[t] = (d.by_task[t] ?? 0) + n;
      d.ids = d.ids.concat(ids).slice(0, EVICT_EVENT_IDS);
      d.rounds = (d.rounds ?? 1) + 1;
      d.last_ts = now;
      d.max_bytes = this.maxBytes;
      this.st.updEvent.run(JSON.stringify(d), last.id);
      return;
    }
    this.st.event.run(
      now,
      'outbox_evicted',
      JSON.stringify({ ...c, max_bytes: this.maxBytes, by_task: Object.fromEntries(byTask), ids: ids.slice(0, EVICT_EVENT_IDS), rounds: 1 }),
    );
  }

  private deleteRowInTx(v: Pick<VictimRow, 'id' | 'payload_sha' | 'in_blob'>): void {
    this.st.del.run(v.id);
    if (v.in_blob && !this.st.blobRef.get(v.payload_sha)) this.tombstoneBlob(v.payload_sha);
  }

  // ---- blobs ----------------------------------------------------------------------------

  blobPath(sha: string): string {
    return this.blobs.path(sha);
  }

  /** Write blobs/<sha> unless present (content-dir; the dir fsync comes once before commit). Under the write lock. */
  private ensureBlob(sha: string, bytes: Buffer): void {
    if (this.blobs.putBytes(bytes, { sha, syncDir: false }).created) this.blobDirDirty = true;
  }

  /**
   * The last row referencing a blob is being deleted: move the blob aside (under the write lock,
   * so no concurrent writer can rely on it existing); unlink after commit, restore on rollback.
   */
  private tombstoneBlob(sha: string): void {
    const src = this.blobPath(sha);
    const dst = join(this.paths.tmp, `blobdel-${sha}-${process.pid}`);
    try {
      renameSync(src, dst);
      this.tombstones.push({ sha, path: dst });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }

  /** Run a write transaction that may tombstone blobs; settle the tombstones after it ends. */
  private withBlobTx<T>(fn: () => T): T {
    this.tombstones = [];
    let ok = false;
    try {
      const r = fn();
      ok = true;
      return r;
    } finally {
      const ts = this.tombstones;
      this.tombstones = [];
      this.blobDirDirty = false;
      for (const t of ts) {
        try {
          if (ok) unlinkSync(t.path);
          else renameSync(t.path, this.blobPath(t.sha));
        } catch {
          /* recovered by recoverTombstones on the next open */
        }
      }
    }
  }

  /** Settle blob tombstones and temp files left by crashed writers (their pid no longer runs). */
  private recoverTombstones(): void {
    this.blobs.sweepTemps();
    let names: string[];
    try {
      names = readdirSync(this.paths.tmp);
    } catch {
      return;
    }
    for (const n of names) {
      const m = /^(blobdel)-([0-9a-f]{64})-(\d+)$/.exec(n);
      if (!m || pidAlive(Number(m[3]))) continue;
      const p = join(this.paths.tmp, n);
      try {
        if (m[1] === 'blobdel' && this.db.prepare('SELECT 1 FROM samples WHERE payload_sha = ? AND payload IS NULL LIMIT 1').get(m[2]) && !existsSync(this.blobPath(m[2]))) {
          renameSync(p, this.blobPath(m[2])); // the delete did not commit: the row still needs it
        } else unlinkSync(p);
      } catch {
        /* another process is recovering it */
      }
    }
  }

  /** Payload bytes of a stored row (inline or from its blob). */
  readPayload(row: { payload: Buffer | null; payload_sha: string }): Buffer {
    return row.payload ?? readFileSync(this.blobPath(row.payload_sha));
  }

  // ---- sync -----------------------------------------------------------------------------

  /**
   * Pending samples in (created_at, id) order after `afterCursor`, at most `limit` rows and
   * `maxBytes` payload bytes (always at least one row). Blob payloads are read only for rows in
   * the batch, and not at all for tasks where opts.payload(task) is false (upload policy none).
   */
  pendingBatch(limit: number, maxBytes: number, afterCursor?: string | null, opts: { payload?: (task: string) => boolean } = {}): PendingBatch {
    let t = -1;
    let lastId = '';
    if (afterCursor) {
      const i = afterCursor.indexOf(':');
      t = Number(afterCursor.slice(0, i));
      lastId = afterCursor.slice(i + 1);
      if (i <= 0 || !Number.isFinite(t)) throw new Error(`outbox cursor "${afterCursor}": malformed`);
    }
    const rows = this.db
      .prepare(
        `SELECT ${SAMPLE_COLS} FROM samples WHERE state = 'pending' AND (created_at > ? OR (created_at = ? AND id > ?))
         ORDER BY created_at, id LIMIT ?`,
      )
      .all(t, t, lastId, Math.max(1, limit)) as SampleRow[];
    const samples: OutboxSample[] = [];
    let bytes = 0;
    for (const r of rows) {
      const want = opts.payload ? opts.payload(r.task) : true;
      if (samples.length > 0 && want && bytes + r.payload_bytes > maxBytes) break;
      if (want) bytes += r.payload_bytes;
      samples.push(this.toSample(r, want));
    }
    const last = samples[samples.length - 1];
    return { samples, cursor: last ? `${last.created_at}:${last.id}` : null };
  }

  /** Convert a row; loads the payload (from its blob if needed) when withPayload. */
  toSample(r: SampleRow, withPayload: boolean): OutboxSample {
    const s: OutboxSample = decodeSampleRow(r);
    s.payload = null;
    if (withPayload) {
      try {
        s.payload = this.readPayload(r);
      } catch (e) {
        s.payload_error = blobError(r.payload_sha, e);
      }
    }
    return s;
  }

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
   * Delete uploaded samples (upload policy retention=delete). Rows whose label still waits for
   * upload are kept. Returns the number deleted.
   */
  deleteUploaded(ids: readonly string[]): number {
    const sel = this.db.prepare(
      `SELECT id, payload_sha, payload IS NULL AS in_blob, ${ROW_BYTES_SQL} AS acct FROM samples
       WHERE id = ? AND state = 'uploaded' AND label_state IS NOT 'pending'`,
    );
    return this.withBlobTx(() =>
      this.db
        .transaction(() => {
          let n = 0;
          let bytes = 0;
          for (const id of ids) {
            const v = sel.get(id) as (VictimRow & { acct: number }) | undefined;
            if (!v) continue;
            this.deleteRowInTx(v);
            n++;
            bytes += v.acct;
          }
          if (n) {
            this.incr('outbox_bytes', -bytes);
            this.incr('deleted_uploaded', n);
          }
          return n;
        })
        .immediate(),
    );
  }

  /** Labels waiting for upload whose sample the KB already has, oldest label first. */
  pendingLabels(limit: number): { id: string; label: string; labelledAt: number }[] {
    return (
      this.db
        .prepare(
          `SELECT id, label, labelled_at FROM samples WHERE label_state = 'pending' AND state = 'uploaded'
           ORDER BY labelled_at, id LIMIT ?`,
        )
        .all(Math.max(1, limit)) as { id: string; label: string; labelled_at: number }[]
    ).map((r) => ({ id: r.id, label: r.label, labelledAt: r.labelled_at }));
  }

  /**
   * Mark labels as uploaded. Pass {id, label} pairs as sent so a label changed meanwhile stays
   * pending; a bare id marks whatever label the row holds.
   */
  markLabelsUploaded(items: readonly (string | { id: string; label: string })[]): number {
    const any = this.db.prepare(`UPDATE samples SET label_state = 'uploaded' WHERE id = ? AND label_state = 'pending'`);
    const cas = this.db.prepare(`UPDATE samples SET label_state = 'uploaded' WHERE id = ? AND label_state = 'pending' AND label = ?`);
    return this.db
      .transaction(() => {
        let n = 0;
        for (const it of items) n += typeof it === 'string' ? any.run(it).changes : cas.run(it.id, it.label).changes;
        return n;
      })
      .immediate();
  }

  /** Attach labels (feedback): label_state becomes 'pending'. Returns the ids not found. */
  setLabels(items: readonly { id: string; label: string }[]): { updated: number; unchanged: number; unknown: string[] } {
    const upd = this.db.prepare(
      `UPDATE samples SET label = ?, label_state = 'pending', labelled_at = ? WHERE id = ? AND (label IS NOT ? OR label_state IS NULL)`,
    );
    const exists = this.db.prepare('SELECT 1 FROM samples WHERE id = ?').pluck();
    return this.db
      .transaction(() => {
        const now = Date.now();
        let updated = 0;
        let unchanged = 0;
        const unknown: string[] = [];
        for (const it of items) {
          if (upd.run(it.label, now, it.id, it.label).changes) updated++;
          else if (exists.get(it.id)) unchanged++;
          else unknown.push(it.id);
        }
        if (updated) this.incr('labels_set', updated);
        return { updated, unchanged, unknown };
      })
      .immediate();
  }

  // ---- accounting -----------------------------------------------------------------------

  private kvNum(key: string): number {
    return Number(this.st.kvGet.get(key) ?? 0);
  }

  evictionCounters(): EvictionCounters {
    return {
      count: this.kvNum('evicted_count'),
      bytes: this.kvNum('evicted_bytes'),
      uploaded: this.kvNum('evicted_uploaded'),
      pending: this.kvNum('evicted_pending'),
      labelled: this.kvNum('evicted_labelled'),
    };
  }

  /** Bytes the quota counts (kv outbox_bytes): one point read. */
  trackedBytes(): number {
    return this.kvNum('outbox_bytes');
  }

  counts(): OutboxCounts {
    const rows = this.db
      .prepare(`SELECT state, COUNT(*) AS n, COALESCE(SUM(${ROW_BYTES_SQL}), 0) AS bytes FROM samples GROUP BY state`)
      .all() as { state: string; n: number; bytes: number }[];
    const by = (s: string) => rows.find((r) => r.state === s) ?? { n: 0, bytes: 0 };
    const labelsPending = this.db.prepare(`SELECT COUNT(*) FROM samples WHERE label_state = 'pending'`).pluck().get() as number;
    return {
      pending: by('pending').n,
      uploaded: by('uploaded').n,
      pendingBytes: by('pending').bytes,
      uploadedBytes: by('uploaded').bytes,
      labelsPending,
      bytes: this.trackedBytes(),
      maxBytes: this.maxBytes,
      evicted: this.evictionCounters(),
      deletedUploaded: this.kvNum('deleted_uploaded'),
    };
  }

  /**
   * Recompute the tracked byte count from the rows and correct kv if it drifted (status calls
   * it; an O(rows) scan). The read is one snapshot; the fix re-checks under the write lock.
   */
  recountBytes(): { tracked: number; actual: number } {
    const sum = this.db.prepare(`SELECT COALESCE(SUM(${ROW_BYTES_SQL}), 0) FROM samples`).pluck();
    const read = this.db.transaction(() => ({ tracked: this.kvNum('outbox_bytes'), actual: sum.get() as number }));
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

interface Prepared {
  id: string;
  sha: string;
  attrs: string;
  scores: string;
  reasons: string;
}

// PAYLOAD_SQL is re-exported for bench/sync.ts, which reads payloads the way the outbox does
export { ROW_BYTES_SQL, PAYLOAD_SQL };
