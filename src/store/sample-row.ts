// One samples row of edge.db as SQLite returns it, and its one decoding. Every reader of the
// outbox (`samples export`, the push reader) selects these columns, so the
// row type and the JSON/flag decoding live here once instead of in each reader.
import { NO_TASK } from '../format/protocol.js';
import type { PayloadKind } from './outbox.js';

export { NO_TASK };

/**
 * The inline payload of a samples row (NULL: in blobs/<sha>), wherever migration 4 put it: in
 * sample_payloads (payload_ext = 1) or in the row itself (rows written before migration 4).
 */
export const PAYLOAD_SQL = `CASE WHEN samples.payload_ext = 1 THEN (SELECT sp.payload FROM sample_payloads sp WHERE sp.id = samples.id) ELSE samples.payload END`;

/**
 * PAYLOAD_SQL as a join, for a query that reads many rows: FROM samples ${PAYLOAD_JOIN}, selecting
 * PAYLOAD_JOINED. The subquery's value is copied into its result (a malloc and a memcpy of every
 * payload); the joined column is read where it lies (50k x 3 KB page queries: CPU 334 -> 303 ms).
 */
export const PAYLOAD_JOIN = `LEFT JOIN sample_payloads sp ON samples.payload_ext = 1 AND sp.id = samples.id`;
export const PAYLOAD_JOINED = `CASE WHEN samples.payload_ext = 1 THEN sp.payload ELSE samples.payload END`;

/** The columns of SampleRow, in its order. */
export const SAMPLE_COLS = `id, task, attrs, payload_kind, payload_sha, payload_bytes, ${PAYLOAD_SQL} AS payload, pred_label, scores, hard, hard_reasons,
  unseen, unseen_reason, hardness, CAST(kb_version AS TEXT) AS kb_version, created_at, state, label, label_state, dup_count`;

/** A samples row as stored: attrs, scores and hard_reasons are JSON text, hard and unseen 0/1. */
export interface SampleRow {
  id: string;
  task: string;
  attrs: string;
  payload_kind: PayloadKind;
  payload_sha: string;
  payload_bytes: number;
  /** the inline payload; null when it lives in blobs/<payload_sha> */
  payload: Buffer | null;
  pred_label: string | null;
  scores: string | null;
  hard: number;
  hard_reasons: string;
  unseen: number;
  unseen_reason: string | null;
  hardness: number;
  kb_version: string | null;
  created_at: number;
  state: 'pending' | 'uploaded';
  label: string | null;
  label_state: 'pending' | 'uploaded' | null;
  dup_count: number;
}

/** A samples row with its JSON columns parsed and its flags as booleans (same keys, same order). */
export type DecodedSampleRow = Omit<SampleRow, 'task' | 'attrs' | 'scores' | 'hard' | 'hard_reasons' | 'unseen'> & {
  task: string | null;
  attrs: Record<string, string>;
  scores: number[];
  hard: boolean;
  hard_reasons: string[];
  unseen: boolean;
};

export function decodeSampleRow(r: SampleRow): DecodedSampleRow {
  return {
    ...r,
    task: r.task === NO_TASK ? null : r.task,
    attrs: JSON.parse(r.attrs),
    scores: r.scores ? JSON.parse(r.scores) : [],
    hard: !!r.hard,
    hard_reasons: JSON.parse(r.hard_reasons),
    unseen: !!r.unseen,
  };
}

/** Why a sample's payload could not be read (its blob file is gone or unreadable). */
export function blobError(sha: string, e: unknown): string {
  return `blob ${sha}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
}
