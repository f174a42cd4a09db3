// One KB sample (NewSample, what a push or an import hands the store) for store tests: an f32
// sample with a neutral value in every field, so a test names only the fields it is about.
import { createHash } from 'node:crypto';
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
