// Sync protocol shared by the edge client (src/sync) and the KB server (src/kb).
// HTTP/1.1 + JSON under /v1; see DESIGN.md "Sync protocol".
//
//   GET  /v1/protocol         -> ProtocolInfo: what this KB speaks beyond v1 JSON (a KB without
//                                it answers 404: an old KB, JSON pushes only)
//   POST /v1/samples          body PushSamplesRequest (may be Content-Encoding: gzip) -> PushSamplesResponse
//   POST /v1/sample-frames    body: binary sample frames (format/sample-frames.ts, Content-Type
//                                FRAMES_CONTENT_TYPE, may be Content-Encoding: gzip), read as a
//                                stream -> PushSamplesResponse, exactly as /v1/samples answers;
//                                only sent to a KB whose ProtocolInfo lists "frames1"
//   POST /v1/labels           body PushLabelsRequest  -> PushLabelsResponse
//   GET  /v1/index?since=N[&active=A]
//                             -> 200 index.json bytes (exactly as signed) with header
//                                X-Sedna-Signature: <base64 ed25519 sig>, X-Sedna-Version: N
//                             -> 304 when the channel's version <= since, except (channel
//                                fallback) when the device sent `active` (the KB version it
//                                runs) and the channel's version differs from it: then 200 with
//                                the channel's index although it is not newer than since (a
//                                rollout aborted on the KB points the channel back at an older
//                                version). The edge installs it if missing and activates it
//                                through its trial; it does not retry a version that failed on
//                                it. Edges that omit `active` get the old answer; old KBs ignore it.
//   GET  /v1/keys             -> { public_key, transitions: SignedTransition[] }: the KB's
//                                signing-key chain (format/key-chain.ts). An edge asks only when
//                                an index does not verify with the keys it trusts; old KBs: 404
//   GET  /v1/blobs/<sha256>   -> model bytes; strong ETag "<sha256>", Accept-Ranges, Range/If-Range
//   POST /v1/report           body DeviceReport -> { ok: true }
//   GET  /healthz, GET /metrics (Prometheus text)
// Every device request carries Authorization: Bearer <device token>; the KB knows the device
// from its token, so a device can only read and write its own data.
import { PREPROCESSING_SCHEMA, type Preprocessing } from './index-manifest.js';

const channelNumbers = { type: 'array', maxItems: 3, items: { type: 'number' } } as const;

export const PROTOCOL_VERSION = 'v1';
/**
 * Protocol revision inside /v1, announced by GET /v1/protocol. 1: JSON only (a KB without the
 * endpoint); 2: + binary sample frames. An edge uses a feature only when the KB lists it, so
 * old edges and old KBs keep working in both directions.
 */
export const PROTOCOL_REVISION = 2;

export interface ProtocolInfo {
  revision: number;
  /** push body formats: "json" (POST /v1/samples), "frames1" (POST /v1/sample-frames) */
  push_framings: string[];
  /** Content-Encodings the KB decodes on pushes */
  push_encodings: string[];
}
export const SIGNATURE_HEADER = 'x-sedna-signature';
export const VERSION_HEADER = 'x-sedna-version';

export type PayloadKind = 'f32' | 'png' | 'jpeg' | 'npy' | 'none';

/**
 * How edge and KB store the task of a sample no task could serve (an unknown site and no
 * fallback): their samples.task columns are NOT NULL (and the edge's is part of the dedup key),
 * so "no task" is stored as '' and is null on the wire and in every output.
 */
export const NO_TASK = '';

/**
 * The one rule for sample ids, everywhere they enter (outbox, serve, feedback, KB import, push):
 * a device makes UUIDv7s (36 characters), an import without ids derives imp-<40 hex>; any
 * client-made id within the rule is accepted, since the KB upserts by it.
 */
export const SAMPLE_ID_RE = /^[A-Za-z0-9-]{8,64}$/;
export const SAMPLE_ID_RULE = '8-64 characters of A-Z a-z 0-9 -';
const SAMPLE_ID_SCHEMA = { type: 'string', minLength: 8, maxLength: 64, pattern: '^[A-Za-z0-9-]+$' } as const;

export const isSampleId = (id: unknown): id is string => typeof id === 'string' && SAMPLE_ID_RE.test(id);

