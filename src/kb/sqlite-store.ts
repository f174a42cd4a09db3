// Embedded KB backend: SQLite metadata (DATA/kb.db, WAL) + files on disk (blobs, versions).
// The only module (with sqlite-schema.ts) that holds SQL.
//
// Every write transaction is BEGIN IMMEDIATE: the server and CLI commands share the file, and a
// deferred transaction that reads first and then writes fails with SQLITE_BUSY at once (no
// busy-timeout wait) when another connection committed in between.
//
// Durability: journal_mode=WAL with synchronous=FULL. In WAL mode NORMAL only fsyncs at
// checkpoints, so a power cut could lose the last commits although the server already answered
// "stored" for them; FULL fsyncs the WAL at every commit. The push path commits once per batch,
// so this costs one fsync per batch, not per sample.
import { createRequire } from 'node:module';
import { AsyncLocalStorage } from 'node:async_hooks';
import { readFileSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { NO_TASK, type DeviceReport } from '../format/protocol.js';
import { sha256Hex } from '../format/signature.js';
import { writeFileAtomic } from '../durable/atomic-write.js';
import { keepPrivate, sqliteFiles } from '../store/private-files.js';
import { WalDurability } from '../store/wal-durability.js';
import { FsBlobStore, type BlobStore } from './blob-store.js';
import type { KbPaths } from './paths.js';
import { KB_MIGRATIONS } from './sqlite-schema.js';
import { META_PUBLIC_KEY, readSigningKey } from './signing-key.js';
import { INLINE_PAYLOAD_MAX, SAMPLE_COLS, json, toChannel, toDevice, toSample, toVersion, type Row } from './store-rows.js';

export { INLINE_PAYLOAD_MAX };
import type {
  ChannelRecord,
  DeviceRecord,
  EventRecord,
  KbStats,
  KbStore,
  KbTx,
  LabelResult,
  NewSample,
  PutSamplesResult,
  SampleFilter,
  SampleRecord,
  SampleWithPayload,
  RoundWrite,
  TaskRecord,
  VersionRecord,
} from './store.js';
import { IMPORT_ID_PREFIX } from './store.js';

const require = createRequire(import.meta.url);
type DB = BetterSqlite3.Database;

const FORBIDDEN = new Error('forbidden');

function sampleWhere(f: SampleFilter): { sql: string; params: unknown[] } {
  const w: string[] = [];
  const p: unknown[] = [];
  if (f.device !== undefined) (w.push('device_id = ?'), p.push(f.device));
  if (f.task !== undefined) (w.push('task = ?'), p.push(f.task));
  if (f.assigned_task !== undefined) (w.push('assigned_task = ?'), p.push(f.assigned_task));
  if (f.labelled === true) w.push('label IS NOT NULL');
  if (f.labelled === false) w.push('label IS NULL');
  if (f.split === 'none') w.push('split IS NULL');
  else if (f.split) (w.push('split = ?'), p.push(f.split));
  if (f.unused) w.push('used_in_round IS NULL');
  if (f.after !== undefined) (w.push('seq > ?'), p.push(f.after));
  return { sql: w.length ? `WHERE ${w.join(' AND ')}` : '', params: p };
}

export interface SqliteStoreOptions {
  /** where blobs live (default: DATA/blobs/ files); e.g. an S3BlobStore */
  blobs?: BlobStore;
  /** the private signing key file (default: keys/signing.key of the data directory) */
  signingKey?: string;
}

export class SqliteKbStore implements KbStore {
  readonly blobs: BlobStore;
  readonly describe: string;
  private readonly db: DB;
  private readonly st: Record<string, BetterSqlite3.Statement>;
  // KbStore.tx holds BEGIN IMMEDIATE on the one connection across awaits: calls from outside
  // the transaction wait for it (they would otherwise run inside it and share its fate); calls
  // from the transaction body (recognised by the async context) go through. Every method checks
  // the gate with `while (this.txBusy && ...) await this.txBusy;` right before its SQL: with no
  // await between that check and the statement, no transaction can begin in between.
  private txBusy: Promise<void> | null = null;
  private readonly inTx = new AsyncLocalStorage<true>();
  /** versions whose files the open KbStore.tx wrote: removed if it rolls back */
  private txVersions: number[] = [];
  /** the fdatasync of the WAL that makes pushed batches durable (see putSamples) */
  private readonly walSync: WalDurability;

  /** Open (and migrate) the KB database of a data directory. */
  constructor(
    private readonly paths: KbPaths,
    private readonly opts: SqliteStoreOptions = {},
  ) {
    this.describe = `sqlite:${paths.db}`;
    const Database = require('better-sqlite3') as typeof BetterSqlite3;
    keepPrivate(paths.data, sqliteFiles(paths.db));
    try {
      this.db = new Database(paths.db);
    } catch (e) {
      throw new Error(`${paths.db}: cannot open KB database: ${(e as Error).message}`);
    }
    // the CLI (device add, label import) writes while the server runs: wait for the lock
    this.db.pragma('busy_timeout = 10000');
    // 16 KiB pages for a new database: sample rows of a few KB then share pages (with 4 KiB
    // pages each ~3 KB row takes a page of its own); measured ~2.5x faster batch commits.
    // Only takes effect before the first table exists.
    if ((this.db.pragma('user_version', { simple: true }) as number) === 0) this.db.pragma('page_size = 16384');
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    keepPrivate(paths.data, sqliteFiles(paths.db)); // a new kb.db (and its WAL) was just created
    this.migrate();
    this.blobs = opts.blobs ?? new FsBlobStore(paths.blobs, paths.tmp);
    this.walSync = new WalDurability(this.db, paths.db, { normal: false });
    const db = this.db;
    this.st = {
      insertSample: db.prepare(
        `INSERT INTO samples (id, device_id, source, task, attrs, payload_kind, payload, payload_blob, payload_sha, payload_bytes,
           pred_label, scores, hard, hard_reasons, unseen, unseen_reason, kb_version, created_at, received_at, label, label_source, labelled_at, preprocessing)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING`,
      ),
      sampleOwner: db.prepare('SELECT device_id, label, payload_sha FROM samples WHERE id = ?'),
      setLabel: db.prepare('UPDATE samples SET label = ?, label_source = ?, labelled_at = ? WHERE id = ?'),
      addCounter: db.prepare('INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value'),
      deviceByHash: db.prepare('SELECT * FROM devices WHERE token_hash = ?'),
      getDevice: db.prepare('SELECT * FROM devices WHERE id = ?'),
      touch: db.prepare('UPDATE devices SET last_seen = ? WHERE id = ?'),
      getChannel: db.prepare('SELECT * FROM channels WHERE name = ?'),
      published: db.prepare('SELECT 1 FROM version_blobs WHERE sha = ? LIMIT 1'),
    };
  }

  private migrate(): void {
    const db = this.db;
    const current = db.pragma('user_version', { simple: true }) as number;
    if (current > KB_MIGRATIONS.length) {
      throw new Error(`${this.paths.db}: KB schema version ${current} is newer than this sedna-ll understands (${KB_MIGRATIONS.length})`);
    }
    for (let v = current; v < KB_MIGRATIONS.length; v++) {
      db.transaction(() => {
        db.exec(KB_MIGRATIONS[v]);
        db.pragma(`user_version = ${v + 1}`);
      }).immediate();
    }
  }

  async close(): Promise<void> {
    while (this.txBusy) await this.txBusy;
    await this.walSync.close();
    if (this.db.open) this.db.close();
    this.blobs.close?.();
  }

  async tx<T>(fn: (t: KbTx) => Promise<T>): Promise<T> {
    if (this.inTx.getStore()) return fn(this); // nested: part of the open transaction
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    let done!: () => void;
    this.txBusy = new Promise<void>((r) => (done = r));
    try {
      this.db.exec('BEGIN IMMEDIATE');
      this.txVersions = [];
      try {
        const r = await this.inTx.run(true, () => fn(this));
        this.db.exec('COMMIT');
        return r;
      } catch (e) {
        if (this.db.inTransaction) {
          // before ROLLBACK: while this transaction holds the write lock no other publisher can
          // be writing these numbers (after it, the next one may take them)
          this.removeVersionFiles(this.txVersions);
          this.db.exec('ROLLBACK');
        }
        throw e;
      }
    } finally {
      this.txBusy = null;
      done();
    }
  }

  async trainLock(): Promise<() => Promise<void>> {
    const { acquireLockFile } = await import('../durable/lock.js');
    const lock = acquireLockFile(join(this.paths.tmp, 'train.lock'), 'kb train');
    return async () => lock.release();
  }

  async publicKey(): Promise<string> {
    // meta (set by `kb keys rotate` in the transaction that switches keys) wins over the file
    const k = await this.getMeta(META_PUBLIC_KEY);
    if (k) return k;
    if (!existsSync(this.paths.publicKey)) throw new Error(`${this.paths.publicKey}: KB public key missing`);
    return readFileSync(this.paths.publicKey, 'utf8');
  }

  async signingKey(): Promise<string> {
    const f = this.opts.signingKey ?? this.paths.privateKey;
    return readSigningKey(f, await this.publicKey(), this.opts.signingKey ? `--signing-key ${f}` : f);
  }

  keyFiles(): { privateFile: string | null; publicFile: string | null } {
    return { privateFile: this.opts.signingKey ?? this.paths.privateKey, publicFile: this.paths.publicKey };
  }

  // ---- settings ----
  async getMeta(key: string): Promise<string | null> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const r = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as Row | undefined;
    return r ? r.value : null;
  }
  async setMeta(key: string, value: string): Promise<void> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  // ---- devices ----
  async addDevice(d: { id: string; token_hash: string; channel: string }): Promise<DeviceRecord> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const now = Date.now();
    try {
      this.db.prepare('INSERT INTO devices (id, token_hash, channel, created_at) VALUES (?, ?, ?, ?)').run(d.id, d.token_hash, d.channel, now);
    } catch (e) {
      if (String((e as Error).message).includes('UNIQUE')) throw new Error(`device "${d.id}" already exists`);
      throw e;
    }
    return (await this.getDevice(d.id))!;
  }
  async getDevice(id: string): Promise<DeviceRecord | null> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const r = this.st.getDevice.get(id) as Row | undefined;
    return r ? toDevice(r) : null;
  }
  async deviceByTokenHash(tokenHash: string): Promise<(DeviceRecord & { token_hash: string }) | null> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const r = this.st.deviceByHash.get(tokenHash) as Row | undefined;
    return r ? { ...toDevice(r), token_hash: r.token_hash } : null;
  }
  async listDevices(filter: { channel?: string } = {}): Promise<DeviceRecord[]> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const rows =
      filter.channel !== undefined
        ? this.db.prepare('SELECT * FROM devices WHERE channel = ? ORDER BY id').all(filter.channel)
        : this.db.prepare('SELECT * FROM devices ORDER BY id').all();
    return (rows as Row[]).map(toDevice);
  }
  async revokeDevice(id: string): Promise<boolean> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const r = this.db.prepare('UPDATE devices SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?').run(Date.now(), id);
    return r.changes > 0;
  }
  async setDeviceChannel(id: string, channel: string): Promise<boolean> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    return this.db.prepare('UPDATE devices SET channel = ? WHERE id = ?').run(channel, id).changes > 0;
  }
  async touchDevice(id: string, ts: number): Promise<void> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    this.st.touch.run(ts, id);
  }
  async saveReport(id: string, report: DeviceReport, ts: number): Promise<void> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    this.db.prepare('UPDATE devices SET last_report = ?, active_version = ?, last_seen = ? WHERE id = ?').run(JSON.stringify(report), report.active_version, ts, id);
  }

  // ---- samples ----
  async putSamples(owner: string | null, samples: NewSample[]): Promise<PutSamplesResult> {
    // large payloads first: a blob is complete and fsynced before any row points to it
    const inBlob = new Set<string>();
    for (const s of samples) {
      if (s.payload && s.payload.length > INLINE_PAYLOAD_MAX) {
        await this.blobs.put(s.payload, s.payload_sha);
        inBlob.add(s.id);
      }
    }
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    // Outside a transaction the batch commits with synchronous=NORMAL (no fsync inside COMMIT,
    // so the event loop goes on reading the next request meanwhile) and resolves only after an
    // fdatasync of the WAL on the thread pool, shared by the pushes that committed meanwhile:
    // the caller acks what is on stable storage, as with FULL (store/wal-durability.ts). Inside
    // an open transaction its own COMMIT (FULL) makes the batch durable.
    const grouped = !this.db.inTransaction;
    if (grouped) this.db.pragma('synchronous = NORMAL');
    const now = Date.now();
    const stored: string[] = [];
    const rejected: { id: string; reason: string }[] = [];
    let inserted = 0;
    let labelled = 0;
    const { insertSample, sampleOwner, setLabel, addCounter } = this.st;
    const write = this.db.transaction(() => {
      for (const s of samples) {
        // ids of `kb samples import` are derived from the content: a device taking one would
        // later make the import of the true sample fail as "another device's"
        if (owner !== null && s.id.startsWith(IMPORT_ID_PREFIX)) {
          rejected.push({ id: s.id, reason: `ids starting with "${IMPORT_ID_PREFIX}" are reserved for kb samples import` });
          continue;
        }
        const blob = inBlob.has(s.id);
        const label = s.label ?? null;
        const r = insertSample.run(
          s.id,
          owner,
          s.source ?? (owner === null ? 'import' : 'edge'),
          s.task ?? NO_TASK,
          JSON.stringify(s.attrs),
          s.payload_kind,
          blob ? null : s.payload,
          blob ? 1 : 0,
          s.payload_sha,
          s.payload ? s.payload.length : 0,
          s.pred_label,
          JSON.stringify(s.scores),
          s.hard ? 1 : 0,
          JSON.stringify(s.hard_reasons),
          s.unseen ? 1 : 0,
          s.unseen_reason,
          s.kb_version,
          s.created_at,
          now,
          label,
          label === null ? null : (s.source ?? (owner === null ? 'import' : 'edge')),
          label === null ? null : now,
          s.preprocessing ? JSON.stringify(s.preprocessing) : null,
        );
        if (r.changes === 1) {
          inserted++;
          if (label !== null) labelled++;
          stored.push(s.id);
          continue;
        }
        const prev = sampleOwner.get(s.id) as Row;
        if ((prev.device_id ?? null) !== owner) {
          rejected.push({ id: s.id, reason: 'sample id belongs to another device' });
          continue;
        }
        // the same id with another payload is a collision, never acked as stored: the KB keeps
        // the first payload, so an ack would silently lose the second sample
        if (prev.payload_sha !== s.payload_sha) {
          rejected.push({ id: s.id, reason: 'sample id already stored with a different payload (id collision)' });
          continue;
        }
        // a re-sent sample is acknowledged again; a label it gained since is kept
        if (label !== null && prev.label === null) {
          setLabel.run(label, owner === null ? 'import' : 'edge', now, s.id);
          labelled++;
        }
        stored.push(s.id);
      }
      if (inserted) addCounter.run('samples_new', inserted);
      if (labelled) addCounter.run('labelled_new', labelled);
    });
    try {
      write.immediate();
    } finally {
      if (grouped) this.db.pragma('synchronous = FULL');
    }
    if (grouped) await this.walSync.durable();
    return { stored, rejected, inserted, labelled };
  }

  async getSample(id: string): Promise<SampleRecord | null> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const r = this.db.prepare(`SELECT ${SAMPLE_COLS} FROM samples WHERE id = ?`).get(id) as Row | undefined;
    return r ? toSample(r) : null;
  }

  /** a whole blob in memory (sample payloads: a few MB at most) */
  private async blobBytes(sha: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of await this.blobs.get(sha)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  async samplePayload(id: string): Promise<Buffer | null> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const r = this.db.prepare('SELECT payload, payload_blob, payload_sha FROM samples WHERE id = ?').get(id) as Row | undefined;
    if (!r) return null;
    if (r.payload_blob) return this.blobBytes(r.payload_sha);
    return r.payload ?? null;
  }

  async listSamples(filter: SampleFilter = {}): Promise<SampleRecord[]> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const { sql, params } = sampleWhere(filter);
    const limit = filter.limit !== undefined ? ` LIMIT ${Math.max(0, Math.floor(filter.limit))}` : '';
    const rows = this.db.prepare(`SELECT ${SAMPLE_COLS} FROM samples ${sql} ORDER BY seq ${filter.order === 'desc' ? 'DESC' : 'ASC'}${limit}`).all(...params) as Row[];
    return rows.map(toSample);
  }

  async *scanSamples(filter: SampleFilter = {}, opts: { batch?: number; payloads?: boolean } = {}): AsyncIterable<SampleWithPayload[]> {
    // a second, read-only connection in one read transaction: a WAL snapshot that neither blocks
    // nor sees the writers of the main connection while the caller works through the batches
    const Database = require('better-sqlite3') as typeof BetterSqlite3;
    const ro = new Database(this.paths.db, { readonly: true });
    try {
      ro.pragma('busy_timeout = 10000');
      ro.exec('BEGIN');
      const batch = Math.max(1, opts.batch ?? 1000);
      let after = filter.after ?? 0;
      for (;;) {
        const { sql, params } = sampleWhere({ ...filter, after, order: 'asc' });
        const cols = opts.payloads === false ? SAMPLE_COLS : `${SAMPLE_COLS}, payload, payload_blob`;
        const rows = ro.prepare(`SELECT ${cols} FROM samples ${sql} ORDER BY seq LIMIT ${batch}`).all(...params) as Row[];
        if (!rows.length) break;
        if (opts.payloads === false) yield rows.map((r) => ({ ...toSample(r), payload: null }));
        else yield await Promise.all(rows.map(async (r) => ({ ...toSample(r), payload: r.payload_blob ? await this.blobBytes(r.payload_sha) : (r.payload ?? null) })));
        after = rows[rows.length - 1].seq;
      }
      ro.exec('COMMIT');
    } finally {
      ro.close();
    }
  }

  async countSamples(filter: SampleFilter = {}): Promise<number> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const { sql, params } = sampleWhere(filter);
    return (this.db.prepare(`SELECT count(*) AS n FROM samples ${sql}`).get(...params) as Row).n;
  }

  async setLabels(labels: { id: string; label: string }[], source: string, owner: string | null): Promise<LabelResult> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const res: LabelResult = { stored: [], unknown: [], forbidden: [], newly_labelled: 0 };
    const now = Date.now();
    const { sampleOwner, setLabel, addCounter } = this.st;
    const tx = this.db.transaction(() => {
      for (const l of labels) {
        const prev = sampleOwner.get(l.id) as Row | undefined;
        if (!prev) {
          res.unknown.push(l.id);
          continue;
        }
        if (owner !== null && prev.device_id !== owner) {
          res.forbidden.push(l.id);
          continue;
        }
        setLabel.run(l.label, source, now, l.id);
        if (prev.label === null) res.newly_labelled++;
        res.stored.push(l.id);
      }
      // a device touching another device's sample: refuse the whole batch, store nothing
      if (owner !== null && res.forbidden.length) throw FORBIDDEN;
      if (res.newly_labelled) addCounter.run('labelled_new', res.newly_labelled);
    });
    try {
      tx.immediate();
    } catch (e) {
      if (e !== FORBIDDEN) throw e;
      return { stored: [], unknown: res.unknown, forbidden: res.forbidden, newly_labelled: 0 };
    }
    return res;
  }

  async assignSamples(rows: { id: string; assigned_task: string | null; split: 'train' | 'heldout' | null }[]): Promise<void> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const st = this.db.prepare('UPDATE samples SET assigned_task = ?, split = ? WHERE id = ?');
    this.db.transaction(() => {
      for (const r of rows) st.run(r.assigned_task, r.split, r.id);
    }).immediate();
  }

  async markSamplesUsed(ids: string[], round: number): Promise<void> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const st = this.db.prepare('UPDATE samples SET used_in_round = ? WHERE id = ?');
    this.db.transaction(() => {
      for (const id of ids) st.run(round, id);
    }).immediate();
  }

  async applyRound(w: RoundWrite): Promise<void> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const assign = this.db.prepare('UPDATE samples SET assigned_task = ?, split = ? WHERE id = ?');
    const used = this.db.prepare('UPDATE samples SET used_in_round = ? WHERE id = ?');
    const meta = this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value');
    const counter = this.db.prepare('INSERT INTO counters (name, value) VALUES (?, MAX(0, ?)) ON CONFLICT(name) DO UPDATE SET value = MAX(0, value + ?)');
    const event = this.db.prepare('INSERT INTO events (ts, kind, detail) VALUES (?, ?, ?)');
    const now = Date.now();
    this.db.transaction(() => {
      for (const t of w.tasks) this.putTaskSync(t);
      for (const r of w.assign) assign.run(r.assigned_task, r.split, r.id);
      for (const id of w.used.ids) used.run(w.used.round, id);
      for (const [k, v] of Object.entries(w.meta)) meta.run(k, v);
      for (const [k, v] of Object.entries(w.counters)) counter.run(k, v, v);
      for (const e of w.events) event.run(now, e.kind, JSON.stringify(e.detail));
    }).immediate();
  }

  // ---- tasks ----
  async putTask(t: TaskRecord): Promise<void> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    this.putTaskSync(t);
  }
  private putTaskSync(t: TaskRecord): void {
    this.db
      .prepare(
        `INSERT INTO tasks (id, model_sha, fallback, retired, updated_round, created_at, updated_at, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET model_sha = excluded.model_sha, fallback = excluded.fallback, retired = excluded.retired,
           updated_round = excluded.updated_round, updated_at = excluded.updated_at, record = excluded.record`,
      )
      .run(t.id, t.model_sha, t.fallback ? 1 : 0, t.retired ? 1 : 0, t.updated_round, t.created_at, t.updated_at, JSON.stringify(t));
  }
  async getTask(id: string): Promise<TaskRecord | null> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const r = this.db.prepare('SELECT record FROM tasks WHERE id = ?').get(id) as Row | undefined;
    return r ? (JSON.parse(r.record) as TaskRecord) : null;
  }
  async listTasks(opts: { includeRetired?: boolean } = {}): Promise<TaskRecord[]> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const rows = this.db.prepare(`SELECT record FROM tasks ${opts.includeRetired ? '' : 'WHERE retired = 0'} ORDER BY id`).all() as Row[];
    return rows.map((r) => JSON.parse(r.record) as TaskRecord);
  }

  // ---- versions and channels ----
  async latestVersion(): Promise<VersionRecord | null> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const r = this.db.prepare('SELECT * FROM versions ORDER BY n DESC LIMIT 1').get() as Row | undefined;
    return r ? toVersion(r) : null;
  }
  async getVersion(n: number): Promise<VersionRecord | null> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const r = this.db.prepare('SELECT * FROM versions WHERE n = ?').get(n) as Row | undefined;
    return r ? toVersion(r) : null;
  }
  async listVersions(): Promise<VersionRecord[]> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    return (this.db.prepare('SELECT * FROM versions ORDER BY n').all() as Row[]).map(toVersion);
  }

  async nextVersion(): Promise<number> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    // inside tx the BEGIN IMMEDIATE already holds the only write lock: nobody else can add one
    const r = this.db.prepare('SELECT max(n) AS n FROM versions').get() as Row;
    return (r.n ?? 0) + 1;
  }

  private versionDir(n: number): string {
    return join(this.paths.versions, String(n));
  }

  /** remove the files of versions that have no committed row; only under the write lock */
  private removeVersionFiles(ns: number[]): void {
    for (const n of ns) {
      try {
        rmSync(this.versionDir(n), { recursive: true, force: true });
      } catch {
        // left behind: readVersionIndex never serves files without a row, the next publish of n replaces them
      }
    }
  }

  /** numbers >= n with files on disk but no versions row: left by a publish that never committed (kill -9) */
  private strayVersionDirs(n: number): number[] {
    if (!existsSync(this.paths.versions)) return [];
    const rows = new Set((this.db.prepare('SELECT n FROM versions WHERE n >= ?').all(n) as Row[]).map((r) => r.n as number));
    return readdirSync(this.paths.versions)
      .filter((d) => /^[1-9][0-9]*$/.test(d))
      .map(Number)
      .filter((k) => k >= n && !rows.has(k));
  }

  async addVersion(v: Omit<VersionRecord, 'index_sha'>, indexBytes: Buffer, sig: string, modelShas: string[]): Promise<VersionRecord> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const index_sha = sha256Hex(indexBytes);
    const db = this.db;
    // IMMEDIATE: take the write lock first, so two publishers cannot both write version n
    db.transaction(() => {
      if (db.prepare('SELECT 1 FROM versions WHERE n = ?').get(v.n)) throw new Error(`KB version ${v.n} already exists`);
      // files of numbers from n on that never committed (a publisher killed -9 before its
      // commit): nobody reads them (no row), and this write lock keeps other publishers out
      this.removeVersionFiles(this.strayVersionDirs(v.n));
      try {
        // files first (fsynced): a committed version row always has its index on disk
        writeFileAtomic(join(this.versionDir(v.n), 'index.json'), indexBytes);
        writeFileAtomic(join(this.versionDir(v.n), 'index.json.sig'), sig + '\n');
        db.prepare('INSERT INTO versions (n, created_at, parent, index_sha, channel, tasks, notes) VALUES (?, ?, ?, ?, ?, ?, ?)').run(
          v.n,
          v.created_at,
          v.parent,
          index_sha,
          v.channel,
          v.tasks,
          v.notes ? JSON.stringify(v.notes) : null,
        );
        const ins = db.prepare('INSERT OR IGNORE INTO version_blobs (sha, version) VALUES (?, ?)');
        for (const sha of new Set(modelShas)) ins.run(sha, v.n);
        if (v.channel) this.setChannelVersionSync(v.channel, v.n);
      } catch (e) {
        this.removeVersionFiles([v.n]); // still under the write lock: this statement's savepoint / transaction rolls back
        throw e;
      }
    }).immediate();
    // inside KbStore.tx the version commits (or not) with the transaction
    if (this.inTx.getStore()) this.txVersions.push(v.n);
    return { ...v, index_sha };
  }

  async readVersionIndex(n: number): Promise<{ bytes: Buffer; sig: string } | null> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    // the row decides: files without one are what a publish that never committed left
    if (!this.db.prepare('SELECT 1 FROM versions WHERE n = ?').get(n)) return null;
    const dir = this.versionDir(n);
    if (!existsSync(join(dir, 'index.json'))) return null;
    return { bytes: readFileSync(join(dir, 'index.json')), sig: readFileSync(join(dir, 'index.json.sig'), 'utf8').trim() };
  }

  async isPublishedBlob(sha: string): Promise<boolean> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    return !!this.st.published.get(sha);
  }

  async getChannel(name: string): Promise<ChannelRecord | null> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const r = this.st.getChannel.get(name) as Row | undefined;
    return r ? toChannel(r) : null;
  }
  async lockChannel(name: string): Promise<ChannelRecord | null> {
    // inside tx the BEGIN IMMEDIATE write lock covers the channel
    return this.getChannel(name);
  }
  async listChannels(): Promise<ChannelRecord[]> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    return (this.db.prepare('SELECT * FROM channels ORDER BY name').all() as Row[]).map(toChannel);
  }
  async upsertChannel(name: string, patch: Partial<Omit<ChannelRecord, 'name' | 'updated_at'>>): Promise<ChannelRecord> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const db = this.db;
    return db.transaction(() => {
      const cur = db.prepare('SELECT * FROM channels WHERE name = ?').get(name) as Row | undefined;
      const c = cur ? toChannel(cur) : { name, version: null, previous_version: null, updated_at: 0, config: {}, state: {} };
      const next: ChannelRecord = { ...c, ...patch, name, updated_at: Date.now() };
      db.prepare(
        `INSERT INTO channels (name, version, previous_version, updated_at, config, state) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT(name) DO UPDATE SET version = excluded.version, previous_version = excluded.previous_version,
           updated_at = excluded.updated_at, config = excluded.config, state = excluded.state`,
      ).run(name, next.version, next.previous_version, next.updated_at, JSON.stringify(next.config), JSON.stringify(next.state));
      return next;
    }).immediate();
  }
  private setChannelVersionSync(name: string, version: number): void {
    const cur = this.db.prepare('SELECT version FROM channels WHERE name = ?').get(name) as Row | undefined;
    if (!cur) {
      this.db.prepare("INSERT INTO channels (name, version, previous_version, updated_at, config, state) VALUES (?, ?, NULL, ?, '{}', '{}')").run(name, version, Date.now());
    } else if (cur.version !== version) {
      this.db.prepare('UPDATE channels SET version = ?, previous_version = ?, updated_at = ? WHERE name = ?').run(version, cur.version, Date.now(), name);
    }
  }
  async setChannelVersion(name: string, version: number): Promise<ChannelRecord> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    this.db.transaction(() => {
      if (!this.db.prepare('SELECT 1 FROM versions WHERE n = ?').get(version)) throw new Error(`KB version ${version} does not exist`);
      this.setChannelVersionSync(name, version);
    }).immediate();
    return (await this.getChannel(name))!;
  }

  // ---- counters ----
  async counters(): Promise<Record<string, number>> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const out: Record<string, number> = {};
    for (const r of this.db.prepare('SELECT name, value FROM counters ORDER BY name').all() as Row[]) out[r.name] = r.value;
    return out;
  }
  async addCounter(name: string, by: number): Promise<void> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    this.st.addCounter.run(name, by);
  }
  async setCounter(name: string, value: number): Promise<void> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    this.db.prepare('INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value').run(name, value);
  }

  // ---- events ----
  async logEvent(kind: string, detail: Record<string, unknown> = {}): Promise<void> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    this.db.prepare('INSERT INTO events (ts, kind, detail) VALUES (?, ?, ?)').run(Date.now(), kind, JSON.stringify(detail));
  }
  async listEvents(opts: { kind?: string; limit?: number } = {}): Promise<EventRecord[]> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const limit = Math.max(1, Math.floor(opts.limit ?? 100));
    const rows = (
      opts.kind !== undefined
        ? this.db.prepare('SELECT * FROM events WHERE kind = ? ORDER BY id DESC LIMIT ?').all(opts.kind, limit)
        : this.db.prepare('SELECT * FROM events ORDER BY id DESC LIMIT ?').all(limit)
    ) as Row[];
    return rows.map((r) => ({ id: r.id, ts: r.ts, kind: r.kind, detail: json(r.detail, {}) }));
  }

  async stats(): Promise<KbStats> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const one = (sql: string) => (this.db.prepare(sql).get() as Row).n as number;
    return {
      samples: one('SELECT count(*) AS n FROM samples'),
      labelled: one('SELECT count(*) AS n FROM samples WHERE label IS NOT NULL'),
      ...(await this.fleetStats()),
    };
  }
  async fleetStats(): Promise<Omit<KbStats, 'samples' | 'labelled'>> {
    while (this.txBusy && !this.inTx.getStore()) await this.txBusy;
    const one = (sql: string) => (this.db.prepare(sql).get() as Row).n as number;
    return {
      devices: one('SELECT count(*) AS n FROM devices'),
      active_devices: one('SELECT count(*) AS n FROM devices WHERE revoked_at IS NULL'),
      versions: one('SELECT count(*) AS n FROM versions'),
      tasks: one('SELECT count(*) AS n FROM tasks WHERE retired = 0'),
    };
  }
}
