// Shared KB backend: PostgreSQL metadata (node-postgres, imported only when this backend is
// opened) + a BlobStore for model files and large payloads. Any number of `kb serve` replicas and
// a trainer on another machine use one database; nothing here assumes a single process:
//
// - transactions: KbStore.tx runs on one pooled connection (BEGIN .. COMMIT, re-run on a
//   serialization failure or deadlock); methods that write several rows run in one.
// - version numbers: nextVersion takes a transaction-scoped advisory lock, so two publishers
//   get consecutive numbers (the second waits for the first to commit).
// - channel compare-and-set: lockChannel is SELECT .. FOR UPDATE.
// - training lock: a session advisory lock on a connection of its own; it goes away with the
//   connection when the holder dies.
// - counters: sharded rows, summed on read; a transaction adds to one shard that no other open
//   transaction holds (a transaction advisory lock per shard, tried from a random one), so
//   concurrent pushes never wait for each other's commit unless all COUNTER_SHARDS are held.
//   stats() reads maintained totals, never count(*) over samples.
// - keyset paging: seq comes from a sequence, so a later-numbered push can commit before an
//   earlier-numbered one. Every push holds an advisory lock of its own (keyed by its backend
//   pid: pushes never wait for each other) from before its numbers are drawn until it ends; an
//   ascending page reads only up to a watermark: the sequence's last value, once every push
//   that held its lock then has ended (the page waits for those; new pushes do not wait).
// - durability: synchronous_commit as configured by the server (default on): a push resolves
//   after its commit is flushed.
//
// A connection failure (database down, restarting) becomes StoreUnavailableError: the server
// answers 503 with Retry-After and the edge keeps its samples.
import type { Readable } from 'node:stream';
import type { Pool, PoolClient, QueryResult } from 'pg';
import { NO_TASK, type DeviceReport } from '../format/protocol.js';
import { ReportedError, UsageError, LockedError } from '../errors.js';
import { sha256Hex } from '../format/signature.js';
import type { BlobStore } from './blob-store.js';
import { PG_MIGRATIONS } from './pg-schema.js';
import { META_PUBLIC_KEY, readSigningKey } from './signing-key.js';
import { INLINE_PAYLOAD_MAX, SAMPLE_COLS, json, toChannel, toDevice, toSample, toVersion, type Row } from './store-rows.js';
import {
  IMPORT_ID_PREFIX,
  StoreUnavailableError,
  type ChannelRecord,
  type DeviceRecord,
  type EventRecord,
  type KbStats,
  type KbStore,
  type KbTx,
  type LabelResult,
  type NewSample,
  type PutSamplesResult,
  type RoundWrite,
  type SampleFilter,
  type SampleRecord,
  type SampleWithPayload,
  type TaskRecord,
  type VersionRecord,
} from './store.js';

/** advisory lock keys (first int: this application; second: what is locked) */
const LOCK_APP = 0x5ed1a11;
const LOCK = { migrate: 1, version: 2, train: 3, seq: 4 } as const;
/** first key of the lock each push holds while it draws and writes seq numbers (second: its backend pid) */
const PUSH_LOCK_APP = LOCK_APP + 1;
const COUNTER_SHARDS = 16;
/** first key of the transaction lock on the counter shard a transaction adds to (second: the shard) */
const SHARD_LOCK_APP = LOCK_APP + 2;
const TOTAL_SAMPLES = 'total.samples';
const TOTAL_LABELLED = 'total.labelled';

/** SQLSTATEs worth re-running a transaction for */
const RETRY_CODES = new Set(['40001', '40P01']);
/** error codes meaning "the database is not reachable now" (not: the request is wrong) */
function unavailable(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  const c = err.code ?? '';
  if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', '57P01', '57P02', '57P03', '53300'].includes(c) || c.startsWith('08')) return true;
  return /Connection terminated|connection timeout|Client has encountered a connection error|timeout exceeded when trying to connect/i.test(err.message ?? '');
}

function wrap(e: unknown): never {
  if (e instanceof StoreUnavailableError || e instanceof ReportedError) throw e;
  if (unavailable(e)) throw new StoreUnavailableError(`KB database unavailable: ${(e as Error).message}`);
  throw e;
}

/**
 * A checked-out client whose backend ends under it (pg_terminate_backend, a failover, a
 * restart) emits 'error' as well as failing its query. pg-pool listens only while a client is
 * idle, and an 'error' event nobody listens to ends the process: one terminated transaction
 * took the whole replica down. The failed query carries the error (-> 503); this listener
 * stays until the client goes back to the pool (a broken one is dropped with it).
 */
function listened(c: PoolClient): PoolClient {
  const ignore = () => {};
  c.on('error', ignore);
  const release = c.release;
  c.release = (err?: Error | boolean) => {
    if (!err) c.off('error', ignore);
    release(err);
  };
  return c;
}

