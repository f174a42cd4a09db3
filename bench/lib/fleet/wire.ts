// The push body the simulated devices send, in the framing the edge uses with this KB: binary
// sample frames (POST /v1/sample-frames, format/sample-frames.ts) when GET /v1/protocol lists
// them, else the v1 JSON document (POST /v1/samples); fields in the order and shape the edge's
// PushReader writes, sent uncompressed (what the edge's --compress auto picks on a fast link). Payloads are float32
// features rounded to 3 decimals like the edge bench's outboxes; a pool of distinct payloads is
// made once so the load generator spends its CPU on HTTP, not on random numbers and sha256.
import { createHash } from 'node:crypto';
import type { UploadSample } from '../../../src/format/protocol.js';
import { mulberry32 } from '../../../src/random.js';
import { assembleFrames, encodeRecordHead, FRAMES_CONTENT_TYPE } from '../../../src/format/sample-frames.js';
import { uuidv7 } from '../../../src/store/uuid7.js';

/** push body format, as the edge's negotiation picks it (src/sync/negotiate.ts) */
export type Framing = 'json' | 'frames';
export const PUSH_PATH: Record<Framing, string> = { json: '/v1/samples', frames: '/v1/sample-frames' };

export interface PayloadPool {
  raw: Buffer[];
  b64: string[];
  sha: string[];
  /** `"payload_kind":"f32","payload_b64":"...","payload_sha":"..."` of each payload, made once */
  json: string[];
}

export function makePayloadPool(n: number, bytes: number, seed: number): PayloadPool {
  const rand = mulberry32(seed);
  const pool: PayloadPool = { raw: [], b64: [], sha: [], json: [] };
  for (let i = 0; i < n; i++) {
    const f = new Float32Array(Math.floor(bytes / 4));
    for (let k = 0; k < f.length; k++) f[k] = Math.round(rand() * 1000) / 1000;
    const b = Buffer.from(f.buffer);
    pool.raw.push(b);
    pool.b64.push(b.toString('base64'));
    pool.sha.push(createHash('sha256').update(b).digest('hex'));
    pool.json.push(`"payload_kind":"f32","payload_b64":"${pool.b64[i]}","payload_sha":"${pool.sha[i]}"`);
  }
  return pool;
}

export interface PushBody {
  ids: string[];
  body: Buffer;
  headers: Record<string, string>;
}

/** The sample of the wire (what sampleJson writes, as an object: the smoke test compares them). */
export function uploadSample(pool: PayloadPool, k: number, id: string, site: string, i: number, now: number): UploadSample {
  return {
    id,
    task: 'global',
    attrs: { site },
    payload_kind: 'f32',
    payload_b64: pool.b64[k],
    payload_sha: pool.sha[k],
    pred_label: String(i % 3),
    scores: [0.5, 0.3, 0.2],
    hard: true,
    hard_reasons: ['cross_entropy'],
    unseen: false,
    unseen_reason: null,
    kb_version: null,
    created_at: now,
  };
}

/**
 * The same sample as JSON text, assembled from pieces like the edge's PushReader does (a
 * JSON.stringify of every 4 KB base64 string made the load generator cost as much CPU as a replica).
 * id and site are [A-Za-z0-9-] (no escaping needed).
 */
export function sampleJson(pool: PayloadPool, k: number, id: string, site: string, i: number, now: number): string {
  return (
    `{"id":"${id}","task":"global","attrs":{"site":"${site}"},${pool.json[k]},"pred_label":"${i % 3}","scores":[0.5,0.3,0.2],` +
    `"hard":true,"hard_reasons":["cross_entropy"],"unseen":false,"unseen_reason":null,"kb_version":null,"created_at":${now}}`
  );
}

/** The meta JSON of a frames record: the sample's fields but id and payload_b64 (the record holds them). */
export function sampleMeta(pool: PayloadPool, k: number, site: string, i: number, now: number): string {
  return (
    `{"task":"global","attrs":{"site":"${site}"},"payload_kind":"f32","payload_sha":"${pool.sha[k]}","pred_label":"${i % 3}","scores":[0.5,0.3,0.2],` +
    `"hard":true,"hard_reasons":["cross_entropy"],"unseen":false,"unseen_reason":null,"kb_version":null,"created_at":${now}}`
  );
}

/** One batch of n new samples of a device at site `site`, payloads picked from the pool. */
export function makePushBody(pool: PayloadPool, n: number, site: string, rand: () => number, framing: Framing = 'json'): PushBody {
  const ids: string[] = [];
  const now = Date.now();
  if (framing === 'frames') {
    const parts: Buffer[] = [];
    let total = 0;
    for (let i = 0; i < n; i++) {
      const id = uuidv7();
      ids.push(id);
      const k = Math.floor(rand() * pool.raw.length);
      const head = encodeRecordHead(id, sampleMeta(pool, k, site, i, now), pool.raw[k].length);
      parts.push(head, pool.raw[k]);
      total += head.length + pool.raw[k].length;
    }
    return { ids, body: assembleFrames(parts, total), headers: { 'content-type': FRAMES_CONTENT_TYPE } };
  }
  const parts: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = uuidv7();
    ids.push(id);
    parts.push(sampleJson(pool, Math.floor(rand() * pool.b64.length), id, site, i, now));
  }
  return { ids, body: Buffer.from(`{"samples":[${parts.join(',')}]}`), headers: { 'content-type': 'application/json' } };
}
