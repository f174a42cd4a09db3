// Read-only views of the outbox for `samples ls|stats|export` (the write and sync paths live in
// outbox.ts). Export pages through rows with a keyset cursor so memory stays flat on big outboxes.
//
// ls and export read in (created_at, id) order, which index samples_time_id serves (edge schema
// migration 7): export's keyset (created_at, id) > (?, ?) seeks there and each page costs its
// own rows (plus the rows a filter skips, each walked once over the whole export). Each page is
// its own short read: a slow reader of the output (a pipe) never holds a snapshot open, which
// would keep the WAL from being checkpointed while serve writes.
import { join } from 'node:path';
import { readRegularFile } from '../durable/content-dir.js';
import type { DB } from './db.js';
import type { HomePaths } from './home.js';
import { ROW_BYTES_SQL } from './outbox-accounting.js';
import { type DecodedSampleRow, type SampleRow, SAMPLE_COLS, blobError, decodeSampleRow } from './sample-row.js';

export type SampleState = 'pending' | 'uploaded';

export interface SampleFilter {
  task?: string;
  state?: SampleState;
}

export interface SampleListItem {
  id: string;
  task: string;
  created_at: number;
  state: SampleState;
  pred_label: string | null;
  hard: boolean;
  hard_reasons: string[];
  unseen: boolean;
  unseen_reason: string | null;
  hardness: number;
  label: string | null;
  label_state: string | null;
  payload_kind: string;
  payload_bytes: number;
  dup_count: number;
  kb_version: string | null;
}

/**
 * A task with at most this many rows is read through its own index (task, payload_sha) and
 * sorted, not found by walking samples_time_id. Walking the time index checks every row of the
 * outbox (a table read each) before it has a rare task's few: `samples ls --task T` for a new or
 * absent task at 400k rows took ~0.3 s against ~0.14 s before migration 7, and more with the
 * outbox. Reading k rows by task costs ~k per page (k^2/500 over a whole export): below the
 * outbox's size while k is this small.
 */
export const FEW_TASK_ROWS = 1000;

/** Whether task has at most FEW_TASK_ROWS rows (at most FEW_TASK_ROWS + 1 entries of its index read). */
export function fewTaskRows(db: DB, task: string): boolean {
  return (db.prepare(`SELECT COUNT(*) FROM (SELECT 1 FROM samples WHERE task = ? LIMIT ${FEW_TASK_ROWS + 1})`).pluck().get(task) as number) <= FEW_TASK_ROWS;
}

/** byTask: f.task is read through its own index (fewTaskRows), else checked on the rows walked in time order */
function where(f: SampleFilter, byTask = false): { sql: string; args: string[] } {
  const c: string[] = [];
  const args: string[] = [];
  if (f.task !== undefined) {
    // +task: not through the (task, payload_sha) index, whose rows then need a sort by time
    // (SQLite picks it for task = ?: every export page read all of the task's rows and sorted
    // them); the task is checked on the rows walked in samples_time_id instead. A task of few
    // rows (byTask) is read through that index all the same: see FEW_TASK_ROWS
    c.push(byTask ? 'task = ?' : '+task = ?');
    args.push(f.task);
  }
  // 'pending' as a literal: only then can SQLite use the partial index samples_pending_time
  // (schema migration 6); uploaded rows have no index on state and are read from the table
  if (f.state === 'pending') c.push(`state = 'pending'`);
  else if (f.state !== undefined) {
    c.push('state = ?');
    args.push(f.state);
  }
  return { sql: c.length ? `WHERE ${c.join(' AND ')}` : '', args };
}

/** Newest first. */
export function listSamples(db: DB, f: SampleFilter & { limit: number }): SampleListItem[] {
  const w = where(f, f.task !== undefined && fewTaskRows(db, f.task));
  const rows = db
    .prepare(
      `SELECT id, task, created_at, state, pred_label, hard, hard_reasons, unseen, unseen_reason, hardness, label, label_state,
         payload_kind, payload_bytes, dup_count, CAST(kb_version AS TEXT) AS kb_version
       FROM samples ${w.sql} ORDER BY created_at DESC, id DESC LIMIT ?`,
    )
    .all(...w.args, f.limit) as (Omit<SampleListItem, 'hard' | 'unseen' | 'hard_reasons'> & { hard: number; unseen: number; hard_reasons: string })[];
  return rows.map((r) => ({ ...r, hard: !!r.hard, unseen: !!r.unseen, hard_reasons: JSON.parse(r.hard_reasons) }));
}

export interface TaskStats {
  task: string;
  samples: number;
  pending: number;
  uploaded: number;
  hard: number;
  unseen: number;
  labelled: number;
  duplicates: number;
  bytes: number;
  evicted: number;
}

export interface SampleStats {
  tasks: TaskStats[];
  /** why samples were logged: hard-example filter names and unseen reasons, per task */
  reasons: { task: string; kind: 'hard' | 'unseen'; reason: string; samples: number }[];
}

