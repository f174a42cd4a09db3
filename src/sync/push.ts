// Push: stream the outbox to the KB in batches, idempotently.
//
// Each batch (at most --batch-size samples and --batch-bytes payload bytes) becomes one body,
// gzipped or not per the compress policy (compress-policy.ts): binary sample frames POSTed to
// /v1/sample-frames when the KB announces them (negotiate.ts), else the v1 JSON document POSTed
// to /v1/samples (an old KB, or --framing json). The
// KB upserts by the client-made sample id and answers with the ids it has durably stored; ONLY
// those are marked uploaded, so a cut connection, a lost answer or a kill -9 at any point just
// means the batch is sent again next time (harmless).
//
// Memory: the outbox is walked with a cursor, one batch in flight and a read-ahead of `prefetch`
// batches (read + JSON + gzip overlap the round trip), so RSS does not grow with the backlog.
import { gzip } from 'node:zlib';
import { promisify } from 'node:util';
import type { PushLabelsResponse, PushSamplesResponse } from '../format/protocol.js';
import { type DB, logEvent } from '../store/db.js';
import type { EdgeConfig } from '../store/home.js';
import type { Outbox } from '../store/outbox.js';
import { markRejected } from '../store/rejected.js';
import { CompressPolicy, type CompressMode } from './compress-policy.js';
import { type Framing, PushReader, pendingCounts } from './outbox-reader.js';
import { FRAMES_CONTENT_TYPE } from '../format/sample-frames.js';
import { type KbClient, SyncHttpError } from './http.js';
import type { Progress } from './progress.js';

const gzipAsync = promisify(gzip);
/** acked sample ids marked uploaded per transaction (see pushBatches) */
const MARK_EVERY = 8192;
/**
 * Default batch limits per framing. JSON: the KB parses each body as one document (memory and
 * a pause per batch), so batches stay small. Frames: the KB reads the body as a stream and
 * commits every 2000 records while the rest arrives, so bigger batches only save round trips;
 * they stay small enough that the compress policy's first batches (gzip, then plain, EXPLORE
 * each) are a small part of a push: with 8192-sample batches a 20k-sample push was all
 * exploration, gzipped on loopback where plain is several times faster.
 */
export const BATCH_DEFAULTS: Record<Framing, { size: number; bytes: number }> = {
  json: { size: 500, bytes: 4 << 20 },
  frames: { size: 1024, bytes: 4 << 20 },
};
/** WAL pages between checkpoints while marking acks (see pushSamples) */
const PUSH_AUTOCHECKPOINT_PAGES = 16384;

export interface PushCounters {
  /** samples in batches the KB answered (acked + rejected + ignored); never counts a batch lost on the way */
  pushed: number;
  acked: number;
  rejected: number;
  labels_pushed: number;
  /** sample batches sent gzipped / uncompressed */
  batches_gzip: number;
  batches_plain: number;
  /** the push body format this run used (null: nothing was pending) */
  push_framing: Framing | null;
}

export interface PushOptions {
  /** default: BATCH_DEFAULTS of the framing */
  batchSize?: number;
  batchBytes?: number;
  /** the body format (negotiate.ts decides it with the KB) */
  framing: Framing;
  /** gzip level (1 fastest .. 9 smallest); payloads are mostly numbers/pixels: 1 is the sweet spot */
  gzipLevel?: number;
  /** auto (default): gzip a batch only when estimated to push sooner; gzip; none */
  compress?: CompressMode;
  /** batches read ahead and gzipped in parallel (default 2: one per core of a small gateway) */
  prefetch?: number;
  progress?: Progress;
}

/** Does the upload policy let this task's payload bytes leave the device? */
export function payloadAllowed(config: EdgeConfig, task: string): boolean {
  return (config.upload.per_task?.[task] ?? config.upload.payload) === 'raw';
}

interface Prepared {
  ids: string[];
  labels: Record<string, string>;
  body: Promise<Buffer>;
  gzip: boolean;
  /** uncompressed body bytes */
  rawBytes: number;
  missingBlobs: number;
}

