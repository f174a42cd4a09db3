// Push: stream the outbox to the KB in batches, idempotently.
//
// Each batch (at most --batch-size samples and --batch-bytes payload bytes) becomes one gzip'd
// JSON body POSTed to /v1/samples. The KB upserts by the client-made sample id and answers with
// the ids it has durably stored; ONLY those are marked uploaded, so a cut connection, a lost
// answer or a kill -9 at any point just means the batch is sent again next time (harmless).
//
// Memory: the outbox is walked with a cursor, one batch in hand and at most one more being
// prepared (read + JSON + gzip of batch k+1 overlaps the round trip of batch k), so RSS does
// not grow with the backlog.
import { gzip } from 'node:zlib';
import { promisify } from 'node:util';
import type { PushLabelsResponse, PushSamplesResponse, UploadSample } from '../format/protocol.js';
import { type DB, logEvent } from '../store/db.js';
import type { EdgeConfig } from '../store/home.js';
import type { Outbox, OutboxSample } from '../store/outbox.js';
import { type KbClient, SyncHttpError } from './http.js';
import type { Progress } from './progress.js';

const gzipAsync = promisify(gzip);

export interface PushCounters {
  pushed: number;
  acked: number;
  rejected: number;
  labels_pushed: number;
}

export interface PushOptions {
  batchSize: number;
  batchBytes: number;
  /** gzip level (1 fastest .. 9 smallest); payloads are mostly numbers/pixels: 1 is the sweet spot */
  gzipLevel?: number;
  progress?: Progress;
}

/** Does the upload policy let this task's payload bytes leave the device? */
export function payloadAllowed(config: EdgeConfig, task: string): boolean {
  return (config.upload.per_task?.[task] ?? config.upload.payload) === 'raw';
}

/** The wire form of one outbox sample under the upload policy. */
export function toUpload(s: OutboxSample, sendPayload: boolean): UploadSample {
  const u: UploadSample = {
    id: s.id,
    task: s.task,
    attrs: s.attrs,
    payload_kind: 'none',
    payload_sha: s.payloadSha,
    pred_label: s.predLabel,
    scores: s.scores,
    hard: s.hard,
    hard_reasons: s.hardReasons,
    unseen: s.unseen,
    unseen_reason: s.unseenReason,
    // local-<n> versions are not KB versions: the KB only knows its own numbering
    kb_version: s.kbVersion !== null && /^\d+$/.test(s.kbVersion) ? Number(s.kbVersion) : null,
    created_at: s.createdAt,
  };
  if (sendPayload && s.payload) {
    u.payload_kind = s.payloadKind;
    u.payload_b64 = s.payload.toString('base64');
  }
  if (s.label !== null) u.label = s.label;
  return u;
}

interface Prepared {
  ids: string[];
  labels: Record<string, string>;
  body: Buffer;
  rawBytes: number;
  missingBlobs: number;
  cursor: string | null;
}

/** Push every pending sample (then the labels); counters are updated as batches are acked. */
export async function pushSamples(db: DB, outbox: Outbox, config: EdgeConfig, client: KbClient, c: PushCounters, o: PushOptions): Promise<void> {
  const total = outbox.counts().pending;
  const level = o.gzipLevel ?? 1;
  const retention = config.upload.retention;

  const prepare = async (after: string | null): Promise<Prepared | null> => {
    const batch = outbox.pendingBatch(o.batchSize, o.batchBytes, after, { payload: (t) => payloadAllowed(config, t) });
    if (batch.samples.length === 0) return null;
    const ids: string[] = [];
    const labels: Record<string, string> = {};
    const parts: string[] = [];
    let missingBlobs = 0;
    for (const s of batch.samples) {
      ids.push(s.id);
      if (s.label !== null) labels[s.id] = s.label;
      // a payload whose blob vanished cannot be sent; its metadata still can (payload 'none')
      if (s.payloadError) missingBlobs++;
      parts.push(JSON.stringify(toUpload(s, payloadAllowed(config, s.task))));
    }
    const json = Buffer.from(`{"samples":[${parts.join(',')}]}`);
    const body = await gzipAsync(json, { level });
    return { ids, labels, body, rawBytes: json.length, missingBlobs, cursor: batch.cursor };
  };

  let next = prepare(null);
  let done = 0;
  for (;;) {
    const b = await next;
    if (!b) break;
    client.checkDeadline('the next batch');
    if (b.missingBlobs) logEvent(db, 'sync_missing_blobs', { count: b.missingBlobs });
    c.pushed += b.ids.length;
    const sending = client.request({
      method: 'POST',
      path: '/v1/samples',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: b.body,
    });
    // prepare the following batch while this one travels and the KB commits it
    next = prepare(b.cursor);
    next.catch(() => {}); // surfaced when awaited
    const res = await sending;
    let reply: PushSamplesResponse;
    try {
      reply = JSON.parse(res.body.toString('utf8')) as PushSamplesResponse;
      if (!Array.isArray(reply.stored)) throw new Error('no "stored" array');
    } catch (e) {
      throw new SyncHttpError(`KB answer to POST /v1/samples is not a push reply: ${(e as Error).message}`, 'protocol');
    }
    // never trust an id we did not send in this batch
    const sent = new Set(b.ids);
    const stored = reply.stored.filter((id) => sent.has(id));
    const sentLabels: Record<string, string> = {};
    for (const id of stored) if (b.labels[id] !== undefined) sentLabels[id] = b.labels[id];
    outbox.markUploaded(stored, sentLabels);
    if (retention === 'delete') outbox.deleteUploaded(stored);
    c.acked += stored.length;
    if (reply.rejected?.length) {
      c.rejected += reply.rejected.length;
      logEvent(db, 'sync_rejected', { count: reply.rejected.length, first: reply.rejected.slice(0, 20) });
    }
    done += b.ids.length;
    o.progress?.update('push', Math.min(done, total), total);
  }
}

/** Push pending labels of uploaded samples; ids the KB does not know yet stay pending. */
export async function pushLabels(outbox: Outbox, client: KbClient, c: PushCounters, batch = 5000): Promise<void> {
  // labels already marked stay out of pendingLabels; unknown ones are skipped by a seen set
  const seen = new Set<string>();
  for (;;) {
    client.checkDeadline('pushing labels');
    const items = outbox.pendingLabels(batch + seen.size).filter((l) => !seen.has(l.id)).slice(0, batch);
    if (items.length === 0) return;
    for (const l of items) seen.add(l.id);
    const res = await client.request({
      method: 'POST',
      path: '/v1/labels',
      headers: { 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify({ labels: items.map((l) => ({ id: l.id, label: l.label })) })),
    });
    let reply: PushLabelsResponse;
    try {
      reply = JSON.parse(res.body.toString('utf8')) as PushLabelsResponse;
      if (!Array.isArray(reply.stored)) throw new Error('no "stored" array');
    } catch (e) {
      throw new SyncHttpError(`KB answer to POST /v1/labels is not a label reply: ${(e as Error).message}`, 'protocol');
    }
    const stored = new Set(reply.stored);
    const acked = items.filter((l) => stored.has(l.id)).map((l) => ({ id: l.id, label: l.label }));
    c.labels_pushed += outbox.markLabelsUploaded(acked);
  }
}
