// What `sedna-ll status` reports: identity, versions, tasks, outbox and quota, evictions, sync.
import { statSync } from 'node:fs';
import type { DB } from './db.js';
import { kvGet } from './db.js';
import type { EdgeConfig, HomePaths } from './home.js';
import { Outbox } from './outbox.js';
import { rejectedCount } from './rejected.js';
import { trustedKeys } from './trusted-keys.js';
import { activeVersion, listVersions } from './versions.js';

// Machine output naming (README "Machine output"): snake_case keys, ISO-8601 UTC times, sizes in
// bytes; each fact once (the device id is the run record's `device`).
export interface EdgeStatus {
  home: string;
  kb_url: string | null;
  active_version: string | null;
  previous_version: string | null;
  /** set when the active version's files cannot be read (the error, one line) */
  active_error?: string;
  versions: { id: string; origin: string; state: string; installed_at: string; activated_at: string | null }[];
  tasks: { id: string; attrs: Record<string, string>; classes: number; model_sha256: string; fallback: boolean }[];
  outbox: {
    pending: number;
    pending_bytes: number;
    uploaded: number;
    uploaded_bytes: number;
    labels_pending: number;
    /** samples the KB refused for good (store/rejected.ts), never sent again */
    rejected: number;
    /** uploaded samples deleted locally (upload.retention delete) */
    deleted_uploaded: number;
    /** tracked bytes, what the quota compares; max_bytes 0 = unlimited */
    bytes: number;
    max_bytes: number;
    used_pct: number | null;
  };
  /** samples the disk quota removed (uploaded first, then the least valuable pending ones) */
  evictions: { count: number; bytes: number; uploaded: number; pending: number; labelled: number };
  db_bytes: number;
  /**
   * the KB signing keys this edge trusts (the enrolled key plus those adopted at key rotations,
   * oldest first), each for the KB versions (after, upto] (null: open); [] when none is configured
   */
  trusted_keys: { fingerprint: string; after: number | null; upto: number | null }[];
  /** the last sync run: its start time, exit code and error, if any */
  last_sync: { time: string; exit: number | null; error?: string } | null;
}

const iso = (ms: number) => new Date(ms).toISOString();

function fileSize(p: string): number {
  try {
    return statSync(p).size;
  } catch {
    return 0;
  }
}

export function edgeStatus(paths: HomePaths, db: DB, cfg: EdgeConfig): EdgeStatus {
  const outbox = new Outbox(db, paths, cfg);
  let counts = outbox.counts();
  // the tracked byte count drives the quota; status is the cheap place to correct any drift
  // (counts() summed the rows' bytes in the same read: one scan of the table, not two)
  if (counts.rowBytes !== counts.bytes) {
    try {
      counts = { ...counts, bytes: outbox.recountBytes().actual };
    } catch {
      /* read-only or busy database: report the tracked numbers as they are */
    }
  }
  let active: ReturnType<typeof activeVersion> = null;
  let activeError: string | undefined;
  try {
    active = activeVersion(paths, db);
  } catch (e) {
    activeError = (e as Error).message.split('\n')[0];
  }
  const raw = kvGet(db, 'last_sync');
  let lastSync: EdgeStatus['last_sync'] = null;
  if (raw) {
    try {
      const j = JSON.parse(raw) as { time?: number; result?: unknown; summary?: { error?: string } };
      lastSync = { time: iso(Number(j.time) || 0), exit: typeof j.result === 'number' ? j.result : null, ...(j.summary?.error ? { error: j.summary.error } : {}) };
    } catch {
      lastSync = { time: iso(Number(raw) || 0), exit: null };
    }
  }
  return {
    home: paths.home,
    kb_url: cfg.kb?.url ?? null,
    active_version: kvGet(db, 'active_version'),
    previous_version: kvGet(db, 'previous_version'),
    ...(activeError ? { active_error: activeError } : {}),
    versions: listVersions(db).map((v) => ({ id: v.id, origin: v.origin, state: v.state, installed_at: iso(v.installed_at), activated_at: v.activated_at ? iso(v.activated_at) : null })),
    tasks: (active?.index.tasks ?? []).map((t) => ({
      id: t.id,
      attrs: t.attrs,
      classes: t.model.labels.length,
      model_sha256: t.model.sha256,
      fallback: active!.index.allocation.fallback === t.id,
    })),
    outbox: {
      pending: counts.pending,
      pending_bytes: counts.pendingBytes,
      uploaded: counts.uploaded,
      uploaded_bytes: counts.uploadedBytes,
      labels_pending: counts.labelsPending,
      rejected: rejectedCount(db),
      deleted_uploaded: counts.deletedUploaded,
      bytes: counts.bytes,
      max_bytes: counts.maxBytes,
      used_pct: counts.maxBytes ? Math.round((1000 * counts.bytes) / counts.maxBytes) / 10 : null,
    },
    evictions: { ...counts.evicted },
    db_bytes: fileSize(paths.db) + fileSize(`${paths.db}-wal`),
    trusted_keys: trustedKeys(db, cfg.kb?.public_key).map((e) => ({ fingerprint: e.fingerprint, after: e.after, upto: e.upto })),
    last_sync: lastSync,
  };
}
