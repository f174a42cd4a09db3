// Push ingest on the KB: wire samples -> NewSample (checked one by one) -> the store in large
// transactions. Both push framings end here: the JSON body (POST /v1/samples, decoded by
// fastify, then `decodeSample`) and the binary frames stream (POST /v1/sample-frames,
// `ingestFrames`, read as it arrives, all the records of each received chunk in one synchronous
// pass: no whole-body buffer, no JSON document around the payloads).
//
// The ack contract is the same for both (protocol.ts PushSamplesResponse): `stored` lists ids
// whose transaction committed (new or stored before: re-sending is harmless), `rejected` the
// ids refused with a one-line reason. A record that fails its own checks is rejected and
// skipped; the records around it are stored as if it was not there.
import { hash } from 'node:crypto';
import { normaliseAttrs } from '../format/attrs.js';
import type { UploadSample } from '../format/protocol.js';
import { FramesStreamError, readFrames } from '../format/sample-frames.js';
import { validate as generatedSampleCheck } from '../format/sample-validator.gen.js';
import type { NewSample, PutSamplesResult } from './store.js';

type WireSample = Omit<UploadSample, 'payload_b64'>;

/** A checked wire sample with its payload bytes -> what the store keeps; a one-line reason when unusable. */
export function toNewSample(s: WireSample, payload: Buffer | null): NewSample | string {
  if (s.payload_kind === 'none') {
    if (payload !== null && payload.length > 0) return 'payload bytes given with payload_kind "none"';
    payload = null;
  } else {
    if (payload === null) return `payload missing for payload_kind "${s.payload_kind}"`;
    // crypto.hash: one call, no Hash object per sample (the same digest as createHash)
    if (hash('sha256', payload, 'hex') !== s.payload_sha) return 'payload_sha does not match the payload';
  }
  return {
    id: s.id,
    task: s.task,
    // edges send normalised attributes; normalising again is idempotent and protects the
    // learner's task definition from an edge that did not
    attrs: normaliseAttrs(s.attrs),
    payload_kind: s.payload_kind,
    payload,
    payload_sha: s.payload_sha,
    pred_label: s.pred_label,
    scores: s.scores,
    hard: s.hard,
    hard_reasons: s.hard_reasons,
    unseen: s.unseen,
    unseen_reason: s.unseen_reason,
    kb_version: s.kb_version,
    created_at: s.created_at,
    label: s.label ?? null,
    source: 'edge',
    ...(s.preprocessing ? { preprocessing: s.preprocessing } : {}),
  };
}

/** A sample of a JSON push (already schema-checked by the route) -> NewSample or a reason. */
export function decodeSample(s: UploadSample): NewSample | string {
  if (s.payload_kind === 'none' && s.payload_b64 !== undefined) return 'payload_b64 given with payload_kind "none"';
  if (s.payload_kind !== 'none' && s.payload_b64 === undefined) return `payload_b64 missing for payload_kind "${s.payload_kind}"`;
  return toNewSample(s, s.payload_b64 === undefined ? null : Buffer.from(s.payload_b64, 'base64'));
}

type Check = ((x: unknown) => boolean) & { errors?: { instancePath?: string; message?: string }[] | null };
/**
 * The per-record schema check: protocol.ts's UPLOAD_SAMPLE_SCHEMA as strict as the JSON route,
 * compiled ahead of time by ajv standalone (scripts/gen-sample-validator.ts; a test keeps it
 * equal to the schema): compiling it at the first frames push cost the KB 30-150 ms of CPU.
 */
const isSample = generatedSampleCheck as unknown as Check;

export interface IngestOptions {
  /** writes one transaction (the store's putSamples: resolves after COMMIT) */
  put: (samples: NewSample[]) => Promise<PutSamplesResult>;
  /** a record body larger than this is rejected (and skipped) */
  maxRecordBytes: number;
  /** samples / payload bytes per transaction */
  txSamples?: number;
  txBytes?: number;
  /** records per request; past it the stream is refused (committed records stay acked) */
  maxRecords?: number;
  /** after each transaction: its duration, records in it, the store's answer */
  onCommit?: (seconds: number, records: number, r: PutSamplesResult) => void;
}

