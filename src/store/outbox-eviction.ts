// The outbox's eviction policy: over quota, rows are deleted in value order (indexes
// samples_evict_done and samples_evict_value, schema migration 6): fully uploaded first, then
// pending ones unlabelled before labelled, lowest hardness first, oldest first. A just-logged
// sample can itself be the least valuable; it is then reported evicted (not logged). Every
// eviction is counted in kv and in an events row.
import type BetterSqlite3 from 'better-sqlite3';
import type { DB } from './db.js';
import { type EvictionCounters, type OutboxAccounting, ROW_BYTES_SQL } from './outbox-accounting.js';

/** Eviction rounds closer than this to the previous one are merged into its events row. */
const EVICT_EVENT_MERGE_MS = 60_000;
/** Sample ids listed per eviction event (the counters are exact; the list is for a look). */
const EVICT_EVENT_IDS = 200;

/** A row that still needs an upload (the sample or its label): evicted after every other one. */
const NEEDS_UPLOAD_SQL = `(state = 'pending' OR label_state IS 'pending')`;
/**
 * Eviction order within each of the two groups: the key of indexes samples_evict_done (rows
 * needing no upload) and samples_evict_value (all rows); schema migration 6.
 */
const VALUE_ORDER_SQL = `(label IS NOT NULL), hardness, created_at`;

/** A row chosen for deletion, with what its deletion needs (blob release, accounting). */
export interface VictimRow {
  id: string;
  task: string;
  payload_sha: string;
  in_blob: number;
  needs_upload: number;
  labelled: number;
  acct: number;
}

export class Eviction {
  private readonly victimsDone: BetterSqlite3.Statement;
  private readonly victimsAll: BetterSqlite3.Statement;
  private readonly event: BetterSqlite3.Statement;
  private readonly lastEvent: BetterSqlite3.Statement;
  private readonly updEvent: BetterSqlite3.Statement;

  constructor(
    db: DB,
    private readonly acct: OutboxAccounting,
    /** delete one row (and release its blob); inside the running write transaction */
    private readonly deleteRow: (v: VictimRow) => void,
  ) {
    const cols = `id, task, payload_sha, payload IS NULL AS in_blob, ${NEEDS_UPLOAD_SQL} AS needs_upload, (label IS NOT NULL) AS labelled, ${ROW_BYTES_SQL} AS acct`;
    // the WHERE is the partial index's own, word for word (else SQLite does not use it)
    this.victimsDone = db.prepare(`SELECT ${cols} FROM samples WHERE NOT ${NEEDS_UPLOAD_SQL} ORDER BY ${VALUE_ORDER_SQL} LIMIT ?`);
    this.victimsAll = db.prepare(`SELECT ${cols} FROM samples ORDER BY ${VALUE_ORDER_SQL} LIMIT ?`);
    this.event = db.prepare('INSERT INTO events (ts, kind, detail) VALUES (?, ?, ?)');
    this.lastEvent = db.prepare('SELECT id, ts, kind, detail FROM events ORDER BY id DESC LIMIT 1');
    this.updEvent = db.prepare('UPDATE events SET detail = ? WHERE id = ?');
  }

  /** Over quota after a write: delete rows until within it. Runs inside the write transaction; returns the ids deleted. */
  enforceQuota(): Set<string> {
    if (this.acct.maxBytes <= 0) return new Set();
    const total = this.acct.trackedBytes();
    return total > this.acct.maxBytes ? this.evict(total - this.acct.maxBytes) : new Set();
  }

  /** Delete rows in value order until `need` bytes are freed. */
  private evict(need: number): Set<string> {
    const gone = new Set<string>();
    const c: EvictionCounters = { count: 0, bytes: 0, uploaded: 0, pending: 0, labelled: 0 };
    const byTask = new Map<string, number>();
    while (c.bytes < need) {
      // rows needing no upload first; when none is left, all rows need upload and
      // samples_evict_value walks them in order (one order with the first group ahead)
      let rows = this.victimsDone.all(256) as VictimRow[];
      if (rows.length === 0) rows = this.victimsAll.all(256) as VictimRow[];
      if (rows.length === 0) break;
      for (const v of rows) {
        if (c.bytes >= need) break;
        this.deleteRow(v);
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
      this.acct.incr('outbox_bytes', -c.bytes);
      this.acct.incr('evicted_count', c.count);
      this.acct.incr('evicted_bytes', c.bytes);
      this.acct.incr('evicted_uploaded', c.uploaded);
      this.acct.incr('evicted_pending', c.pending);
      this.acct.incr('evicted_labelled', c.labelled);
      for (const [t, n] of byTask) this.acct.incr(`evicted_task:${t}`, n);
      this.recordEvent(c, byTask, [...gone]);
    }
    return gone;
  }

  /**
   * One events row per eviction round, except that rounds within EVICT_EVENT_MERGE_MS of the
   * previous one (and with no other event in between) are merged into it: at steady state over
   * quota every batch evicts, and a row per batch would grow the events table without bound.
   * The kv counters stay exact; an event lists at most EVICT_EVENT_IDS sample ids.
   */
  private recordEvent(c: EvictionCounters, byTask: Map<string, number>, ids: string[]): void {
    const now = Date.now();
    const maxBytes = this.acct.maxBytes;
    const last = this.lastEvent.get() as { id: number; ts: number; kind: string; detail: string } | undefined;
    if (last && last.kind === 'outbox_evicted' && now - last.ts < EVICT_EVENT_MERGE_MS) {
      const d = JSON.parse(last.detail) as EvictionCounters & { by_task: Record<string, number>; ids: string[]; rounds?: number; last_ts?: number; max_bytes: number };
      for (const k of ['count', 'bytes', 'uploaded', 'pending', 'labelled'] as const) d[k] = (d[k] ?? 0) + c[k];
      for (const [t, n] of byTask) d.by_task[t] = (d.by_task[t] ?? 0) + n;
      d.ids = d.ids.concat(ids).slice(0, EVICT_EVENT_IDS);
      d.rounds = (d.rounds ?? 1) + 1;
      d.last_ts = now;
      d.max_bytes = maxBytes;
      this.updEvent.run(JSON.stringify(d), last.id);
      return;
    }
    this.event.run(now, 'outbox_evicted', JSON.stringify({ ...c, max_bytes: maxBytes, by_task: Object.fromEntries(byTask), ids: ids.slice(0, EVICT_EVENT_IDS), rounds: 1 }));
  }
}
