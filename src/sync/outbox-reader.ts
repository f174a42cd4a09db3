// Read side of the outbox for push, tuned for big backlogs (an adapter over the samples table
// of src/store; writes still go through Outbox.markUploaded / deleteUploaded).
//
// Why not a (created_at, id) cursor: a WHERE (created_at > ? OR (created_at = ? AND id > ?)) with
// ORDER BY created_at, id is not served by any index, so SQLite sorts every pending row -
// payloads included - in a temp B-tree for each batch: O(backlog) time and memory per batch,
// O(backlog^2) per run. Here the cursor is (created_at, rowid): index samples_pending_time
// (created_at) WHERE state = 'pending' (edge schema migration 6; before it samples_state_time
// on (state, created_at)) carries the rowid as its last column, so the row-value comparison and
// the ORDER BY are both answered by the index and each batch costs only its own rows. A row
// logged during the run behind the cursor is sent by the next run.
//
// The wire JSON of a sample is assembled from the stored column text (attrs, scores and
// hard_reasons are JSON already, written by JSON.stringify), not parsed and re-serialised.
// It is written straight into one Buffer sized up front: the metadata around each payload
// as UTF-8, the base64 of the payload as latin1 (pure ASCII, a byte copy). Joining ~200 MB of
// strings and UTF-8-encoding the result took as long as reading the rows from SQLite.
//
// Frames are read by framesBody (what push sends): the body of a batch is produced page by page
// WHILE it is sent, so reading overlaps the socket and the KB's ingest instead of taking turns
// with them. Each page is read by one or two queries (FramesPageQueries) whose rows carry the
// record's meta JSON built by SQLite (FRAME_META_SQL: the same text frameMeta builds in JS) and
// the payload from sample_payloads:
// three values per row cross into JS instead of seventeen (50k x 3 KB: reading 1.5 s -> 0.3-0.5 s),
// and each page is written into one Buffer (no per-record head Buffers, no concat of a batch).
import type BetterSqlite3 from 'better-sqlite3';
import type { DB } from '../store/db.js';
import { NO_TASK, PAYLOAD_JOIN, PAYLOAD_JOINED, PAYLOAD_SQL, type SampleRow } from '../store/sample-row.js';
import { FRAMES_MAGIC, FRAMES_END, assembleFrames, encodeRecordHead, recordSize, writeRecord } from '../format/sample-frames.js';

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

/** local-<n> versions are not KB versions: the KB only knows its own numbering */
const kbVersionJson = (v: string | null) => (v !== null && /^\d+$/.test(v) ? v : 'null');

/**
 * The frames record meta of a row (the UploadSample fields except id and payload_b64); `sent`:
 * whether its payload goes in the record (else payload_kind "none" and no preprocessing).
 */
export function frameMeta(r: Omit<Row, 'rid' | 'payload'>, sent: boolean): string {
  return (
    `{"task":${r.task === NO_TASK ? 'null' : JSON.stringify(r.task)},"attrs":${r.attrs || '{}'},"payload_kind":${sent ? JSON.stringify(r.payload_kind) : '"none"'},` +
    `"payload_sha":${JSON.stringify(r.payload_sha)},"pred_label":${str(r.pred_label)},"scores":${r.scores || '[]'},` +
    `"hard":${r.hard ? 'true' : 'false'},"hard_reasons":${r.hard_reasons || '[]'},"unseen":${r.unseen ? 'true' : 'false'},` +
    `"unseen_reason":${str(r.unseen_reason)},"kb_version":${kbVersionJson(r.kb_version)},"created_at":${r.created_at}` +
    (sent && r.preprocessing ? `,"preprocessing":${r.preprocessing}` : '') +
    (r.label !== null ? `,"label":${JSON.stringify(r.label)}}` : '}')
  );
}

