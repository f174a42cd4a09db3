// The KB store: narrow interfaces, one per concern (settings, keys, devices, samples, model
// registry, versions, channels, counters and events, learning rounds), that every KB feature
// (server, CLI, publishing, rollout channels, training) goes through; a caller depends on the
// narrowest one it uses. Backends: SqliteKbStore (embedded: SQLite metadata + files on disk) and
// PgKbStore (PostgreSQL, shared by any number of `kb serve` replicas). Every method is async and
// no caller sees SQL or file paths of metadata; what must happen atomically across interfaces
// runs in KbStore.tx (a real database transaction in both backends).
//
// The contract of every interface is test/kb-store-contract.test.ts, run against each backend.
//
// Sample ids are the client-made ids of the sync protocol; a sample belongs to the device that
// first pushed it (imported training data belongs to no device).
import type { DeviceReport, UploadSample } from '../format/protocol.js';
import type { FeatureStats, ModelRef, UnseenThresholds } from '../format/index-manifest.js';
import type { BlobStore } from './blob-store.js';

export interface DeviceRecord {
  id: string;
  channel: string;
  created_at: number;
  revoked_at: number | null;
  last_seen: number | null;
  active_version: number | null;
  last_report: DeviceReport | null;
}

/**
 * A sample as the KB receives it (push, import); the payload is already decoded. Derived from
 * the wire shape (UploadSample) so the two cannot drift apart.
 */
export type NewSample = Omit<UploadSample, 'payload_b64'> & {
  /** payload bytes; null when the device keeps payloads local (payload_kind 'none') */
  payload: Buffer | null;
  /** where the sample came from: 'edge' (pushed) or 'import' (kb samples import) */
  source?: 'edge' | 'import';
};

/** A stored KB sample: the wire fields (UploadSample, so they cannot drift) and what the KB adds. */
export type SampleRecord = Omit<UploadSample, 'payload_b64' | 'label'> & {
  /** null for imported samples */
  device_id: string | null;
  payload_bytes: number;
  received_at: number;
  source: 'edge' | 'import';
  label: string | null;
  label_source: string | null;
  labelled_at: number | null;
  /** LEARN: task the sample was assigned to in task definition, and its split */
  assigned_task: string | null;
  split: 'train' | 'heldout' | null;
  used_in_round: number | null;
  /** increasing insertion order; the cursor of listSamples */
  seq: number;
};

/** Prefix of the content-derived ids of `kb samples import`; devices may not push such ids. */
export const IMPORT_ID_PREFIX = 'imp-';

export interface SampleFilter {
  device?: string;
  task?: string;
  /** assigned_task (LEARN's task definition) */
  assigned_task?: string;
  labelled?: boolean;
  split?: 'train' | 'heldout' | 'none';
  /** samples not yet used in any training round */
  unused?: boolean;
  /** only samples with seq > after (keyset pagination, ascending order) */
  after?: number;
  /** 'desc': newest first (default 'asc') */
  order?: 'asc' | 'desc';
  limit?: number;
}

export interface PutSamplesResult {
  /** ids durably stored once this promise resolves (new ones and ones stored before) */
  stored: string[];
  /** ids not stored, with a one-line reason (e.g. the id belongs to another device) */
  rejected: { id: string; reason: string }[];
  /** how many of `stored` are new */
  inserted: number;
  /** samples that gained a label in this call (new labelled ones and re-sent ones that brought one) */
  labelled: number;
}

export interface LabelResult {
  stored: string[];
  unknown: string[];
  /** ids refused: they belong to another device */
  forbidden: string[];
  /** samples that had no label before (feeds counter labelled_new) */
  newly_labelled: number;
}

/** A task model registered in the KB (kb task add, or produced by training). */
// the model description is the index's own ModelRef (so the two cannot drift); sha256, file
// and size are stored as model_sha / model_size
export interface TaskRecord extends Pick<ModelRef, 'inputs' | 'outputs' | 'labels' | 'preprocessing' | 'output_kind' | 'arch'> {
  id: string;
  attrs: Record<string, string>;
  model_sha: string;
  model_size: number;
  parent: string | null;
  metrics: Record<string, number>;
  centroid: number[] | null;
  radius: number | null;
  thresholds: UnseenThresholds | null;
  /** penultimate-layer statistics of the "features" unseen method (absent: not computed) */
  features?: FeatureStats | null;
  samples: number;
  /** training round that last changed the model (0 for registered models) */
  updated_round: number;
  /** serves samples no other task matches (index allocation.fallback) */
  fallback: boolean;
  /** retired tasks stay in the KB's memory but are not published */
  retired?: boolean;
  created_at: number;
  updated_at: number;
  /** free-form data of the learner (training config, history); never interpreted here */
  extra?: Record<string, unknown>;
}

