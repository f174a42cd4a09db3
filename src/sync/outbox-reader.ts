// Read side of the outbox for push, tuned for big backlogs (an adapter over the samples table
// of src/store; writes still go through Outbox.markUploaded / deleteUploaded).
//
// Why not a (created_at, id) cursor: a WHERE (created_at > ? OR (created_at = ? AND id > ?)) with
// ORDER BY created_at, id is not served by any index, so SQLite sorts every pending row -
// payloads included - in a temp B-tree for each batch: O(backlog) time and memory per batch,
// O(backlog^2) per run. Here the cursor is (created_at, rowid): index samples_state_time
// (state, created_at) carries the rowid as its last column, so the row-value comparison and
// the ORDER BY are both answered by the index and each batch costs only its own rows. A row
// logged during the run behind the cursor is sent by the next run.
//
// The wire JSON of a sample is assembled from the stored column text (attrs, scores and
// hard_reasons are JSON already, written by JSON.stringify), not parsed and re-serialised.
// It is written straight into one Buffer sized up front: the metadata around each payload
// as UTF-8, the base64 of the payload as latin1 (pure ASCII, a byte copy). Joining ~200 MB of
// strings and UTF-8-encoding the result took as long as reading the rows from SQLite.
import type BetterSqlite3 from 'better-sqlite3';
import type { DB } from '../store/db.js';
import type { Outbox } from '../store/outbox.js';
import { NO_TASK, PAYLOAD_SQL, type SampleRow } from '../store/sample-row.js';
import { assembleFrames, encodeRecordHead } from '../format/sample-frames.js';

/** push body format: the v1 JSON document, or binary sample frames (format/sample-frames.ts) */
export type Framing = 'json' | 'frames';

/** The columns the page query selects (SampleRow's, as stored: no per-row decoding) plus the rowid cursor. */
type Row = Pick<
  SampleRow,
  'id' | 'task' | 'attrs' | 'payload_kind' | 'payload_sha' | 'payload_bytes' | 'payload' | 'pred_label' | 'scores' | 'hard' | 'hard_reasons' | 'unseen' | 'unseen_reason' | 'kb_version' | 'created_at' | 'label'
> & { rid: number; preprocessing: string | null };

export interface WireBatch {
  ids: string[];
  /** labels carried by the samples of this batch (for Outbox.markUploaded's label CAS) */
  labels: Record<string, string>;
  /** the body: the JSON document {"samples":[...]}, or the frames stream */
  json: Buffer;
  /** samples whose blob file is missing: sent with payload_kind 'none' */
  missingBlobs: number;
  payloadBytes: number;
  /** position after the last sample ("created_at:rowid"), for the next call */
  cursor: string;
}

const str = (s: string | null) => (s === null ? 'null' : JSON.stringify(s));

export class PushReader {
  private readonly page: BetterSqlite3.Statement;
  /** rows logged after the run started wait for the next run, so a busy edge's push ends */
  private readonly lastRowid: number;

  constructor(
    db: DB,
    private readonly outbox: Outbox,
    private readonly framing: Framing = 'json',
  ) {
    this.lastRowid = (db.prepare('SELECT COALESCE(MAX(rowid), 0) AS m FROM samples').get() as { m: number }).m;
    this.page = db.prepare(
      `SELECT rowid AS rid, id, task, attrs, payload_kind, payload_sha, payload_bytes, ${PAYLOAD_SQL} AS payload, pred_label, scores, hard, hard_reasons,
         unseen, unseen_reason, CAST(kb_version AS TEXT) AS kb_version, created_at, label, preprocessing
       FROM samples WHERE state = 'pending' AND (created_at, rowid) > (?, ?) AND rowid <= ? ORDER BY created_at, rowid LIMIT ?`,
    );
  }