/**
 * frameMeta(row, true) computed by SQLite, on a query FROM samples. json_quote and JSON.stringify
 * escape the same characters where it matters (quote, backslash, control characters; both
 * leave other Unicode as is), and the KB parses the text, so equal JSON is what counts (the
 * edge-store-frames test compares both builders on awkward rows). kb_version: an integer >= 0
 * is the only value the JS regex lets through (INTEGER affinity stores digit strings as integers).
 * concat() (SQLite 3.44+; better-sqlite3 bundles its SQLite) writes the text once: a chain of
 * || copies the growing string at each of its ~30 steps (50k rows: 95 -> 75 ms). A NULL
 * argument adds nothing (the CASEs without ELSE).
 */
export const FRAME_META_SQL = `concat('{"task":', CASE WHEN task = ${sqlString(NO_TASK)} THEN 'null' ELSE json_quote(task) END,
  ',"attrs":', COALESCE(NULLIF(attrs, ''), '{}'), ',"payload_kind":', json_quote(payload_kind),
  ',"payload_sha":', json_quote(payload_sha), ',"pred_label":', COALESCE(json_quote(pred_label), 'null'),
  ',"scores":', COALESCE(NULLIF(scores, ''), '[]'), ',"hard":', CASE WHEN hard THEN 'true' ELSE 'false' END,
  ',"hard_reasons":', COALESCE(NULLIF(hard_reasons, ''), '[]'), ',"unseen":', CASE WHEN unseen THEN 'true' ELSE 'false' END,
  ',"unseen_reason":', COALESCE(json_quote(unseen_reason), 'null'),
  ',"kb_version":', CASE WHEN typeof(kb_version) = 'integer' AND kb_version >= 0 THEN kb_version ELSE 'null' END,
  ',"created_at":', created_at,
  CASE WHEN preprocessing IS NOT NULL AND preprocessing <> '' THEN ',"preprocessing":' || preprocessing END,
  CASE WHEN label IS NOT NULL THEN ',"label":' || json_quote(label) END, '}')`;

function sqlString(v: string): string {
  return `'${v.replace(/'/g, "''")}'`;
}

/** What one frames batch sent, filled while its body is produced (see PushReader.framesBody). */
export interface FramesSent {
  ids: string[];
  /** the samples' rowids, in the order of ids: acks are marked by rowid (Outbox.markUploadedRows) */
  rowids: number[];
  /** labels carried by the samples (for the label CAS of the marking) */
  labels: Record<string, string>;
  /** samples whose blob file is missing: sent with payload_kind 'none' */
  missingBlobs: number;
  /** uncompressed body bytes produced */
  bodyBytes: number;
  /** the cursor after the last sample read; set when the body is complete */
  end: string | null;
}

export const newFramesSent = (): FramesSent => ({ ids: [], rowids: [], labels: {}, missingBlobs: 0, bodyBytes: 0, end: null });

// A page of framesBody is read through a memory mapping of edge.db (PRAGMA mmap_size) that is
// there only while the page's queries run: mapped before, unmapped after (FramesPageQueries).
// Through the mapping SQLite reads a page where the kernel keeps it instead of a pread() that
// copies each 4 KB page into its cache: one page per 3 KB payload, and that syscall path was
// ~30 % of the reader's time (perf: _copy_to_iter alone 13 %). 50k x 3 KB in-process,
// interleaved with the reader before, load ~3.7: CPU 561 -> 436 ms, wall 823 -> 604 ms.
// Why per page: a mapping that stayed on for the push (73f45a8, reverted in abe105a) put the
// pages every statement touched, the marking's too, into the RSS: 386 MB on the 1 GB backlog
// (aim 200), and still 192-232 vs 160 MB when remapped every 16 MB of body. Mapped per page,
// the 1 GB push peaks at 156-172 MB, as without (160-165). The risk of a mapping: a storage
// failure under it is a SIGBUS instead of an I/O error (the run dies like kill -9; only acked
// samples were marked, the rest goes again), now only while a page is read. 64-bit only.
const PAGE_MMAP_BYTES = process.arch === 'x64' || process.arch === 'arm64' ? 1 << 30 : 0;