export interface UploadSample {
  /** client-made id (UUIDv7); the KB upserts by it, so a re-sent sample is harmless */
  id: string;
  /** null: the edge had no task for it (an unknown site and no fallback task) */
  task: string | null;
  attrs: Record<string, string>;
  /** 'none' when the device's upload policy keeps payloads local */
  payload_kind: PayloadKind;
  /** base64 payload bytes; absent when payload_kind is 'none' */
  payload_b64?: string;
  payload_sha: string;
  pred_label: string | null;
  scores: number[];
  hard: boolean;
  hard_reasons: string[];
  unseen: boolean;
  unseen_reason: string | null;
  kb_version: number | null;
  created_at: number;
  label?: string | null;
  /** image samples: the preprocessing the edge's model used (the index's), sent with the bytes */
  preprocessing?: Preprocessing;
}

export interface PushSamplesRequest {
  samples: UploadSample[];
}
export interface PushSamplesResponse {
  /** ids the KB has durably stored (committed), including ones it already had */
  stored: string[];
  /** ids refused, with the reason (schema problems of single samples) */
  rejected?: { id: string; reason: string }[];
}

export interface PushLabelsRequest {
  labels: { id: string; label: string }[];
}
export interface PushLabelsResponse {
  stored: string[];
  /** ids the KB does not know (sample not uploaded yet): the edge retries later */
  unknown?: string[];
}

export interface DeviceReport {
  active_version: number | null;
  versions?: { version: number; state: string }[];
  /** last trial outcome on this device, if any */
  trial?: { version: number; result: 'pass' | 'fail' | 'pending'; reason?: string };
  health?: Record<string, unknown>;
  pending_samples?: number;
}

export const UPLOAD_SAMPLE_SCHEMA = {
  type: 'object',
  required: ['id', 'task', 'attrs', 'payload_kind', 'payload_sha', 'pred_label', 'scores', 'hard', 'hard_reasons', 'unseen', 'unseen_reason', 'kb_version', 'created_at'],
  additionalProperties: false,
  properties: {
    id: SAMPLE_ID_SCHEMA,
    task: { anyOf: [{ type: 'string', minLength: 1, maxLength: 128 }, { type: 'null' }] },
    attrs: { type: 'object', additionalProperties: { type: 'string', maxLength: 256 } },
    payload_kind: { enum: ['f32', 'png', 'jpeg', 'npy', 'none'] },
    payload_b64: { type: 'string' },
    payload_sha: { type: 'string', pattern: '^[0-9a-f]{64}$' },
    pred_label: { type: ['string', 'null'] },
    scores: { type: 'array', maxItems: 100000, items: { type: 'number' } },
    hard: { type: 'boolean' },
    hard_reasons: { type: 'array', items: { type: 'string' } },
    unseen: { type: 'boolean' },
    unseen_reason: { type: ['string', 'null'] },
    kb_version: { type: ['integer', 'null'] },
    created_at: { type: 'integer' },
    label: { type: ['string', 'null'] },
    // the index's preprocessing, with mean/std bounded by the channel count (device input)
    preprocessing: {
      ...PREPROCESSING_SCHEMA,
      properties: { ...PREPROCESSING_SCHEMA.properties, mean: channelNumbers, std: channelNumbers },
    },
  },
} as const;

export const PUSH_SAMPLES_SCHEMA = {
  type: 'object',
  required: ['samples'],
  additionalProperties: false,
  properties: { samples: { type: 'array', maxItems: 10000, items: UPLOAD_SAMPLE_SCHEMA } },
} as const;

export const PUSH_LABELS_SCHEMA = {
  type: 'object',
  required: ['labels'],
  additionalProperties: false,
  properties: {
    labels: {
      type: 'array',
      maxItems: 100000,
      items: {
        type: 'object',
        required: ['id', 'label'],
        additionalProperties: false,
        properties: { id: SAMPLE_ID_SCHEMA, label: { type: 'string', minLength: 1, maxLength: 256 } },
      },
    },
  },
} as const;

export const DEVICE_REPORT_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['active_version'],
  properties: {
    active_version: { type: ['integer', 'null'] },
    versions: {
      type: 'array',
      items: { type: 'object', required: ['version', 'state'], properties: { version: { type: 'integer' }, state: { type: 'string' } } },
    },
    trial: {
      type: 'object',
      required: ['version', 'result'],
      properties: { version: { type: 'integer' }, result: { enum: ['pass', 'fail', 'pending'] }, reason: { type: 'string' } },
    },
    health: { type: 'object' },
    pending_samples: { type: 'integer' },
  },
} as const;