export interface VersionRecord {
  n: number;
  created_at: number;
  parent: number | null;
  index_sha: string;
  /** channel the version was first published to */
  channel: string | null;
  tasks: number;
  notes: Record<string, unknown> | null;
}

export interface ChannelRecord {
  name: string;
  version: number | null;
  previous_version: number | null;
  updated_at: number;
  /** rollout settings of the channel (e.g. abort threshold); owned by the rollout logic */
  config: Record<string, unknown>;
  /** rollout state (e.g. version on trial, failures seen); owned by the rollout logic */
  state: Record<string, unknown>;
}

export interface EventRecord {
  id: number;
  ts: number;
  kind: string;
  detail: Record<string, unknown>;
}

export interface KbStats {
  samples: number;
  labelled: number;
  devices: number;
  active_devices: number;
  versions: number;
  tasks: number;
}

/** What one learning round writes (KbStore.applyRound): all of it or nothing. */
export interface RoundWrite {
  tasks: TaskRecord[];
  assign: { id: string; assigned_task: string | null; split: 'train' | 'heldout' | null }[];
  used: { ids: string[]; round: number };
  meta: Record<string, string>;
  /** added to counters (negative: what the round consumed; a counter never goes below 0) */
  counters: Record<string, number>;
  events: { kind: string; detail: Record<string, unknown> }[];
}

/** Settings (admin token hash, key ids, learner state, ...). */
export interface SettingsStore {
  getMeta(key: string): Promise<string | null>;
  setMeta(key: string, value: string): Promise<void>;
}

/**
 * The KB's ed25519 keys (PEM). Every process holds the public key (replicas verify nothing with
 * it, but hand it to devices); only the publishing process (kb train / kb publish) holds the
 * private key: signingKey() throws with the reason where it is not configured.
 */
export interface KeyStore {
  publicKey(): Promise<string>;
  signingKey(): Promise<string>;
  /** where this process's private key file is (null: none configured) and, for a KB that keeps one, its public key file */
  keyFiles(): { privateFile: string | null; publicFile: string | null };
}

export interface DeviceStore {
  /** throws when the id exists */
  addDevice(d: { id: string; token_hash: string; channel: string }): Promise<DeviceRecord>;
  getDevice(id: string): Promise<DeviceRecord | null>;
  /** the device holding this token hash, revoked or not (callers check revoked_at) */
  deviceByTokenHash(tokenHash: string): Promise<(DeviceRecord & { token_hash: string }) | null>;
  listDevices(filter?: { channel?: string }): Promise<DeviceRecord[]>;
  /** false when the device is unknown */
  revokeDevice(id: string): Promise<boolean>;
  setDeviceChannel(id: string, channel: string): Promise<boolean>;
  touchDevice(id: string, ts: number): Promise<void>;
  saveReport(id: string, report: DeviceReport, ts: number): Promise<void>;
}

/** A sample with its payload bytes (bulk reads: training, export, canary inputs). */
export type SampleWithPayload = SampleRecord & { payload: Buffer | null };

export interface SampleStore {
  /**
   * Upsert samples by id in ONE transaction; resolves only after the commit is durable.
   * A known id of the same owner is acknowledged again (not overwritten, stored once: counters
   * count rows); a known id of another owner is rejected, never overwritten.
   */
  putSamples(owner: string | null, samples: NewSample[]): Promise<PutSamplesResult>;
  getSample(id: string): Promise<SampleRecord | null>;
  samplePayload(id: string): Promise<Buffer | null>;
  /**
   * Ordered by seq; use { after: last.seq } to page. Ascending pages never skip a row: a backend
   * whose concurrent writers can commit seq numbers out of order returns rows only up to a
   * watermark below which every row is committed (rows above it show on a later page).
   */
  listSamples(filter?: SampleFilter): Promise<SampleRecord[]>;
  countSamples(filter?: SampleFilter): Promise<number>;
  /**
   * Every sample matching filter (limit ignored), with payloads, in ascending seq order, read in
   * ONE consistent snapshot (one query / cursor, not a query per sample), in batches.
   * payloads: false reads no payload bytes (payload is null in every row): a walk over the
   * metadata of a big store (kb gc) that never reads its blobs.
   */
  scanSamples(filter?: SampleFilter, opts?: { batch?: number; payloads?: boolean }): AsyncIterable<SampleWithPayload[]>;
  /**
   * Set labels in one transaction. owner: only samples of that device may be labelled; when any
   * label targets another owner's sample nothing is stored and `forbidden` lists them. null = admin. Updates counter labelled_new by the number of newly labelled samples.
   */
  setLabels(labels: { id: string; label: string }[], source: string, owner: string | null): Promise<LabelResult>;
  /** LEARN: record task definition and held-out split of samples */
  assignSamples(rows: { id: string; assigned_task: string | null; split: 'train' | 'heldout' | null }[]): Promise<void>;
  markSamplesUsed(ids: string[], round: number): Promise<void>;
}