// Nor records built by SQLite, decided by measurement too: one query per run of inline rows
// returning the run's finished records as ONE blob (unhex(printf(..)) || id || meta || payload,
// group_concat, CAST AS BLOB: 50k Buffers and their copy into the chunk gone, GC 285 -> 130 ms
// in a profile) cost more CPU than it saved: the concatenations copy each payload three times
// inside SQLite and the page needs a scan query first (limits, policy, blob rows). 5 passes
// over 50k x 3 KB in-process, interleaved: 5.05 / 5.18 s CPU vs 4.47 / 4.69 s for this reader.
// SQLite's own floor here is ~0.3 s per 50k (payload pages ~0.15 s, lookups by id, meta 0.07 s).

/** rows per query of framesBody: ~0.8 MB of 3 KB samples, one chunk of the body */
const FRAMES_PAGE = 256;
/** a cursor bound past every row */
const NO_BOUND: [number, number] = [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER];
const parseCursor = (c: string): [number, number] => c.split(':').map(Number) as [number, number];
// column positions of the framesPage rows (raw mode: arrays, no object per row)
const F_RID = 0,
  F_ID = 1,
  F_CREATED = 2,
  F_LABEL = 3,
  F_TASK = 4,
  F_PAYLOAD = 5,
  F_BYTES = 6,
  F_META = 7;

/**
 * The rows of one framesBody page: up to `n` pending rows after (t, rid), up to (ut, ur) and
 * rowid lastRowid, in (created_at, rowid) order, as raw arrays (F_* columns).
 *
 * Two queries, because SQLite seeks samples_pending_time on created_at but not on the
 * rowid after it for a row-value bound: `(created_at, rowid) > (t, rid)` starts at the first
 * entry of time t and filters its way to rid. A batch of samples logged together shares one
 * created_at (logBatch stamps it once), so each page walked past every row of its time sent by
 * the pages before it: 2 000 rows a time in bench:sync, ~1 000 skipped per 256-row page (keys
 * of 50k rows: 55 -> 31 ms). `created_at = t AND rowid > rid` seeks to the row; the rest of
 * the page then starts at the next time. Both run through a mapping of the file that ends
 * with them (PAGE_MMAP_BYTES).
 */
interface FramesPageQueries {
  read(t: number, rid: number, ut: number, ur: number, lastRowid: number, n: number): unknown[][];
}

const framesPageSql = (where: string, order: string) =>
  `SELECT samples.rowid, samples.id, created_at, label, task, ${PAYLOAD_JOINED}, payload_bytes, ${FRAME_META_SQL}
   FROM samples ${PAYLOAD_JOIN} WHERE state = 'pending' AND ${where} AND (created_at, samples.rowid) <= (?, ?) AND samples.rowid <= ?
   ORDER BY ${order} LIMIT ?`;
/** the two queries of a page (see FramesPageQueries): the rest of time t after rid, then later times */
export const FRAMES_PAGE_SQL = {
  sameTime: framesPageSql('created_at = ? AND samples.rowid > ?', 'samples.rowid'),
  later: framesPageSql('created_at > ?', 'created_at, samples.rowid'),
};

function framesPageQueries(db: DB): FramesPageQueries {
  const sameTime = db.prepare(FRAMES_PAGE_SQL.sameTime).raw();
  const later = db.prepare(FRAMES_PAGE_SQL.later).raw();
  // a connection someone set a mapping on keeps its own
  const base = db.pragma('mmap_size', { simple: true }) as number;
  const mapOn = PAGE_MMAP_BYTES > 0 && base === 0 ? db.prepare(`PRAGMA mmap_size = ${PAGE_MMAP_BYTES}`) : null;
  const mapOff = mapOn ? db.prepare('PRAGMA mmap_size = 0') : null;
  return {
    read(t, rid, ut, ur, lastRowid, n) {
      if (mapOn) mapOn.get();
      try {
        const rows = sameTime.all(t, rid, ut, ur, lastRowid, n) as unknown[][];
        if (rows.length === n) return rows;
        const more = later.all(t, ut, ur, lastRowid, n - rows.length) as unknown[][];
        return rows.length === 0 ? more : rows.concat(more);
      } finally {
        mapOff?.get(); // unmapped: the pages read leave the RSS, and no other statement reads through it
      }
    },
  };
}