export interface IngestResult {
  stored: string[];
  rejected: { id: string; reason: string }[];
  /** records read (good and rejected) */
  records: number;
  /** rejections made by the store (ownership, id collisions), not by the record checks */
  storeRejected: number;
  /** the stream broke (cut, not a frames stream, bad gzip): what was committed before stays acked */
  streamError?: { status: number; message: string };
}

/**
 * Read a frames stream and store it, committing every `txSamples` samples (or `txBytes`
 * payload bytes) in one transaction while the rest is still arriving. Never throws for bad
 * input: a broken stream ends the ingest with `streamError`, after committing every good
 * record read before the break.
 */
export async function ingestFrames(src: AsyncIterable<Buffer>, o: IngestOptions): Promise<IngestResult> {
  const txSamples = o.txSamples ?? 2000;
  const txBytes = o.txBytes ?? 32 << 20;
  const maxRecords = o.maxRecords ?? 1_000_000;
  const stored: string[] = [];
  const rejected: { id: string; reason: string }[] = [];
  let storeRejected = 0;
  let records = 0;
  let pending: NewSample[] = [];
  let pendingBytes = 0;
  const commit = async () => {
    if (!pending.length) return;
    const batch = pending;
    pending = [];
    pendingBytes = 0;
    const t0 = performance.now();
    const r = await o.put(batch);
    o.onCommit?.((performance.now() - t0) / 1000, batch.length, r);
    for (const id of r.stored) stored.push(id);
    for (const x of r.rejected) rejected.push(x);
    storeRejected += r.rejected.length;
  };
  let streamError: IngestResult['streamError'];
  try {
    // records come in arrays, all those of one received chunk: parsed in one synchronous pass
    reading: for await (const recs of readFrames(src, { maxRecordBytes: o.maxRecordBytes })) {
      for (const rec of recs) {
        if (++records > maxRecords) {
          streamError = { status: 413, message: `more than ${maxRecords} records in one push; the first ${maxRecords} were read` };
          break reading;
        }
        const reason = rec.error ?? decodeRecord(rec.id, rec.meta!, rec.payload!);
        if (typeof reason === 'string') {
          rejected.push({ id: rec.id, reason: `record ${rec.index}: ${reason}` });
          continue;
        }
        pending.push(reason);
        pendingBytes += reason.payload?.length ?? 0;
        if (pending.length >= txSamples || pendingBytes >= txBytes) await commit();
      }
    }
  } catch (e) {
    const err = e as Error & { code?: string };
    if (e instanceof FramesStreamError) streamError = { status: 400, message: `sample frames: ${err.message}` };
    else if (err.code === 'Z_DATA_ERROR' || err.code === 'Z_BUF_ERROR') streamError = { status: 400, message: `bad gzip body: ${err.message}` };
    else if (err.code === 'ECONNRESET' || /aborted|premature/i.test(err.message)) streamError = { status: 400, message: `push cut: ${err.message}` };
    else throw e;
  }
  // what arrived intact is committed even when the stream broke after it (re-sent pushes upsert)
  await commit();
  return { stored: [...new Set(stored)], rejected, records, storeRejected, ...(streamError ? { streamError } : {}) };
}

/** One record -> NewSample, or why it is refused. */
function decodeRecord(id: string, metaText: string, payload: Buffer): NewSample | string {
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(metaText) as Record<string, unknown>;
  } catch (e) {
    return `meta is not JSON: ${(e as Error).message}`;
  }
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) return 'meta is not a JSON object';
  if ('id' in meta || 'payload_b64' in meta) return 'meta must not carry id or payload_b64 (the record holds them)';
  meta.id = id;
  if (!isSample(meta)) {
    const e = isSample.errors?.[0];
    return `invalid sample: ${e?.instancePath || '/'} ${e?.message ?? 'does not match the schema'}`;
  }
  const s = meta as unknown as WireSample;
  return toNewSample(s, s.payload_kind === 'none' && payload.length === 0 ? null : payload);
}
