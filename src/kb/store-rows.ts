// Row <-> record mapping shared by the KB store backends (SQLite and PostgreSQL store the same
// columns; JSON fields are text in both).
import { NO_TASK, type DeviceReport } from '../format/protocol.js';
import type { ChannelRecord, DeviceRecord, SampleRecord, VersionRecord } from './store.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Row = Record<string, any>;

/** payloads up to this size live in the samples row; larger ones go to blobs/ */
export const INLINE_PAYLOAD_MAX = 256 * 1024;

export const SAMPLE_COLS =
  'seq, id, device_id, source, task, attrs, payload_kind, payload_sha, payload_bytes, pred_label, scores, hard, hard_reasons, unseen, unseen_reason, kb_version, created_at, received_at, label, label_source, labelled_at, assigned_task, split, used_in_round, preprocessing';

export function json<T>(s: string | null | undefined, dflt: T): T {
  if (s === null || s === undefined) return dflt;
  return JSON.parse(s) as T;
}

export function toDevice(r: Row): DeviceRecord {
  return {
    id: r.id,
    channel: r.channel,
    created_at: r.created_at,
    revoked_at: r.revoked_at ?? null,
    last_seen: r.last_seen ?? null,
    active_version: r.active_version ?? null,
    last_report: json<DeviceReport | null>(r.last_report, null),
  };
}

export function toSample(r: Row): SampleRecord {
  return {
    id: r.id,
    device_id: r.device_id ?? null,
    task: r.task === NO_TASK ? null : r.task,
    attrs: json(r.attrs, {}),
    payload_kind: r.payload_kind,
    payload_sha: r.payload_sha,
    payload_bytes: r.payload_bytes,
    pred_label: r.pred_label ?? null,
    scores: json(r.scores, []),
    hard: !!r.hard,
    hard_reasons: json(r.hard_reasons, []),
    unseen: !!r.unseen,
    unseen_reason: r.unseen_reason ?? null,
    kb_version: r.kb_version ?? null,
    created_at: r.created_at,
    received_at: r.received_at,
    source: r.source,
    label: r.label ?? null,
    label_source: r.label_source ?? null,
    labelled_at: r.labelled_at ?? null,
    assigned_task: r.assigned_task ?? null,
    split: r.split ?? null,
    used_in_round: r.used_in_round ?? null,
    seq: r.seq,
    ...(r.preprocessing ? { preprocessing: json(r.preprocessing, undefined) } : {}),
  };
}

export function toVersion(r: Row): VersionRecord {
  return {
    n: r.n,
    created_at: r.created_at,
    parent: r.parent ?? null,
    index_sha: r.index_sha,
    channel: r.channel ?? null,
    tasks: r.tasks,
    notes: json(r.notes, null),
  };
}

export function toChannel(r: Row): ChannelRecord {
  return {
    name: r.name,
    version: r.version ?? null,
    previous_version: r.previous_version ?? null,
    updated_at: r.updated_at,
    config: json(r.config, {}),
    state: json(r.state, {}),
  };
}