/** Push every pending sample; counters are updated as batches are acked. */
export async function pushSamples(db: DB, outbox: Outbox, config: EdgeConfig, client: KbClient, c: PushCounters, o: PushOptions): Promise<void> {
  // Acks are marked with synchronous=NORMAL on this connection (still atomic; WAL frames reach
  // the disk at the next checkpoint or the next FULL commit of any writer) instead of one fsync
  // per batch: a mark lost to a power cut only means that batch is sent again, which the KB
  // upserts harmlessly. Restored before anything else (pull, install) runs.
  const prevSync = db.pragma('synchronous', { simple: true }) as number;
  db.pragma('synchronous = NORMAL');
  // Marking writes WAL pages: the sample rows and their index entries (and, for rows stored
  // before schema migration 4, the 4 KB page holding the payload). With the default
  // auto-checkpoint (1000 pages) this connection ran a checkpoint, with its fsyncs of WAL and
  // DB, after every ~2 batches: 2/3 of the marking time then (50k x 3 KB inline: 2.0 s -> 1.1 s
  // at 16384). Checkpointing every 64 MB of WAL bounds the WAL file at ~64 MB; durability is
  // unchanged (committed frames are in the WAL).
  const prevCkpt = db.pragma('wal_autocheckpoint', { simple: true }) as number;
  db.pragma(`wal_autocheckpoint = ${Math.max(prevCkpt, PUSH_AUTOCHECKPOINT_PAGES)}`);
  try {
    try {
      await pushBatches(db, outbox, config, client, c, o);
    } catch (e) {
      // the KB stopped taking frames during the run (restarted as an older version): what was
      // acked is marked (pushBatches flushed it); the rest goes as JSON
      if (!(e instanceof FramesRefused)) throw e;
      await pushBatches(db, outbox, config, client, c, { ...o, framing: 'json' });
    }
  } finally {
    db.pragma(`synchronous = ${prevSync}`);
    db.pragma(`wal_autocheckpoint = ${prevCkpt}`);
  }
}

/** POST /v1/sample-frames answered 404/415: that KB does not take frames (any more) */
class FramesRefused extends Error {}

