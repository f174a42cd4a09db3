// What `sedna-ll status` reports: identity, versions, tasks, outbox and quota, evictions, sync.
import { statSync } from 'node:fs';
import type { DB } from './db.js';
import { kvGet } from './db.js';
import type { EdgeConfig, HomePaths } from './home.js';
import { Outbox, type OutboxCounts } from './outbox.js';
import { rejectedCount } from './rejected.js';
import { activeVersion, listVersions } from './versions.js';

export interface EdgeStatus {
  device_id: string;
  home: string;
  kb_url: string | null;
  active_version: string | null;
  previous_version: string | null;
  /** set when the active version's files cannot be read (the error, one line) */
  active_error?: string;
  versions: { id: string; origin: string; state: string; installed_at: number; activated_at: number | null }[];
  tasks: { id: string; attrs: Record<string, string>; labels: number; model: string; fallback: boolean }[];
  /** rejected: samples the KB refused for good (store/rejected.ts), never sent again */
  outbox: OutboxCounts & { rejected: number; max_mb: number; used_pct: number | null };
  evictions: OutboxCounts['evicted'];
  labels_pending: number;
  db_bytes: number;
  last_sync: { time: number; result: number | string | null; [k: string]: unknown } | null;
}

function fileSize(p: string): number {
  try {
    return statSync(p).size;
  } catch {
    return 0;
  }
}

export function edgeStatus(paths: HomePaths, db: DB, cfg: EdgeConfig): EdgeStatus {
  const outbox = new Outbox(db, paths, cfg);
  // the tracked byte count drives the quota; status is the cheap place to correct any drift
  try {
    outbox.recountBytes();
  } catch {
    /* read-only or busy database: report the tracked numbers as they are */
  }
  const counts = outbox.counts();
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
      lastSync = JSON.parse(raw);
    } catch {
      lastSync = { time: Number(raw) || 0, result: null };
    }
  }
  return {
    device_id: cfg.device_id,
    home: paths.home,
    kb_url: cfg.kb?.url ?? null,
    active_version: kvGet(db, 'active_version'),
    previous_version: kvGet(db, 'previous_version'),
    ...(activeError ? { active_error: activeError } : {}),
    versions: listVersions(db).map((v) => ({ id: v.id, origin: v.origin, state: v.state, installed_at: v.installed_at, activated_at: v.activated_at })),
    tasks: (active?.index.tasks ?? []).map((t) => ({
      id: t.id,
      attrs: t.attrs,
      labels: t.model.labels.length,
      model: t.model.sha256,
      fallback: active!.index.allocation.fallback === t.id,
    })),
    outbox: { ...counts, rejected: rejectedCount(db), max_mb: cfg.outbox.max_mb, used_pct: counts.maxBytes ? Math.round((1000 * counts.bytes) / counts.maxBytes) / 10 : null },
    evictions: counts.evicted,
    labels_pending: counts.labelsPending,
    db_bytes: fileSize(paths.db) + fileSize(`${paths.db}-wal`),
    last_sync: lastSync,
  };
}