export interface PgStoreOptions {
  /** postgres://user@host:port/db (libpq-style; PG* variables fill what it leaves out) */
  url: string;
  blobs: BlobStore;
  /** the private signing key file of a publishing process (kb train / kb publish) */
  signingKey?: string;
  /** pool size (default 10) */
  poolSize?: number;
}

interface Shared {
  pool: Pool;
  blobs: BlobStore;
  opts: PgStoreOptions;
}

/** A query target: the pool (autocommit) or the connection of an open transaction. */
type Q = Pick<PoolClient, 'query'>;

function where(f: SampleFilter, p: unknown[]): string {
  const w: string[] = [];
  const add = (sql: string, v: unknown) => {
    p.push(v);
    w.push(sql.replace('?', `$${p.length}`));
  };
  if (f.device !== undefined) add('device_id = ?', f.device);
  if (f.task !== undefined) add('task = ?', f.task);
  if (f.assigned_task !== undefined) add('assigned_task = ?', f.assigned_task);
  if (f.labelled === true) w.push('label IS NOT NULL');
  if (f.labelled === false) w.push('label IS NULL');
  if (f.split === 'none') w.push('split IS NULL');
  else if (f.split) add('split = ?', f.split);
  if (f.unused) w.push('used_in_round IS NULL');
  if (f.after !== undefined) add('seq > ?', f.after);
  return w.length ? `WHERE ${w.join(' AND ')}` : '';
}

export class PgKbStore implements KbStore {
  readonly blobs: BlobStore;
  readonly describe: string;

  /** the counter shard this transaction holds (see counterShard) */
  private shard: number | null = null;

  private constructor(
    private readonly shared: Shared,
    /** the connection of the open transaction; null: autocommit through the pool */
    private readonly client: PoolClient | null,
  ) {
    this.blobs = shared.blobs;
    const u = new URL(shared.opts.url);
    this.describe = `postgres://${u.host}${u.pathname}`;
  }