/** Where the reader gets a payload the page query did not carry (blobs/<sha>): Outbox.readPayload. */
export interface PayloadReader {
  readPayload(row: { payload: Buffer | null; payload_sha: string }): Buffer;
}

export class PushReader {
  private readonly page: [BetterSqlite3.Statement, BetterSqlite3.Statement];
  private framesPages: FramesPageQueries | null = null;
  private oneRow: BetterSqlite3.Statement | null = null;
  private anyAfter: [BetterSqlite3.Statement, BetterSqlite3.Statement] | null = null;
  /** the SELECT of a Row */
  private readonly columns = `SELECT rowid AS rid, id, task, attrs, payload_kind, payload_sha, payload_bytes, ${PAYLOAD_SQL} AS payload, pred_label, scores, hard, hard_reasons,
         unseen, unseen_reason, CAST(kb_version AS TEXT) AS kb_version, created_at, label, preprocessing`;
  /** rows logged after the run started wait for the next run, so a busy edge's push ends */
  readonly lastRowid: number;

  private readonly db: DB;

  constructor(
    db: DB,
    private readonly outbox: PayloadReader,
    private readonly framing: Framing = 'json',
    /** the run's last rowid when another connection reads for the same run (frames-worker.ts) */
    lastRowid?: number,
  ) {
    this.lastRowid = lastRowid ?? (db.prepare('SELECT COALESCE(MAX(rowid), 0) AS m FROM samples').get() as { m: number }).m;
    this.db = db;
    // the rest of time t after the cursor's rowid, then later times (why two: FramesPageQueries)
    this.page = [
      db.prepare(`${this.columns} FROM samples WHERE state = 'pending' AND created_at = ? AND rowid > ? AND rowid <= ? ORDER BY rowid LIMIT ?`),
      db.prepare(`${this.columns} FROM samples WHERE state = 'pending' AND created_at > ? AND rowid <= ? ORDER BY created_at, rowid LIMIT ?`),
    ];
  }