export function sampleStats(db: DB): SampleStats {
  // NOT INDEXED: read the table in its own order and group in a temp B-tree. For GROUP BY task
  // SQLite otherwise walks the (task, payload_sha) index and fetches each row from it: rows in
  // hash order, a random page per row (300k rows: ~2.5 s for these counts, ~1 s from the table)
  const tasks = db
    .prepare(
      `SELECT task, COUNT(*) AS samples, SUM(state = 'pending') AS pending, SUM(state = 'uploaded') AS uploaded,
         SUM(hard) AS hard, SUM(unseen) AS unseen, SUM(label IS NOT NULL) AS labelled, SUM(dup_count) AS duplicates,
         SUM(${ROW_BYTES_SQL}) AS bytes
       FROM samples NOT INDEXED GROUP BY task ORDER BY task`,
    )
    .all() as Omit<TaskStats, 'evicted'>[];
  const evicted = new Map(
    (db.prepare(`SELECT substr(key, 14) AS task, CAST(value AS INTEGER) AS n FROM kv WHERE key LIKE 'evicted_task:%'`).all() as { task: string; n: number }[]).map((r) => [r.task, r.n]),
  );
  const out: TaskStats[] = tasks.map((t) => ({ ...t, evicted: evicted.get(t.task) ?? 0 }));
  for (const [task, n] of evicted) if (!tasks.some((t) => t.task === task)) out.push({ task, samples: 0, pending: 0, uploaded: 0, hard: 0, unseen: 0, labelled: 0, duplicates: 0, bytes: 0, evicted: n });
  out.sort((a, b) => (a.task < b.task ? -1 : a.task > b.task ? 1 : 0));
  const reasons = db
    .prepare(
      `SELECT task, 'hard' AS kind, j.value AS reason, COUNT(*) AS samples FROM samples NOT INDEXED, json_each(samples.hard_reasons) AS j GROUP BY task, j.value
       UNION ALL
       SELECT task, 'unseen' AS kind, unseen_reason AS reason, COUNT(*) AS samples FROM samples NOT INDEXED WHERE unseen = 1 GROUP BY task, unseen_reason
       ORDER BY task, kind, samples DESC`,
    )
    .all() as SampleStats['reasons'];
  return { tasks: out, reasons: reasons.map((r) => ({ ...r, reason: r.reason ?? 'unknown' })) };
}

/** One exported sample (the decoded row without its payload columns): f32 payloads as an x array, others base64. */
export type ExportRecord = Omit<DecodedSampleRow, 'payload' | 'payload_bytes'> & {
  x?: number[];
  payload_b64?: string;
  payload_error?: string;
};

function toExport(r: SampleRow, paths: HomePaths): ExportRecord {
  // the payload columns stay out of the record: it carries the payload itself as x or payload_b64
  const { payload: _inline, payload_bytes: _bytes, ...row } = decodeSampleRow(r);
  const rec: ExportRecord = row;
  let payload: Buffer;
  try {
    payload = r.payload ?? readRegularFile(join(paths.blobs, r.payload_sha));
  } catch (e) {
    rec.payload_error = blobError(r.payload_sha, e);
    return rec;
  }
  if (r.payload_kind === 'f32' && payload.length % 4 === 0) {
    // copy: a row's Buffer may not be 4-byte aligned
    const f = new Float32Array(payload.length / 4);
    Buffer.from(f.buffer).set(payload);
    rec.x = Array.from(f);
  } else rec.payload_b64 = payload.toString('base64');
  return rec;
}

/**
 * One page of export: the rows after the cursor (created_at, id), bound as (...args, t, id, n);
 * byTask as for where().
 * The row value, not created_at > ? OR (created_at = ? AND id > ?): SQLite seeks an index with
 * it (the OR form scanned from the start of the index or the table on every page).
 */
export function exportPageQuery(f: SampleFilter, byTask = false): { sql: string; args: string[] } {
  const w = where(f, byTask);
  const cond = w.sql ? `${w.sql} AND` : 'WHERE';
  return { sql: `SELECT ${SAMPLE_COLS} FROM samples ${cond} (created_at, id) > (?, ?) ORDER BY created_at, id LIMIT ?`, args: w.args };
}

/** Samples oldest first (created_at, then id), in pages of `page` rows. */
export function* exportSamples(db: DB, paths: HomePaths, f: SampleFilter, page = 500): Generator<ExportRecord> {
  // the plan is chosen once: a task that grows past FEW_TASK_ROWS meanwhile is still read right
  const q = exportPageQuery(f, f.task !== undefined && fewTaskRows(db, f.task));
  const stmt = db.prepare(q.sql);
  let t = -1;
  let id = '';
  for (;;) {
    const rows = stmt.all(...q.args, t, id, page) as SampleRow[];
    for (const r of rows) yield toExport(r, paths);
    if (rows.length < page) return;
    const last = rows[rows.length - 1];
    t = last.created_at;
    id = last.id;
  }
}
