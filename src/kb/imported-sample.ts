// The stored form of a sample imported from a file (`kb samples import`): no device, no
// prediction, source "import". Without an id one is derived from the content (payload, label,
// attributes), so importing the same file twice stores each sample once. Without a task it has
// none (null, as an edge sample no task served; before, such imports were stored as task
// "unassigned", a name a real task could have: those rows keep it).
import type { PayloadKind } from '../format/protocol.js';
import { sha256Hex } from '../format/signature.js';
import type { NewSample } from './store.js';

export function importedSample(kind: PayloadKind, payload: Buffer, label: string | null, attrs: Record<string, string>, id: string | undefined, task: string | null | undefined, idPrefix: string): NewSample {
  const payload_sha = sha256Hex(payload);
  return {
    id: id ?? idPrefix + sha256Hex(`${payload_sha}\u0000${label ?? ''}\u0000${JSON.stringify(attrs)}`).slice(0, 40),
    task: task ?? null,
    attrs,
    payload_kind: kind,
    payload,
    payload_sha,
    pred_label: null,
    scores: [],
    hard: false,
    hard_reasons: [],
    unseen: false,
    unseen_reason: null,
    kb_version: null,
    created_at: Date.now(),
    label,
    source: 'import',
  };
}