  /**
   * The next batch after the cursor `after` ('' for the start): at most `limit` samples and `maxBytes`
   * payload bytes (at least one sample); null when nothing is pending past the cursor.
   */
  next(after: string, limit: number, maxBytes: number, sendPayload: (task: string) => boolean): WireBatch | null {
    const [t, rid] = after ? after.split(':').map(Number) : [-1, -1];
    const n = Math.max(1, limit);
    let rows = this.page[0].all(t, rid, this.lastRowid, n) as Row[];
    if (rows.length < n) rows = rows.concat(this.page[1].all(t, this.lastRowid, n - rows.length) as Row[]);
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
      const kbv = kbVersionJson(r.kb_version);
      if (this.framing === 'frames') {
        // the same fields as the JSON sample, minus id and payload_b64 (the record holds them)
        const meta = frameMeta(r, payload !== null);
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

  /**
   * The frames body of the batch after cursor `after`, as chunks (one per page of rows) read
   * while the body is sent: MAGIC, records, END. At most `limit` samples and `maxBytes` payload
   * bytes (at least one sample); or, when `until` is given (a retry), the rows up to that cursor
   * whatever the limits: the attempt that completed first decided the batch. `sent` collects
   * what went into the body (a fresh one per attempt). No statement stays open between two
   * chunks, so no read transaction is held while the body waits on the socket.
   */
  *framesBody(after: string, until: string | null, limit: number, maxBytes: number, sendPayload: (task: string) => boolean, sent: FramesSent): Generator<Buffer> {
    this.framesPages ??= framesPageQueries(this.db);
    const pages = this.framesPages;
    const bounded = until !== null;
    let [t, rid] = after ? parseCursor(after) : [-1, -1];
    const [ut, ur] = until !== null ? parseCursor(until) : NO_BOUND;
    let n = 0;
    let bytes = 0;
    let first = true;
    let full = false;
    const metas: string[] = [];
    const metaLens: number[] = [];
    const ids: string[] = [];
    const payloads: (Buffer | null)[] = [];
    while (!full && (bounded || n < limit)) {
      const rows = pages.read(t, rid, ut, ur, this.lastRowid, bounded ? FRAMES_PAGE : Math.min(FRAMES_PAGE, limit - n));
      if (rows.length === 0) break;
      metas.length = metaLens.length = ids.length = payloads.length = 0;
      let size = first ? FRAMES_MAGIC.length : 0;
      for (const row of rows) {
        const want = sendPayload(row[F_TASK] as string);
        if (!bounded && n > 0 && want && bytes + (row[F_BYTES] as number) > maxBytes) {
          full = true;
          break;
        }
        let payload = want ? (row[F_PAYLOAD] as Buffer | null) : null;
        let meta = row[F_META] as string;
        if (payload === null) {
          // not sent (upload policy), or in blobs/<sha>: the row in full, the meta built in JS
          this.oneRow ??= this.db.prepare(`${this.columns} FROM samples WHERE rowid = ?`);
          const r = this.oneRow.get(row[F_RID]) as Row;
          if (want) {
            try {
              payload = this.outbox.readPayload(r);
            } catch {
              sent.missingBlobs++; // the blob vanished: the metadata still goes, without payload
            }
          }
          meta = frameMeta(r, payload !== null);
        }
        const id = row[F_ID] as string;
        const metaLen = Buffer.byteLength(meta, 'utf8');
        size += recordSize(id.length, metaLen, payload ? payload.length : 0);
        bytes += payload ? payload.length : 0;
        ids.push(id);
        metas.push(meta);
        metaLens.push(metaLen);
        payloads.push(payload);
        sent.ids.push(id);
        sent.rowids.push(row[F_RID] as number);
        const label = row[F_LABEL] as string | null;
        if (label !== null) sent.labels[id] = label;
        t = row[F_CREATED] as number;
        rid = row[F_RID] as number;
        n++;
      }
      if (ids.length === 0) break;
      // the page's records in one Buffer
      const chunk = Buffer.allocUnsafe(size);
      let off = 0;
      if (first) off += FRAMES_MAGIC.copy(chunk, 0);
      first = false;
      for (let i = 0; i < ids.length; i++) off = writeRecord(chunk, off, ids[i], metas[i], metaLens[i], payloads[i]);
      if (off !== size) throw new Error(`frames body: wrote ${off} of ${size} bytes`); // a sizing bug must not send garbage
      sent.bodyBytes += size;
      yield chunk;
    }
    const tail = first ? Buffer.concat([FRAMES_MAGIC, FRAMES_END]) : FRAMES_END;
    sent.bodyBytes += tail.length;
    sent.end = n > 0 ? `${t}:${rid}` : after;
    yield tail;
  }

  /** Is a sample pending after cursor `after`? (an index-only look, no row read) */
  pendingAfter(after: string): boolean {
    const [t, rid] = after ? parseCursor(after) : [-1, -1];
    // two probes for the reason the pages take two queries (FramesPageQueries): one seeks on the
    // rowid within time t instead of walking past the rows of t already sent (~150 us a batch)
    this.anyAfter ??= [
      this.db.prepare(`SELECT 1 FROM samples WHERE state = 'pending' AND created_at = ? AND rowid > ? AND rowid <= ? LIMIT 1`).pluck(),
      this.db.prepare(`SELECT 1 FROM samples WHERE state = 'pending' AND created_at > ? AND rowid <= ? LIMIT 1`).pluck(),
    ];
    return this.anyAfter[0].get(t, rid, this.lastRowid) !== undefined || this.anyAfter[1].get(t, this.lastRowid) !== undefined;
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

export { pendingCounts } from '../store/pending-counts.js';