  /** Connect, create or migrate the schema (idempotent; concurrent openers migrate once). */
  static async open(opts: PgStoreOptions): Promise<PgKbStore> {
    const { default: pg } = await import('pg');
    const types = {
      // bigint columns hold ms timestamps and sequence numbers: well inside 2^53
      getTypeParser: (oid: number, format?: 'text' | 'binary') => (oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')),
    };
    const pool = new pg.Pool({ connectionString: opts.url, max: opts.poolSize ?? 10, connectionTimeoutMillis: 10_000, types: types as never });
    // an idle connection the server dropped must not crash the process
    pool.on('error', () => {});
    const store = new PgKbStore({ pool, blobs: opts.blobs, opts }, null);
    try {
      await store.migrate();
    } catch (e) {
      await pool.end().catch(() => {});
      if (unavailable(e)) throw new ReportedError(`${store.describe}: cannot connect: ${(e as Error).message}`);
      throw e;
    }
    return store;
  }

  private async migrate(): Promise<void> {
    const c = listened(await this.shared.pool.connect());
    try {
      await c.query('SELECT pg_advisory_lock($1, $2)', [LOCK_APP, LOCK.migrate]);
      try {
        await c.query('CREATE TABLE IF NOT EXISTS kb_schema (version integer NOT NULL)');
        const r = await c.query('SELECT version FROM kb_schema');
        const current: number = r.rows[0]?.version ?? 0;
        if (current > PG_MIGRATIONS.length) throw new ReportedError(`${this.describe}: KB schema version ${current} is newer than this sedna-ll understands (${PG_MIGRATIONS.length})`);
        for (let v = current; v < PG_MIGRATIONS.length; v++) {
          await c.query('BEGIN');
          try {
            await c.query(PG_MIGRATIONS[v]);
            await c.query('DELETE FROM kb_schema');
            await c.query('INSERT INTO kb_schema (version) VALUES ($1)', [v + 1]);
            await c.query('COMMIT');
          } catch (e) {
            await c.query('ROLLBACK');
            throw e;
          }
        }
      } finally {
        await c.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_APP, LOCK.migrate]);
      }
    } finally {
      c.release();
    }
  }

  private get q(): Q {
    return this.client ?? this.shared.pool;
  }

  private async query(sql: string, params: unknown[] = []): Promise<QueryResult<Row>> {
    try {
      return await this.q.query(sql, params);
    } catch (e) {
      wrap(e);
    }
  }

  async close(): Promise<void> {
    if (!this.client) await this.shared.pool.end();
  }

  /** a pooled connection; a database that is down is StoreUnavailableError (503) like any query */
  private async connect(): Promise<PoolClient> {
    let c: PoolClient;
    try {
      c = await this.shared.pool.connect();
    } catch (e) {
      wrap(e);
    }
    return listened(c);
  }

  async tx<T>(fn: (t: KbTx) => Promise<T>): Promise<T> {
    if (this.client) return fn(this); // nested: part of the open transaction
    for (let attempt = 1; ; attempt++) {
      const c = await this.connect();
      let broken = false;
      try {
        await c.query('BEGIN');
        const r = await fn(new PgKbStore(this.shared, c));
        await c.query('COMMIT');
        return r;
      } catch (e) {
        await c.query('ROLLBACK').catch(() => (broken = true));
        if (RETRY_CODES.has((e as { code?: string }).code ?? '') && attempt < 5) continue;
        wrap(e);
      } finally {
        c.release(broken);
      }
    }
  }

  /** fn in a transaction: the open one, or a new one */
  private atomic<T>(fn: (t: PgKbStore) => Promise<T>): Promise<T> {
    return this.client ? fn(this) : this.tx((t) => fn(t as PgKbStore));
  }

  async trainLock(): Promise<() => Promise<void>> {
    // a session lock on a connection of its own, held while training runs (minutes): the
    // server releases it when the connection ends, also when this process is killed
    const { default: pg } = await import('pg');
    const c = new pg.Client({ connectionString: this.shared.opts.url });
    c.on('error', () => {});
    try {
      await c.connect();
      const r = await c.query('SELECT pg_try_advisory_lock($1, $2) AS ok', [LOCK_APP, LOCK.train]);
      if (!r.rows[0].ok) {
        const h = await c.query("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND granted", [LOCK_APP, LOCK.train]);
        throw new LockedError(`another kb train is running (PostgreSQL advisory lock of ${this.describe} held by server pid ${h.rows[0]?.pid ?? '?'})`);
      }
    } catch (e) {
      await c.end().catch(() => {});
      wrap(e);
    }
    return async () => {
      await c.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_APP, LOCK.train]).catch(() => {});
      await c.end().catch(() => {});
    };
  }

  // ---- keys ----
  async publicKey(): Promise<string> {
    const k = await this.getMeta(META_PUBLIC_KEY);
    if (!k) throw new ReportedError(`${this.describe}: the KB has no public key (run "sedna-ll kb init --store ...")`);
    return k;
  }

  async signingKey(): Promise<string> {
    const f = this.shared.opts.signingKey;
    if (!f) throw new UsageError(`${this.describe}: this process holds no signing key: pass --signing-key FILE (or SEDNA_LL_KB_SIGNING_KEY) on the machine that publishes`);
    // a key the edges do not trust would publish versions every edge refuses (signing-key.ts)
    return readSigningKey(f, await this.publicKey());
  }

  keyFiles(): { privateFile: string | null; publicFile: string | null } {
    return { privateFile: this.shared.opts.signingKey ?? null, publicFile: null };
  }

  // ---- settings ----
  async getMeta(key: string): Promise<string | null> {
    const r = await this.query('SELECT value FROM meta WHERE key = $1', [key]);
    return r.rows[0]?.value ?? null;
  }
  async setMeta(key: string, value: string): Promise<void> {
    await this.query('INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [key, value]);
  }

  // ---- devices ----
  async addDevice(d: { id: string; token_hash: string; channel: string }): Promise<DeviceRecord> {
    try {
      await this.q.query('INSERT INTO devices (id, token_hash, channel, created_at) VALUES ($1, $2, $3, $4)', [d.id, d.token_hash, d.channel, Date.now()]);
    } catch (e) {
      if ((e as { code?: string }).code === '23505') throw new Error(`device "${d.id}" already exists`);
      wrap(e);
    }
    return (await this.getDevice(d.id))!;
  }
  async getDevice(id: string): Promise<DeviceRecord | null> {
    const r = await this.query('SELECT * FROM devices WHERE id = $1', [id]);
    return r.rows[0] ? toDevice(r.rows[0]) : null;
  }
  async deviceByTokenHash(tokenHash: string): Promise<(DeviceRecord & { token_hash: string }) | null> {
    const r = await this.query('SELECT * FROM devices WHERE token_hash = $1', [tokenHash]);
    return r.rows[0] ? { ...toDevice(r.rows[0]), token_hash: r.rows[0].token_hash } : null;
  }
  async listDevices(filter: { channel?: string } = {}): Promise<DeviceRecord[]> {
    const r =
      filter.channel !== undefined
        ? await this.query('SELECT * FROM devices WHERE channel = $1 ORDER BY id', [filter.channel])
        : await this.query('SELECT * FROM devices ORDER BY id');
    return r.rows.map(toDevice);
  }
  async revokeDevice(id: string): Promise<boolean> {
    return ((await this.query('UPDATE devices SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2', [Date.now(), id])).rowCount ?? 0) > 0;
  }
  async setDeviceChannel(id: string, channel: string): Promise<boolean> {
    return ((await this.query('UPDATE devices SET channel = $1 WHERE id = $2', [channel, id])).rowCount ?? 0) > 0;
  }
  async touchDevice(id: string, ts: number): Promise<void> {
    await this.query('UPDATE devices SET last_seen = $1 WHERE id = $2', [ts, id]);
  }
  async saveReport(id: string, report: DeviceReport, ts: number): Promise<void> {
    await this.query('UPDATE devices SET last_report = $1, active_version = $2, last_seen = $3 WHERE id = $4', [JSON.stringify(report), report.active_version, ts, id]);
  }

  // ---- samples ----
  async putSamples(owner: string | null, samples: NewSample[]): Promise<PutSamplesResult> {
    // large payloads first: a blob is complete before any row points to it
    const inBlob = new Set<string>();
    for (const s of samples) {
      if (s.payload && s.payload.length > INLINE_PAYLOAD_MAX) {
        await this.blobs.put(s.payload, s.payload_sha);
        inBlob.add(s.id);
      }
    }
    const rejected: { id: string; reason: string }[] = [];
    const rows: Row[] = [];
    const now = Date.now();
    for (const s of samples) {
      // ids of `kb samples import` are derived from the content (see SqliteKbStore.putSamples)
      if (owner !== null && s.id.startsWith(IMPORT_ID_PREFIX)) {
        rejected.push({ id: s.id, reason: `ids starting with "${IMPORT_ID_PREFIX}" are reserved for kb samples import` });
        continue;
      }
      const blob = inBlob.has(s.id);
      const source = s.source ?? (owner === null ? 'import' : 'edge');
      const label = s.label ?? null;
      rows.push({
        ord: rows.length,
        id: s.id,
        source,
        task: s.task ?? NO_TASK,
        attrs: JSON.stringify(s.attrs),
        payload_kind: s.payload_kind,
        payload: blob || !s.payload ? null : s.payload.toString('base64'),
        payload_blob: blob,
        payload_sha: s.payload_sha,
        payload_bytes: s.payload ? s.payload.length : 0,
        pred_label: s.pred_label,
        scores: JSON.stringify(s.scores),
        hard: s.hard,
        hard_reasons: JSON.stringify(s.hard_reasons),
        unseen: s.unseen,
        unseen_reason: s.unseen_reason,
        kb_version: s.kb_version,
        created_at: s.created_at,
        label,
        label_source: label === null ? null : source,
        preprocessing: s.preprocessing ? JSON.stringify(s.preprocessing) : null,
      });
    }
    if (!rows.length) return { stored: [], rejected, inserted: 0, labelled: 0 };
    return this.atomic(async (t) => {
      // held until it ends, taken before any seq is drawn: an ascending page waits for this push
      // before reading past its seqs (see safeSeq); keyed by the connection, so uncontended
      // (and the shared lock of KBs before it, which their ascending pages take exclusive: a
      // replica of the older version keeps paging safely during a rolling upgrade)
      await t.q.query('SELECT pg_advisory_xact_lock($1, pg_backend_pid()), pg_advisory_xact_lock_shared($2, $3)', [PUSH_LOCK_APP, LOCK_APP, LOCK.seq]);
      const ins = await t.q.query(
        `INSERT INTO samples (id, device_id, source, task, attrs, payload_kind, payload, payload_blob, payload_sha, payload_bytes, pred_label, scores,
           hard, hard_reasons, unseen, unseen_reason, kb_version, created_at, received_at, label, label_source, labelled_at, preprocessing)
         SELECT x.id, $2, x.source, x.task, x.attrs, x.payload_kind, decode(x.payload, 'base64'), x.payload_blob, x.payload_sha, x.payload_bytes, x.pred_label, x.scores,
           x.hard, x.hard_reasons, x.unseen, x.unseen_reason, x.kb_version, x.created_at, $3, x.label, x.label_source, CASE WHEN x.label IS NULL THEN NULL ELSE $3::bigint END, x.preprocessing
         FROM jsonb_to_recordset($1::jsonb) AS x(id text, source text, task text, attrs text, payload_kind text, payload text, payload_blob boolean,
           payload_sha text, payload_bytes integer, pred_label text, scores text, hard boolean, hard_reasons text, unseen boolean, unseen_reason text,
           kb_version integer, created_at bigint, label text, label_source text, preprocessing text, ord integer)
         ORDER BY x.ord
         ON CONFLICT (id) DO NOTHING
         RETURNING id, label IS NOT NULL AS labelled`,
        [JSON.stringify(rows), owner, now],
      );
      const fresh = new Set<string>();
      let labelled = 0;
      for (const r of ins.rows) {
        fresh.add(r.id);
        if (r.labelled) labelled++;
      }
      const inserted = fresh.size;
      const stored: string[] = [];
      const again = rows.filter((r) => !fresh.has(r.id));
      const prev = new Map<string, Row>();
      if (again.length) {
        const r = await t.q.query('SELECT id, device_id, label, payload_sha FROM samples WHERE id = ANY($1::text[]) FOR UPDATE', [again.map((x) => x.id)]);
        for (const p of r.rows) prev.set(p.id, p);
      }
      const relabel: { id: string; label: string }[] = [];
      const seen = new Set<string>();
      for (const r of rows) {
        if (fresh.has(r.id) && !seen.has(r.id)) {
          seen.add(r.id);
          stored.push(r.id);
          continue;
        }
        const p = prev.get(r.id) ?? (fresh.has(r.id) ? { device_id: owner, label: r.label, payload_sha: r.payload_sha } : undefined);
        if (!p) throw new Error(`sample ${r.id}: neither inserted nor found`);
        if ((p.device_id ?? null) !== owner) {
          rejected.push({ id: r.id, reason: 'sample id belongs to another device' });
          continue;
        }
        if (p.payload_sha !== r.payload_sha) {
          rejected.push({ id: r.id, reason: 'sample id already stored with a different payload (id collision)' });
          continue;
        }
        if (r.label !== null && p.label === null) {
          relabel.push({ id: r.id, label: r.label });
          p.label = r.label;
          labelled++;
        }
        stored.push(r.id);
      }
      for (const l of relabel) {
        await t.q.query('UPDATE samples SET label = $1, label_source = $2, labelled_at = $3 WHERE id = $4', [l.label, owner === null ? 'import' : 'edge', now, l.id]);
      }
      await t.addCounters({ samples_new: inserted, labelled_new: labelled, [TOTAL_SAMPLES]: inserted, [TOTAL_LABELLED]: labelled });
      return { stored, rejected, inserted, labelled };
    });
  }

  async getSample(id: string): Promise<SampleRecord | null> {
    const r = await this.query(`SELECT ${SAMPLE_COLS} FROM samples WHERE id = $1`, [id]);
    return r.rows[0] ? toSample(r.rows[0]) : null;
  }

  private async payloadOf(r: Row): Promise<Buffer | null> {
    if (r.payload_blob) return readAll(await this.blobs.get(r.payload_sha));
    return r.payload ?? null;
  }

  async samplePayload(id: string): Promise<Buffer | null> {
    const r = await this.query('SELECT payload, payload_blob, payload_sha FROM samples WHERE id = $1', [id]);
    return r.rows[0] ? this.payloadOf(r.rows[0]) : null;
  }

  /**
   * A seq at or below which every push has committed or rolled back. In this order: (1) the
   * sequence's last value L: every number <= L is drawn; (2) the pushes holding their lock now
   * (pg_locks): a push that drew a number <= L took its lock before, so it is listed unless it
   * has ended, and a push's commit is visible before its locks are released; (3) wait for each
   * listed push to end (a shared lock on its key, released by the same statement). New pushes
   * do not wait for this page: each takes a lock of its own (at most one that reuses the
   * connection of a listed push waits for the instant the page holds that key).
   */
  private async safeSeq(): Promise<number> {
    const r = await this.query('SELECT last_value, is_called FROM samples_seq_seq');
    const last = r.rows[0].is_called ? Number(r.rows[0].last_value) : 0;
    const held = await this.query(
      `SELECT pid, classid = $1::int8::oid AS own FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 AND granted
         AND ((classid = $1::int8::oid AND mode = 'ExclusiveLock') OR (classid = $2::int8::oid AND objid = $3::int8::oid AND mode = 'ShareLock'))`,
      [PUSH_LOCK_APP, LOCK_APP, LOCK.seq],
    );
    const own = new Set(held.rows.filter((x) => x.own).map((x) => x.pid as number));
    for (const pid of own) await this.query('SELECT pg_advisory_xact_lock_shared($1, $2)', [PUSH_LOCK_APP, pid]);
    // a push of an older KB version (rolling upgrade) holds only the shared lock: wait for it the
    // old way (the exclusive lock for one statement; new pushes wait that long)
    if (held.rows.some((x) => !x.own && !own.has(x.pid))) await this.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_APP, LOCK.seq]);
    return last;
  }

  async listSamples(filter: SampleFilter = {}): Promise<SampleRecord[]> {
    const p: unknown[] = [];
    let w = where(filter, p);
    const desc = filter.order === 'desc';
    if (!desc && !this.client) {
      p.push(await this.safeSeq());
      w += `${w ? ' AND' : 'WHERE'} seq <= $${p.length}`;
    }
    const limit = filter.limit !== undefined ? ` LIMIT ${Math.max(0, Math.floor(filter.limit))}` : '';
    const r = await this.query(`SELECT ${SAMPLE_COLS} FROM samples ${w} ORDER BY seq ${desc ? 'DESC' : 'ASC'}${limit}`, p);
    return r.rows.map(toSample);
  }

  async countSamples(filter: SampleFilter = {}): Promise<number> {
    const p: unknown[] = [];
    const r = await this.query(`SELECT count(*)::bigint AS n FROM samples ${where(filter, p)}`, p);
    return r.rows[0].n;
  }

  async *scanSamples(filter: SampleFilter = {}, opts: { batch?: number; payloads?: boolean } = {}): AsyncIterable<SampleWithPayload[]> {
    // one REPEATABLE READ snapshot and one server-side cursor, fetched in batches
    const c = await this.connect();
    let broken = false;
    try {
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const p: unknown[] = [];
      const cols = opts.payloads === false ? SAMPLE_COLS : `${SAMPLE_COLS}, payload, payload_blob`;
      await c.query(`DECLARE scan NO SCROLL CURSOR FOR SELECT ${cols} FROM samples ${where({ ...filter, limit: undefined }, p)} ORDER BY seq`, p);
      const batch = Math.max(1, opts.batch ?? 1000);
      for (;;) {
        const r = await c.query(`FETCH ${batch} FROM scan`);
        if (!r.rows.length) break;
        const out: SampleWithPayload[] = [];
        for (const row of r.rows) out.push({ ...toSample(row), payload: opts.payloads === false ? null : await this.payloadOf(row) });
        yield out;
      }
      await c.query('COMMIT');
    } catch (e) {
      broken = true;
      wrap(e);
    } finally {
      // left early (break) or failed: end the transaction before the connection goes back
      if (broken) c.release(true);
      else {
        await c.query('ROLLBACK').catch(() => (broken = true));
        c.release(broken);
      }
    }
  }

  async setLabels(labels: { id: string; label: string }[], source: string, owner: string | null): Promise<LabelResult> {
    const forbidden = Symbol('forbidden');
    const res: LabelResult = { stored: [], unknown: [], forbidden: [], newly_labelled: 0 };
    const now = Date.now();
    try {
      await this.atomic(async (t) => {
        const ids = [...new Set(labels.map((l) => l.id))];
        const r = await t.q.query('SELECT id, device_id, label FROM samples WHERE id = ANY($1::text[]) FOR UPDATE', [ids]);
        const prev = new Map(r.rows.map((x: Row) => [x.id, x]));
        for (const l of labels) {
          const p = prev.get(l.id);
          if (!p) {
            res.unknown.push(l.id);
            continue;
          }
          if (owner !== null && p.device_id !== owner) {
            res.forbidden.push(l.id);
            continue;
          }
          await t.q.query('UPDATE samples SET label = $1, label_source = $2, labelled_at = $3 WHERE id = $4', [l.label, source, now, l.id]);
          if (p.label === null) res.newly_labelled++;
          p.label = l.label;
          res.stored.push(l.id);
        }
        // a device touching another device's sample: refuse the whole batch, store nothing
        if (owner !== null && res.forbidden.length) throw forbidden;
        await t.addCounters({ labelled_new: res.newly_labelled, [TOTAL_LABELLED]: res.newly_labelled });
      });
    } catch (e) {
      if (e !== forbidden) throw e;
      return { stored: [], unknown: res.unknown, forbidden: res.forbidden, newly_labelled: 0 };
    }
    return res;
  }

  async assignSamples(rows: { id: string; assigned_task: string | null; split: 'train' | 'heldout' | null }[]): Promise<void> {
    if (!rows.length) return;
    await this.query(
      `UPDATE samples s SET assigned_task = x.assigned_task, split = x.split
       FROM jsonb_to_recordset($1::jsonb) AS x(id text, assigned_task text, split text) WHERE s.id = x.id`,
      [JSON.stringify(rows)],
    );
  }

  async markSamplesUsed(ids: string[], round: number): Promise<void> {
    if (!ids.length) return;
    await this.query('UPDATE samples SET used_in_round = $1 WHERE id = ANY($2::text[])', [round, ids]);
  }

  async applyRound(w: RoundWrite): Promise<void> {
    await this.atomic(async (t) => {
      for (const task of w.tasks) await t.putTask(task);
      await t.assignSamples(w.assign);
      await t.markSamplesUsed(w.used.ids, w.used.round);
      for (const [k, v] of Object.entries(w.meta)) await t.setMeta(k, v);
      // a counter never goes below 0; added as a delta so concurrent pushes' shards stay
      const cur = await t.counters();
      for (const [k, v] of Object.entries(w.counters)) {
        const before = cur[k] ?? 0;
        await t.addCounters({ [k]: Math.max(0, before + v) - before }, true);
      }
      for (const e of w.events) await t.logEvent(e.kind, e.detail);
    });
  }

  // ---- tasks ----
  async putTask(t: TaskRecord): Promise<void> {
    await this.query(
      `INSERT INTO tasks (id, model_sha, fallback, retired, updated_round, created_at, updated_at, record) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (id) DO UPDATE SET model_sha = excluded.model_sha, fallback = excluded.fallback, retired = excluded.retired,
         updated_round = excluded.updated_round, updated_at = excluded.updated_at, record = excluded.record`,
      [t.id, t.model_sha, !!t.fallback, !!t.retired, t.updated_round, t.created_at, t.updated_at, JSON.stringify(t)],
    );
  }
  async getTask(id: string): Promise<TaskRecord | null> {
    const r = await this.query('SELECT record FROM tasks WHERE id = $1', [id]);
    return r.rows[0] ? (JSON.parse(r.rows[0].record) as TaskRecord) : null;
  }
  async listTasks(opts: { includeRetired?: boolean } = {}): Promise<TaskRecord[]> {
    const r = await this.query(`SELECT record FROM tasks ${opts.includeRetired ? '' : 'WHERE NOT retired'} ORDER BY id`);
    return r.rows.map((x) => JSON.parse(x.record) as TaskRecord);
  }

  // ---- versions and channels ----
  private static VCOLS = 'n, created_at, parent, index_sha, channel, tasks, notes';
  async latestVersion(): Promise<VersionRecord | null> {
    const r = await this.query(`SELECT ${PgKbStore.VCOLS} FROM versions ORDER BY n DESC LIMIT 1`);
    return r.rows[0] ? toVersion(r.rows[0]) : null;
  }
  async getVersion(n: number): Promise<VersionRecord | null> {
    const r = await this.query(`SELECT ${PgKbStore.VCOLS} FROM versions WHERE n = $1`, [n]);
    return r.rows[0] ? toVersion(r.rows[0]) : null;
  }
  async listVersions(): Promise<VersionRecord[]> {
    return (await this.query(`SELECT ${PgKbStore.VCOLS} FROM versions ORDER BY n`)).rows.map(toVersion);
  }
  async nextVersion(): Promise<number> {
    return this.atomic(async (t) => {
      // transaction-scoped: a second publisher waits here until the first commits
      await t.q.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_APP, LOCK.version]);
      const r = await t.q.query('SELECT max(n) AS n FROM versions');
      return (r.rows[0].n ?? 0) + 1;
    });
  }
  async addVersion(v: Omit<VersionRecord, 'index_sha'>, indexBytes: Buffer, sig: string, modelShas: string[]): Promise<VersionRecord> {
    const index_sha = sha256Hex(indexBytes);
    await this.atomic(async (t) => {
      try {
        await t.q.query('INSERT INTO versions (n, created_at, parent, index_sha, channel, tasks, notes, index_bytes, sig) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)', [
          v.n,
          v.created_at,
          v.parent,
          index_sha,
          v.channel,
          v.tasks,
          v.notes ? JSON.stringify(v.notes) : null,
          indexBytes,
          sig,
        ]);
      } catch (e) {
        if ((e as { code?: string }).code === '23505') throw new Error(`KB version ${v.n} already exists`);
        throw e;
      }
      await t.q.query('INSERT INTO version_blobs (sha, version) SELECT s, $2 FROM unnest($1::text[]) AS s ON CONFLICT DO NOTHING', [[...new Set(modelShas)], v.n]);
      if (v.channel) await t.pointChannel(v.channel, v.n);
    });
    return { ...v, index_sha };
  }
  async readVersionIndex(n: number): Promise<{ bytes: Buffer; sig: string } | null> {
    const r = await this.query('SELECT index_bytes, sig FROM versions WHERE n = $1', [n]);
    return r.rows[0] ? { bytes: r.rows[0].index_bytes, sig: r.rows[0].sig } : null;
  }
  async isPublishedBlob(sha: string): Promise<boolean> {
    return (await this.query('SELECT 1 FROM version_blobs WHERE sha = $1 LIMIT 1', [sha])).rows.length > 0;
  }

  async getChannel(name: string): Promise<ChannelRecord | null> {
    const r = await this.query('SELECT * FROM channels WHERE name = $1', [name]);
    return r.rows[0] ? toChannel(r.rows[0]) : null;
  }
  async lockChannel(name: string): Promise<ChannelRecord | null> {
    const r = await this.query(`SELECT * FROM channels WHERE name = $1${this.client ? ' FOR UPDATE' : ''}`, [name]);
    return r.rows[0] ? toChannel(r.rows[0]) : null;
  }
  async listChannels(): Promise<ChannelRecord[]> {
    return (await this.query('SELECT * FROM channels ORDER BY name')).rows.map(toChannel);
  }
  async upsertChannel(name: string, patch: Partial<Omit<ChannelRecord, 'name' | 'updated_at'>>): Promise<ChannelRecord> {
    return this.atomic(async (t) => {
      await t.q.query("INSERT INTO channels (name, updated_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", [name, Date.now()]);
      const cur = toChannel((await t.q.query('SELECT * FROM channels WHERE name = $1 FOR UPDATE', [name])).rows[0]);
      const next: ChannelRecord = { ...cur, ...patch, name, updated_at: Date.now() };
      await t.q.query('UPDATE channels SET version = $2, previous_version = $3, updated_at = $4, config = $5, state = $6 WHERE name = $1', [
        name,
        next.version,
        next.previous_version,
        next.updated_at,
        JSON.stringify(next.config),
        JSON.stringify(next.state),
      ]);
      return next;
    });
  }
  /** inside a transaction: point the channel at version (create it when missing) */
  private async pointChannel(name: string, version: number): Promise<void> {
    await this.q.query("INSERT INTO channels (name, version, previous_version, updated_at) VALUES ($1, $2, NULL, $3) ON CONFLICT (name) DO NOTHING", [name, null, Date.now()]);
    const cur = (await this.q.query('SELECT version FROM channels WHERE name = $1 FOR UPDATE', [name])).rows[0];
    if (cur.version !== version) await this.q.query('UPDATE channels SET version = $2, previous_version = $3, updated_at = $4 WHERE name = $1', [name, version, cur.version, Date.now()]);
  }
  async setChannelVersion(name: string, version: number): Promise<ChannelRecord> {
    await this.atomic(async (t) => {
      if (!(await t.q.query('SELECT 1 FROM versions WHERE n = $1', [version])).rows.length) throw new Error(`KB version ${version} does not exist`);
      await t.pointChannel(name, version);
    });
    return (await this.getChannel(name))!;
  }

  // ---- counters ----
  /** add to sharded counters (zero deltas skipped); internal=true also allows "total.*" names */
  private async addCounters(deltas: Record<string, number>, _internal = false): Promise<void> {
    const names: string[] = [];
    const values: number[] = [];
    for (const [k, v] of Object.entries(deltas)) {
      if (!v) continue;
      names.push(k);
      values.push(v);
    }
    if (!names.length) return;
    // a transaction: the shard lock lasts until its commit (in autocommit it would end with the statement)
    await this.atomic(async (t) => {
      // one shard per transaction: its rows are locked in name order (no deadlock between pushes)
      const shard = await t.counterShard();
      await t.q.query(
        `INSERT INTO counter_shards (name, shard, value) SELECT n, $3, v FROM unnest($1::text[], $2::bigint[]) AS u(n, v) ORDER BY n
         ON CONFLICT (name, shard) DO UPDATE SET value = counter_shards.value + excluded.value`,
        [names, values, shard],
      );
    });
  }
  /**
   * Inside a transaction: the counter shard it adds to, locked until it ends. The first shard no
   * other transaction holds, tried from a random one: a shard row an open transaction updated
   * would make this one wait for that commit (two pushes held open must not wait for each other).
   * All held: wait for the random one.
   */
  private async counterShard(): Promise<number> {
    if (this.shard !== null) return this.shard;
    const start = Math.floor(Math.random() * COUNTER_SHARDS);
    for (let i = 0; i < COUNTER_SHARDS; i++) {
      const s = (start + i) % COUNTER_SHARDS;
      const r = await this.q.query('SELECT pg_try_advisory_xact_lock($1, $2) AS ok', [SHARD_LOCK_APP, s]);
      if (r.rows[0].ok) return (this.shard = s);
    }
    await this.q.query('SELECT pg_advisory_xact_lock($1, $2)', [SHARD_LOCK_APP, start]);
    return (this.shard = start);
  }
  async counters(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    const r = await this.query("SELECT name, sum(value)::bigint AS value FROM counter_shards WHERE name NOT LIKE 'total.%' GROUP BY name ORDER BY name");
    for (const x of r.rows) out[x.name] = x.value;
    return out;
  }
  async addCounter(name: string, by: number): Promise<void> {
    await this.addCounters({ [name]: by });
  }
  async setCounter(name: string, value: number): Promise<void> {
    await this.atomic(async (t) => {
      await t.q.query('DELETE FROM counter_shards WHERE name = $1', [name]);
      await t.q.query('INSERT INTO counter_shards (name, shard, value) VALUES ($1, 0, $2)', [name, value]);
    });
  }

  // ---- events ----
  async logEvent(kind: string, detail: Record<string, unknown> = {}): Promise<void> {
    await this.query('INSERT INTO events (ts, kind, detail) VALUES ($1, $2, $3)', [Date.now(), kind, JSON.stringify(detail)]);
  }
  async listEvents(opts: { kind?: string; limit?: number } = {}): Promise<EventRecord[]> {
    const limit = Math.max(1, Math.floor(opts.limit ?? 100));
    const r =
      opts.kind !== undefined
        ? await this.query('SELECT * FROM events WHERE kind = $1 ORDER BY id DESC LIMIT $2', [opts.kind, limit])
        : await this.query('SELECT * FROM events ORDER BY id DESC LIMIT $1', [limit]);
    return r.rows.map((x) => ({ id: x.id, ts: x.ts, kind: x.kind, detail: json(x.detail, {}) }));
  }

  async stats(): Promise<KbStats> {
    // maintained totals (sharded counters written with every push), not count(*) over samples
    const r = await this.query('SELECT name, sum(value)::bigint AS value FROM counter_shards WHERE name = ANY($1::text[]) GROUP BY name', [[TOTAL_SAMPLES, TOTAL_LABELLED]]);
    const v = new Map(r.rows.map((x: Row) => [x.name, x.value as number]));
    return { samples: v.get(TOTAL_SAMPLES) ?? 0, labelled: v.get(TOTAL_LABELLED) ?? 0, ...(await this.fleetStats()) };
  }
  async fleetStats(): Promise<Omit<KbStats, 'samples' | 'labelled'>> {
    const r = await this.query(
      `SELECT (SELECT count(*) FROM devices)::bigint AS devices, (SELECT count(*) FROM devices WHERE revoked_at IS NULL)::bigint AS active_devices,
              (SELECT count(*) FROM versions)::bigint AS versions, (SELECT count(*) FROM tasks WHERE NOT retired)::bigint AS tasks`,
    );
    const x = r.rows[0];
    return { devices: x.devices, active_devices: x.active_devices, versions: x.versions, tasks: x.tasks };
  }
}

async function readAll(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