  /**
   * The next batch after the cursor `after` ('' for the start): at most `limit` samples and `maxBytes`
   * payload bytes (at least one sample); null when nothing is pending past the cursor.
   */
  next(after: string, limit: number, maxBytes: number, sendPayload: (task: string) => boolean): WireBatch | null {
    const [t, rid] = after ? after.split(':').map(Number) : [-1, -1];
    const rows = this.page.all(t, rid, this.lastRowid, Math.max(1, limit)) as Row[];
    if (rows.length === 0) return null;
    const ids: string[] = [];
    const labels: Record<string, string> = {};
    // per sample: metadata before the payload, the payload (or null), metadata after it
    const heads: string[] = [];
    const payloads: (Buffer | null)[] = [];
    const tails: string[] = [];
    let bytes = 0;
    let missingBlobs = 0;
    let last: Row | null = null;
    const frameParts: Buffer[] = [];
    let frameBytes = 0;
    for (const r of rows) {
      const want = sendPayload(r.task);
      if (ids.length > 0 && want && bytes + r.payload_bytes > maxBytes) break;
      let payload: Buffer | null = null;
      if (want) {
        try {
          payload = this.outbox.readPayload(r);
          bytes += payload.length;
        } catch {
          missingBlobs++; // the blob vanished: the metadata still goes, without payload
        }
      }
      ids.push(r.id);
      last = r;
      if (r.label !== null) labels[r.id] = r.label;
      // local-<n> versions are not KB versions: the KB only knows its own numbering
      const kbv = r.kb_version !== null && /^\d+$/.test(r.kb_version) ? r.kb_version : 'null';
      if (this.framing === 'frames') {
        // the same fields as the JSON sample, minus id and payload_b64 (the record holds them)
        const meta =
          `{"task":${r.task === NO_TASK ? 'null' : JSON.stringify(r.task)},"attrs":${r.attrs || '{}'},"payload_kind":${payload ? JSON.stringify(r.payload_kind) : '"none"'},` +
          `"payload_sha":${JSON.stringify(r.payload_sha)},"pred_label":${str(r.pred_label)},"scores":${r.scores || '[]'},` +
          `"hard":${r.hard ? 'true' : 'false'},"hard_reasons":${r.hard_reasons || '[]'},"unseen":${r.unseen ? 'true' : 'false'},` +
          `"unseen_reason":${str(r.unseen_reason)},"kb_version":${kbv},"created_at":${r.created_at}` +
          (payload && r.preprocessing ? `,"preprocessing":${r.preprocessing}` : '') +
          (r.label !== null ? `,"label":${JSON.stringify(r.label)}}` : '}');
        const head = encodeRecordHead(r.id, meta, payload ? payload.length : 0);
        frameParts.push(head);
        frameBytes += head.length;
        if (payload) {
          frameParts.push(payload);
          frameBytes += payload.length;
        }
        continue;
      }
      heads.push(
        `{"id":${JSON.stringify(r.id)},"task":${r.task === NO_TASK ? 'null' : JSON.stringify(r.task)},"attrs":${r.attrs || '{}'},` +
          (payload ? `"payload_kind":${JSON.stringify(r.payload_kind)},"payload_b64":"` : `"payload_kind":"none",`),
      );
      payloads.push(payload);
      tails.push(
        (payload ? '",' : '') +
          `"payload_sha":${JSON.stringify(r.payload_sha)},"pred_label":${str(r.pred_label)},"scores":${r.scores || '[]'},` +
          `"hard":${r.hard ? 'true' : 'false'},"hard_reasons":${r.hard_reasons || '[]'},"unseen":${r.unseen ? 'true' : 'false'},` +
          `"unseen_reason":${str(r.unseen_reason)},"kb_version":${kbv},"created_at":${r.created_at}` +
          // the image's preprocessing goes with its bytes (not without them: it describes them)
          (payload && r.preprocessing ? `,"preprocessing":${r.preprocessing}` : '') +
          (r.label !== null ? `,"label":${JSON.stringify(r.label)}}` : '}'),
      );
    }
    const body = this.framing === 'frames' ? assembleFrames(frameParts, frameBytes) : assemble(heads, payloads, tails);
    return { ids, labels, json: body, missingBlobs, payloadBytes: bytes, cursor: `${last!.created_at}:${last!.rid}` };
  }
}

const OPEN = '{"samples":[';
const CLOSE = ']}';

/** `{"samples":[head0 b64(payload0) tail0,head1 ...]}` written into one exactly sized Buffer. */
function assemble(heads: string[], payloads: (Buffer | null)[], tails: string[]): Buffer {
  let size = OPEN.length + CLOSE.length + Math.max(0, heads.length - 1);
  for (let i = 0; i < heads.length; i++) {
    const p = payloads[i];
    size += Buffer.byteLength(heads[i]) + Buffer.byteLength(tails[i]) + (p ? 4 * Math.ceil(p.length / 3) : 0);
  }
  const out = Buffer.allocUnsafe(size);
  let off = out.write(OPEN, 0, 'latin1');
  for (let i = 0; i < heads.length; i++) {
    if (i > 0) out[off++] = 0x2c; // ','
    off += out.write(heads[i], off, 'utf8');
    const p = payloads[i];
    if (p) off += out.write(p.toString('base64'), off, 'latin1');
    off += out.write(tails[i], off, 'utf8');
  }
  off += out.write(CLOSE, off, 'latin1');
  if (off !== size) throw new Error(`push body: wrote ${off} of ${size} bytes`); // a sizing bug must not send garbage
  return out;
}

/** Cheap counters (index lookups, no payload pages touched) for progress and the summary. */
export function pendingCounts(db: DB): { pending: number; labelsPending: number } {
  const pending = (db.prepare(`SELECT COUNT(*) AS n FROM samples WHERE state = 'pending'`).get() as { n: number }).n;
  const labelsPending = (db.prepare(`SELECT COUNT(*) AS n FROM samples WHERE label_state = 'pending'`).get() as { n: number }).n;
  return { pending, labelsPending };
}
