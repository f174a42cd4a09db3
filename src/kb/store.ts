// The KB store: the ONE interface every KB feature (server, CLI, publishing, rollout channels,
// training) goes through. The embedded backend is SqliteKbStore (SQLite metadata + files on
// disk); a PostgreSQL + S3 backend implements the same interface, which is why every method is
// async and no caller sees SQL, file paths of metadata, or transactions.
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

export interface KbStore {
  readonly blobs: BlobStore;
  close(): Promise<void>;

  /** the KB's ed25519 signing key pair (PEM); a backend may keep it in a file, a KMS, ... */
  signingKeys(): Promise<{ privateKey: string; publicKey: string }>;

  // ---- settings (admin token hash, key ids, ...) ----
  getMeta(key: string): Promise<string | null>;
  setMeta(key: string, value: string): Promise<void>;

  // ---- devices ----
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

  // ---- samples ----
  /**
   * Upsert samples by id in ONE transaction; resolves only after the commit is durable.
   * A known id of the same owner is acknowledged again (not overwritten); a known id of another
   * owner is rejected, never overwritten.
   */
  putSamples(owner: string | null, samples: NewSample[]): Promise<PutSamplesResult>;
  getSample(id: string): Promise<SampleRecord | null>;
  samplePayload(id: string): Promise<Buffer | null>;
  /** ordered by seq; use { after: last.seq } to page */
  listSamples(filter?: SampleFilter): Promise<SampleRecord[]>;
  countSamples(filter?: SampleFilter): Promise<number>;
  /**
   * Set labels in one transaction. owner: only samples of that device may be labelled; when any
   * label targets another owner's sample nothing is stored and `forbidden` lists them. null = admin. Updates counter labelled_new by the number of newly labelled samples.
   */
  setLabels(labels: { id: string; label: string }[], source: string, owner: string | null): Promise<LabelResult>;
  /** LEARN: record task definition and held-out split of samples */
  assignSamples(rows: { id: string; assigned_task: string | null; split: 'train' | 'heldout' | null }[]): Promise<void>;
  markSamplesUsed(ids: string[], round: number): Promise<void>;

  /** LEARN: everything a training round writes, in one transaction (see RoundWrite) */
  applyRound(w: RoundWrite): Promise<void>;

  // ---- tasks ----
  putTask(t: TaskRecord): Promise<void>;
  getTask(id: string): Promise<TaskRecord | null>;
  listTasks(opts?: { includeRetired?: boolean }): Promise<TaskRecord[]>;

  // ---- versions and channels ----
  latestVersion(): Promise<VersionRecord | null>;
  getVersion(n: number): Promise<VersionRecord | null>;
  listVersions(): Promise<VersionRecord[]>;
  /**
   * Store a signed index as version v.n and (when channel is set) point the channel at it, in one
   * step: the index files are written and fsynced first, then the metadata commits. Fails if n
   * exists. modelShas: blobs the version references (they become downloadable).
   */
  addVersion(v: Omit<VersionRecord, 'index_sha'>, indexBytes: Buffer, sig: string, modelShas: string[]): Promise<VersionRecord>;
  readVersionIndex(n: number): Promise<{ bytes: Buffer; sig: string } | null>;
  /** true when a published version references the blob (only those are served to devices) */
  isPublishedBlob(sha: string): Promise<boolean>;
  getChannel(name: string): Promise<ChannelRecord | null>;
  listChannels(): Promise<ChannelRecord[]>;
  /** create the channel if missing; fields left out keep their value */
  upsertChannel(name: string, patch: Partial<Omit<ChannelRecord, 'name' | 'updated_at'>>): Promise<ChannelRecord>;
  /** point a channel at a version; the old version becomes previous_version */
  setChannelVersion(name: string, version: number): Promise<ChannelRecord>;

  // ---- counters (LEARN's `kb train --when`) ----
  counters(): Promise<Record<string, number>>;
  addCounter(name: string, by: number): Promise<void>;
  setCounter(name: string, value: number): Promise<void>;

  // ---- events ----
  logEvent(kind: string, detail?: Record<string, unknown>): Promise<void>;
  listEvents(opts?: { kind?: string; limit?: number }): Promise<EventRecord[]>;

  stats(): Promise<KbStats>;
  /** the parts of stats() over small tables (devices, versions, tasks): cheap enough for every metrics scrape */
  fleetStats(): Promise<Omit<KbStats, 'samples' | 'labelled'>>;
}