/** The model registry: task models (their files are content-addressed blobs). */
export interface ModelStore {
  readonly blobs: BlobStore;
  putTask(t: TaskRecord): Promise<void>;
  getTask(id: string): Promise<TaskRecord | null>;
  listTasks(opts?: { includeRetired?: boolean }): Promise<TaskRecord[]>;
}

/** Published versions: signed index + signature live in the store. */
export interface VersionStore {
  latestVersion(): Promise<VersionRecord | null>;
  getVersion(n: number): Promise<VersionRecord | null>;
  listVersions(): Promise<VersionRecord[]>;
  /**
   * The number the next version gets (latest + 1). Inside KbStore.tx it also reserves it: a
   * concurrent publisher waits until this transaction ends, so versions are consecutive, never
   * duplicated or skipped.
   */
  nextVersion(): Promise<number>;
  /**
   * Store a signed index as version v.n and (when channel is set) point the channel at it, in one
   * step. Fails if n exists. modelShas: blobs the version references (they become downloadable).
   */
  addVersion(v: Omit<VersionRecord, 'index_sha'>, indexBytes: Buffer, sig: string, modelShas: string[]): Promise<VersionRecord>;
  readVersionIndex(n: number): Promise<{ bytes: Buffer; sig: string } | null>;
  /** true when a published version references the blob (only those are served to devices) */
  isPublishedBlob(sha: string): Promise<boolean>;
}

/** Rollout channels. */
export interface ChannelStore {
  getChannel(name: string): Promise<ChannelRecord | null>;
  /**
   * getChannel, and inside KbStore.tx hold the channel until the transaction ends: the
   * compare-and-set of a rollout decision (a second evaluator waits, then sees the first's write).
   */
  lockChannel(name: string): Promise<ChannelRecord | null>;
  listChannels(): Promise<ChannelRecord[]>;
  /** create the channel if missing; fields left out keep their value */
  upsertChannel(name: string, patch: Partial<Omit<ChannelRecord, 'name' | 'updated_at'>>): Promise<ChannelRecord>;
  /** point a channel at a version; the old version becomes previous_version */
  setChannelVersion(name: string, version: number): Promise<ChannelRecord>;
}

/** Counters (LEARN's `kb train --when`), the event log and totals. */
export interface CounterStore {
  counters(): Promise<Record<string, number>>;
  addCounter(name: string, by: number): Promise<void>;
  setCounter(name: string, value: number): Promise<void>;
  logEvent(kind: string, detail?: Record<string, unknown>): Promise<void>;
  listEvents(opts?: { kind?: string; limit?: number }): Promise<EventRecord[]>;
  stats(): Promise<KbStats>;
  /** the parts of stats() over small tables (devices, versions, tasks): cheap enough for every metrics scrape */
  fleetStats(): Promise<Omit<KbStats, 'samples' | 'labelled'>>;
}

/** LEARN: everything a training round writes, in one transaction (see RoundWrite). */
export interface RoundStore {
  applyRound(w: RoundWrite): Promise<void>;
}

/** What a transaction body sees: every data interface, bound to the transaction. */
export interface KbTx extends SettingsStore, KeyStore, DeviceStore, SampleStore, ModelStore, VersionStore, ChannelStore, CounterStore, RoundStore {}

export interface KbStore extends KbTx {
  /**
   * Run fn in ONE database transaction: all its writes commit together or none does. fn must
   * use the `t` it is given (not the store) and must not hold the transaction for long (no
   * network calls, no training). A backend may re-run fn when the database asks to retry
   * (serialization failure), so fn must not have other side effects.
   */
  tx<T>(fn: (t: KbTx) => Promise<T>): Promise<T>;
  /**
   * One training round at a time per KB: take the training lock or throw LockedError;
   * returns the release. A holder that dies releases it (no stale lock).
   */
  trainLock(): Promise<() => Promise<void>>;
  /** a short name of the backend and where it is (no credentials), for logs */
  readonly describe: string;
  close(): Promise<void>;
}

/**
 * The store's database cannot be reached now (down, restarting, out of connections): the
 * request may succeed later. The server answers 503 with Retry-After; nothing was stored.
 */
export class StoreUnavailableError extends Error {
  readonly statusCode = 503;
  readonly retryAfterSec = 5;
}
