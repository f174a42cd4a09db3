// One KB sample for tests: NewSample (what a push or an import hands the store) or UploadSample
// (what an edge sends, payload in base64): an f32 sample with a neutral value in every field, so
// a test names only the fields it is about.
import { createHash } from 'node:crypto';
import type { UploadSample } from '../../src/format/protocol.js';
import type { NewSample } from '../../src/kb/store.js';

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** payload null: a sample whose payload stayed on the edge ('none'; its sha is the id's) */
export function kbSample(id: string, payload: Buffer | null, over: Partial<NewSample> = {}): NewSample {
  return {
    id,
    task: 'global',
    attrs: {},
    payload_kind: payload ? 'f32' : 'none',
    payload,
    payload_sha: sha256(payload ?? Buffer.from(id)),
    pred_label: null,
    scores: [],
    hard: false,
    hard_reasons: [],
    unseen: false,
    unseen_reason: null,
    kb_version: null,
    created_at: 1,
    ...over,
  };
}

/** The same sample as an edge sends it (POST /v1/samples JSON: the payload in payload_b64). */
export function wireSample(id: string, payload: Buffer, over: Partial<UploadSample> = {}): UploadSample {
  const { payload: _bytes, ...fields } = kbSample(id, payload);
  return { ...fields, payload_b64: payload.toString('base64'), ...over };
}