async function pushBatches(db: DB, outbox: Outbox, config: EdgeConfig, client: KbClient, c: PushCounters, o: PushOptions): Promise<void> {
  const total = o.progress ? pendingCounts(db).pending : 0;
  const level = o.gzipLevel ?? 1;
  const depth = Math.max(1, o.prefetch ?? 2);
  const retention = config.upload.retention;
  const framing = o.framing;
  const frames = framing === 'frames';
  const batchSize = o.batchSize ?? BATCH_DEFAULTS[framing].size;
  const batchBytes = o.batchBytes ?? BATCH_DEFAULTS[framing].bytes;
  const path = frames ? '/v1/sample-frames' : '/v1/samples';
  const contentType = frames ? FRAMES_CONTENT_TYPE : 'application/json';
  const reader = new PushReader(db, outbox, framing);
  const policy = new CompressPolicy(o.compress ?? 'auto', level);
  const allowed = (t: string) => payloadAllowed(config, t);

  // Read-ahead: up to `depth` batches read and being gzipped at once. Reading is synchronous
  // and cheap; gzip is the expensive part and runs on the libuv thread pool, so several batches
  // compress in parallel on several cores while one batch travels.
  const queue: Prepared[] = [];
  let cursor = '';
  let exhausted = false;
  const fill = () => {
    while (!exhausted && queue.length < depth) {
      const b = reader.next(cursor, batchSize, batchBytes, allowed);
      if (!b) {
        exhausted = true;
        break;
      }
      cursor = b.cursor;
      const gzip = policy.useGzip(b.json);
      const body = gzip ? gzipAsync(b.json, { level }) : Promise.resolve(b.json);
      body.catch(() => {}); // surfaced when awaited
      queue.push({ ids: b.ids, labels: b.labels, body, gzip, rawBytes: b.json.length, missingBlobs: b.missingBlobs });
    }
  };
  const send = (b: Prepared, body: Buffer) => {
    if (b.missingBlobs) logEvent(db, 'sync_missing_blobs', { count: b.missingBlobs });
    c.push_framing = framing;
    const p = client.request({
      method: 'POST',
      path,
      headers: b.gzip ? { 'content-type': contentType, 'content-encoding': 'gzip' } : { 'content-type': contentType },
      body,
      // 409: every sample of the batch belongs to another device; the body is still a push reply.
      // 404/415 to frames: the KB does not take them (any more): the push goes on as JSON
      accept: (s) => (s >= 200 && s < 300) || s === 409 || (frames && (s === 404 || s === 415)),
    });
    p.catch(() => {}); // surfaced when awaited
    return p;
  };

  // One batch in flight at a time; while batch k travels, k-1's acks are recorded (and marked
  // uploaded in SQLite, see flushMarks) and the read-ahead refills. Marking only ever follows
  // a batch's own reply, so the "acked only" rule holds at every moment.
  //
  // Acks are marked in one transaction per MARK_EVERY ids, not per batch: marking flips each
  // row's entry in index samples_evict, which is ordered by hardness, so a transaction of 500
  // dirties ~500 scattered index pages; 2000 at once share most of them (150k samples: marking
  // 2.6-3.3 s -> 1.7-2.1 s). A kill -9 before a flush only means those acked samples are sent
  // again next run (the KB upserts by id); an error flushes what was acked, then is rethrown.
  let marks: { ids: string[]; labels: Record<string, string> } = { ids: [], labels: {} };
  const flushMarks = () => {
    if (marks.ids.length === 0) return;
    const m = marks;
    marks = { ids: [], labels: {} };
    outbox.markUploaded(m.ids, m.labels);
    if (retention === 'delete') outbox.deleteUploaded(m.ids);
    c.acked += m.ids.length;
  };
  try {
    await pushLoop();
  } catch (e) {
    try {
      flushMarks();
    } catch {
      /* the first error is the one to report; unmarked acks are re-sent next run */
    }
    throw e;
  }
  flushMarks();

  async function pushLoop(): Promise<void> {
    fill();
    let cur = queue.shift() ?? null;
    let inflight = cur ? send(cur, await cur.body) : null;
    fill();
    let done = 0;
    // the auto compress policy compares modes by raw bytes per ms of this loop (ack to ack)
    let lastAck = performance.now();
    let lastGzip: boolean | null = null;
    while (cur && inflight) {
      const res = await inflight;
      const now = performance.now();
      policy.observeAck(cur.gzip, cur.rawBytes, now - lastAck, cur.gzip !== lastGzip);
      lastAck = now;
      lastGzip = cur.gzip;
      const nb = queue.shift() ?? null;
      const deadlineHit = nb !== null && client.remainingMs() <= 0;
      const nbFlight = nb && !deadlineHit ? send(nb, await nb.body) : null;
      fill();

      if (frames && (res.status === 404 || res.status === 415)) {
        await nbFlight?.catch(() => {}); // its answer is the same refusal (or stored: re-sent harmlessly)
        throw new FramesRefused(`KB answered ${res.status} to POST ${path}`);
      }
      let reply: PushSamplesResponse;
      try {
        reply = JSON.parse(res.body.toString('utf8')) as PushSamplesResponse;
        if (!Array.isArray(reply.stored)) throw new Error('no "stored" array');
      } catch (e) {
        throw new SyncHttpError(`KB answer to POST ${path} is not a push reply: ${(e as Error).message}`, 'protocol');
      }
      // acks must be a subset of this batch: an answer acking ids never sent is not trusted at
      // all (a broken or hostile KB), and an answer that neither stores nor refuses anything of
      // a non-empty batch is a failed batch, not a success
      const sent = new Set(cur.ids);
      const foreign = reply.stored.filter((id) => !sent.has(id));
      if (foreign.length) throw new SyncHttpError(`KB answer to POST ${path} acks ${foreign.length} sample id(s) this batch did not send (first "${String(foreign[0]).slice(0, 80)}"): answer refused`, 'protocol');
      const stored = reply.stored;
      if (cur.ids.length > 0 && stored.length === 0 && !reply.rejected?.some((r) => sent.has(r?.id))) {
        throw new SyncHttpError(`KB answer to POST ${path} stores none of the ${cur.ids.length} sample(s) sent and refuses none: batch failed`, 'protocol');
      }
      // counted once the KB answered the batch usably: a run that never reached it reports 0 pushed
      c.pushed += cur.ids.length;
      if (cur.gzip) c.batches_gzip++;
      else c.batches_plain++;
      for (const id of stored) {
        marks.ids.push(id);
        if (cur.labels[id] !== undefined) marks.labels[id] = cur.labels[id];
      }
      if (marks.ids.length >= MARK_EVERY) flushMarks();
      if (reply.rejected?.length) {
        // refused for good (another device's id, a failed check): marked rejected with the reason,
        // never sent again (store/rejected.ts); this run exits 4
        const refused = reply.rejected.filter((r) => sent.has(r?.id) && !stored.includes(r.id));
        c.rejected += markRejected(db, refused);
        logEvent(db, 'sync_rejected', { count: refused.length, first: refused.slice(0, 20) });
      }
      done += cur.ids.length;
      o.progress?.update('push', Math.min(done, total), total);
      if (deadlineHit) throw new SyncHttpError('--max-time reached before the next batch', 'deadline');
      cur = nb;
      inflight = nbFlight;
    }
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
