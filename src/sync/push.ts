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
// Two batches are on their way at once (IN_FLIGHT): the next body is sent while the KB finishes
// the previous one and its ack comes back, so neither the link nor the KB waits on the other.
// Frames bodies are read from the outbox while they are sent (a streamed request body), in a
// reader thread when SEDNA_LL_PUSH_READ_THREAD asks for one (frames-source.ts); JSON bodies are
// built whole first. Memory: the outbox is walked with a cursor; a frames batch
// holds one page of rows at a time, a JSON batch its body: RSS does not grow with the backlog.
import { availableParallelism, loadavg } from 'node:os';
import { Readable, pipeline } from 'node:stream';
import { createGzip, gzip } from 'node:zlib';
import { promisify } from 'node:util';
import type { PushLabelsResponse, PushSamplesResponse } from '../format/protocol.js';
import { type DB, logEvent } from '../store/db.js';
import type { EdgeConfig } from '../store/home.js';
import type { AckedRow, Outbox } from '../store/outbox.js';
import { markRejected } from '../store/rejected.js';
import { CompressPolicy, type CompressMode } from './compress-policy.js';
import { type Framing, type FramesSent, PushReader, newFramesSent, pendingCounts } from './outbox-reader.js';
import type { Worker } from 'node:worker_threads';
import { type FramesSource, type FramesWorkerData, WorkerFrames, inThreadFrames, uploadAllows, workerWhenReady } from './frames-source.js';
import { startFramesWorker } from './frames-worker-start.js';
import { readThreadMode } from './read-thread-setting.js';
import { FRAMES_CONTENT_TYPE } from '../format/sample-frames.js';
import { type KbClient, type Reply, SyncHttpError } from './http.js';
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
  /** lines for the operator (sync prints them as warnings); absent: not collected */
  warnings?: string[];
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
  progress?: Progress;
  /** frames: read the outbox in a worker thread (frames-source.ts); default: SEDNA_LL_PUSH_READ_THREAD (off when unset) */
  readThread?: boolean;
  /** the reader thread once started (tests end it mid-run: test/push-read-thread.test.ts) */
  onReadThread?: (w: Worker) => void;
}

/** Does the upload policy let this task's payload bytes leave the device? */
export function payloadAllowed(config: EdgeConfig, task: string): boolean {
  return uploadAllows(config.upload, task);
}

/**
 * Is a core free for the push's reader thread? The thread takes the reading off the thread that
 * sends and marks, but costs CPU of its own (a second isolate, the body's pages handed across):
 * where every core is busy (a gateway running its application, a shared host), it cannot run
 * beside the rest and only adds that CPU. The 1-minute load average says whether the cores are
 * busy; half a core of slack, as pushes that follow each other count in it themselves.
 */
export function spareCore(): boolean {
  const cores = availableParallelism();
  return cores >= 2 && loadavg()[0] < cores - 0.5;
}

/** The reader thread, or null where none can be started (the push then reads in this thread). */
function startReadThread(data: FramesWorkerData): Worker | null {
  try {
    return startFramesWorker(data);
  } catch {
    return null; // e.g. a thread limit: the same bytes are read here instead
  }
}

/**
 * SEDNA_LL_PUSH_READ_THREAD: on, off (the default), or auto (spareCore decides). Off by default
 * because no measurement here showed the thread finishing a push sooner: 50k x 3 KB into the
 * bench's frames sink on this 2-core machine, interleaved medians, load 2-3: 3271 ms without it,
 * 3611 ms with it (CPU 2.84 -> 3.07 s, peak RSS 141 -> 174 MB); at load 4: 2820 -> 3006 ms;
 * at load 7-14 worse still. The main thread's CPU does fall (2.6 s -> 1.6 s, the reader thread
 * taking 1.3 s), but with the KB (here: the sink) on the same two cores there is no core left
 * to run it on. A gateway pushing to a remote KB with a core idle is where it may pay; not
 * measured yet.
 */
function readThreadSetting(): boolean {
  const v = readThreadMode();
  return v === 'auto' ? spareCore() : v === 'on';
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

/** What an answered batch sent (in the attempt the KB answered). */
interface Sent {
  ids: string[];
  /** frames: the rowids of ids (same order), for marking by rowid; JSON: null (marked by id) */
  rowids: number[] | null;
  labels: Record<string, string>;
  missingBlobs: number;
  /** uncompressed body bytes */
  rawBytes: number;
}

/** One batch request on its way. */
interface Flight {
  gzip: boolean;
  /** the cursor after the batch once its body is complete (null: the KB answered before reading it all) */
  end: Promise<string | null>;
  reply: Promise<Reply>;
  /** what the attempt that got the reply sent */
  sent(): Sent;
}

/**
 * Batch requests in flight at once. With one, the link and the KB took turns: the edge waited
 * for each ack (the KB finishing the batch, one RTT) with nothing to send, 0.49 of a 10 Mbit/s,
 * 100 ms link idle in bench:sync. With two, the next batch's body streams while the KB finishes
 * the previous one and its ack travels back. More would only add memory and KB concurrency.
 */
const IN_FLIGHT = 2;

async function pushBatches(db: DB, outbox: Outbox, config: EdgeConfig, client: KbClient, c: PushCounters, o: PushOptions): Promise<void> {
  const total = o.progress ? pendingCounts(db).pending : 0;
  const level = o.gzipLevel ?? 1;
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
  let source: FramesSource | null = null;
  if (frames) {
    const dirs = outbox.blobDirs();
    const here = inThreadFrames(reader, allowed);
    const worker = (o.readThread ?? readThreadSetting()) ? startReadThread({ dbPath: db.name, blobsDir: dirs.blobs, tmpDir: dirs.tmp, upload: config.upload, lastRowid: reader.lastRowid }) : null;
    // a thread that dies mid-run: the rest is read here; said once, on stderr and in the event log
    const lost = (line: string) => {
      c.warnings?.push(line);
      logEvent(db, 'sync_read_thread_lost', { reason: line });
    };
    if (worker) o.onReadThread?.(worker);
    source = worker ? workerWhenReady(new WorkerFrames(worker), here, lost) : here;
  }
  // 409: every sample of the batch belongs to another device; the body is still a push reply.
  // 404/415 to frames: the KB does not take them (any more): the push goes on as JSON
  const accept = (s: number) => (s >= 200 && s < 300) || s === 409 || (frames && (s === 404 || s === 415));
  const headers = (gzip: boolean): Record<string, string> => (gzip ? { 'content-type': contentType, 'content-encoding': 'gzip' } : { 'content-type': contentType });

  /** The batch after `cursor` as a request on its way; null when nothing is pending past it. */
  const start = (cursor: string): Promise<Flight | null> | Flight | null => (frames ? startFrames(cursor) : startJson(cursor));

  // JSON (old KBs): the whole body is built first, gzipped on the libuv pool when chosen, and
  // sent as one Buffer; the next batch is read while this one travels.
  const startJson = (cursor: string): Flight | null => {
    const b = reader.next(cursor, batchSize, batchBytes, allowed);
    if (!b) return null;
    if (b.missingBlobs) logEvent(db, 'sync_missing_blobs', { count: b.missingBlobs });
    const gzip = policy.useGzip(b.json);
    const reply = (gzip ? gzipAsync(b.json, { level }) : Promise.resolve(b.json)).then((body) =>
      client.request({ method: 'POST', path, headers: headers(gzip), body, accept }),
    );
    reply.catch(() => {}); // surfaced when awaited
    const sent: Sent = { ids: b.ids, rowids: null, labels: b.labels, missingBlobs: b.missingBlobs, rawBytes: b.json.length };
    return { gzip, end: Promise.resolve(b.cursor), reply, sent: () => sent };
  };

  // Frames: the body is read from the outbox page by page while it is sent (PushReader.framesBody),
  // so reading, the socket and the KB's ingest overlap. A retry reads the same rows again (the
  // range the first complete attempt covered); the acks are checked against what the answered
  // attempt sent.
  const startFrames = async (cursor: string): Promise<Flight | null> => {
    if (!reader.pendingAfter(cursor)) return null;
    const src = source!;
    let until: string | null = null;
    let resolveEnd!: (c: string | null) => void;
    const end = new Promise<string | null>((r) => (resolveEnd = r));
    let current = newFramesSent();
    // the body of one attempt: `s` is complete once its last page is read (by the worker,
    // maybe before it is all sent): then the next batch may start after it
    const attempt = (s: FramesSent) =>
      src.body(cursor, until, batchSize, batchBytes, s, () => {
        if (s.missingBlobs) logEvent(db, 'sync_missing_blobs', { count: s.missingBlobs });
        if (until === null) {
          until = s.end;
          resolveEnd(s.end);
        }
      });
    // the first chunk is read now: the compress policy probes it before the headers go out
    const s0 = newFramesSent();
    const it0 = toAsync(attempt(s0))[Symbol.asyncIterator]();
    const first = await it0.next();
    const head = first.done ? null : first.value;
    const gzip = head !== null && policy.useGzip(head);
    let attempts = 0;
    const reply = client.request({
      method: 'POST',
      path,
      headers: headers(gzip),
      bodyStream: () => {
        let chunks: AsyncIterable<Buffer>;
        if (attempts++ === 0) {
          current = s0;
          chunks = (async function* () {
            if (head) yield head;
            yield* { [Symbol.asyncIterator]: () => it0 };
          })();
        } else {
          const s = newFramesSent();
          current = s;
          chunks = toAsync(attempt(s));
        }
        return gzip ? gzipStream(chunks, level) : chunks;
      },
      accept,
    });
    reply.catch(() => {}); // surfaced when awaited
    // an answer before the body was read to its end (a refusal): no cursor to go on from
    void reply.then(
      () => resolveEnd(until),
      () => resolveEnd(null),
    );
    return {
      gzip,
      end,
      reply,
      sent: () => ({ ids: current.ids, rowids: current.rowids, labels: current.labels, missingBlobs: current.missingBlobs, rawBytes: current.bodyBytes }),
    };
  };

  // Acks are marked in one transaction per MARK_EVERY ids, not per batch: marking adds each
  // row's entry to index samples_evict_done, which is ordered by hardness, so a transaction of 500
  // dirties ~500 scattered index pages; 2000 at once share most of them (150k samples: marking
  // 2.6-3.3 s -> 1.7-2.1 s). A kill -9 before a flush only means those acked samples are sent
  // again next run (the KB upserts by id); an error flushes what was acked, then is rethrown.
  // Frames acks are marked by the rowids the reader saw (Outbox.markUploadedRows): no lookup of
  // each id in the primary key index.
  // What is left of marking is SQLite's own work, not the calls from JS (one UPDATE per 8192
  // rowids via json_each: no faster). bench/mark-acks.ts splits it (50k x 3 KB, CPU medians,
  // load 2.6-3.8): with schema 5's indexes an ack moved its entry in samples_state_time and in
  // samples_evict (a delete and an insert each): 351 ms. Schema migration 6 leaves one insert
  // (samples_evict_done) and one delete (samples_pending_time): 238 ms, of which rewriting the
  // rows is ~136 ms. No gain from 65536 per transaction, a 16-256 MB page cache, not writing
  // uploaded_at; marking in eviction order instead of rowid order is worse (484 ms).
  // In a whole push (bench:sync, 50k x 3 KB frames to the sink, CPU profiles, load 2.5-3.1)
  // marking took 481 and 534 ms before migration 6, 382 and 418 ms after: the UPDATE loop
  // 290-310 -> 200-240 ms, the commits unchanged at 180-220 ms (writing the dirtied pages to
  // the WAL).
  let marks: { ids: string[]; rows: AckedRow[]; labels: Record<string, string> } = { ids: [], rows: [], labels: {} };
  const flushMarks = () => {
    if (marks.ids.length === 0 && marks.rows.length === 0) return;
    const m = marks;
    marks = { ids: [], rows: [], labels: {} };
    if (m.ids.length) outbox.markUploaded(m.ids, m.labels);
    if (m.rows.length) outbox.markUploadedRows(m.rows);
    const ids = m.rows.length ? [...m.ids, ...m.rows.map((r) => r.id)] : m.ids;
    if (retention === 'delete') outbox.deleteUploaded(ids);
    c.acked += ids.length;
  };
  // samples whose payload file was missing or unreadable, in batches the KB answered: they went
  // without payload (their metadata still counts); said once per run, not only in the event log
  let missingBlobs = 0;
  const warnMissing = () => {
    if (missingBlobs > 0) c.warnings?.push(`${missingBlobs} sample(s) pushed without their payload: the file under ${outbox.blobDirs().blobs} is missing or unreadable (events: sync_missing_blobs)`);
  };
  try {
    await pushLoop();
  } catch (e) {
    warnMissing();
    try {
      flushMarks();
    } catch {
      /* the first error is the one to report; unmarked acks are re-sent next run */
    }
    throw e;
  } finally {
    await source?.close();
  }
  flushMarks();
  warnMissing();

  async function pushLoop(): Promise<void> {
    const flights: Flight[] = [];
    let cursor = '';
    let exhausted = false;
    let deadlineHit = false;
    let done = 0;
    // the auto compress policy compares modes by raw bytes per ms of this loop (ack to ack)
    let lastAck = performance.now();
    let lastGzip: boolean | null = null;
    for (;;) {
      // keep IN_FLIGHT batches on their way: the next one starts where the previous one's
      // body ended, as soon as that body is complete (not when it is acked)
      while (!exhausted && !deadlineHit && flights.length < IN_FLIGHT) {
        const prev = flights[flights.length - 1];
        if (prev) {
          const end = await prev.end;
          if (end === null) break; // refused before its end: its answer says why
          cursor = end;
        }
        if (flights.length > 0 && client.remainingMs() <= 0) {
          deadlineHit = true;
          break;
        }
        const f = await start(cursor);
        if (!f) exhausted = true;
        else {
          c.push_framing = framing;
          flights.push(f);
        }
      }
      const cur = flights.shift();
      if (!cur) break;
      const res = await cur.reply;
      const now = performance.now();
      policy.observeAck(cur.gzip, cur.sent().rawBytes, now - lastAck, cur.gzip !== lastGzip);
      lastAck = now;
      lastGzip = cur.gzip;

      if (frames && (res.status === 404 || res.status === 415)) {
        for (const f of flights) await f.reply.catch(() => {}); // the same refusal (or stored: re-sent harmlessly)
        throw new FramesRefused(`KB answered ${res.status} to POST ${path}`);
      }
      let reply: PushSamplesResponse;
      try {
        reply = JSON.parse(res.body.toString('utf8')) as PushSamplesResponse;
        if (!Array.isArray(reply.stored)) throw new Error('no "stored" array');
      } catch (e) {
        throw new SyncHttpError(`KB answer to POST ${path} is not a push reply: ${(e as Error).message}`, 'protocol');
      }
      const sent = cur.sent();
      // acks must be a subset of this batch: an answer acking ids never sent is not trusted at
      // all (a broken or hostile KB), and an answer that neither stores nor refuses anything of
      // a non-empty batch is a failed batch, not a success
      const index = new Map<string, number>();
      for (let i = 0; i < sent.ids.length; i++) index.set(sent.ids[i], i);
      const foreign = reply.stored.filter((id) => !index.has(id));
      if (foreign.length) throw new SyncHttpError(`KB answer to POST ${path} acks ${foreign.length} sample id(s) this batch did not send (first "${String(foreign[0]).slice(0, 80)}"): answer refused`, 'protocol');
      const stored = reply.stored;
      if (sent.ids.length > 0 && stored.length === 0 && !reply.rejected?.some((r) => index.has(r?.id))) {
        throw new SyncHttpError(`KB answer to POST ${path} stores none of the ${sent.ids.length} sample(s) sent and refuses none: batch failed`, 'protocol');
      }
      // counted once the KB answered the batch usably: a run that never reached it reports 0 pushed
      c.pushed += sent.ids.length;
      missingBlobs += sent.missingBlobs;
      if (cur.gzip) c.batches_gzip++;
      else c.batches_plain++;
      for (const id of stored) {
        if (sent.rowids) marks.rows.push({ rowid: sent.rowids[index.get(id)!], id, label: sent.labels[id] });
        else marks.ids.push(id);
        if (sent.labels[id] !== undefined) marks.labels[id] = sent.labels[id];
      }
      if (marks.ids.length + marks.rows.length >= MARK_EVERY) flushMarks();
      if (reply.rejected?.length) {
        // refused for good (another device's id, a failed check): marked rejected with the reason,
        // never sent again (store/rejected.ts); this run exits 4
        const storedSet = new Set(stored);
        const refused = reply.rejected.filter((r) => index.has(r?.id) && !storedSet.has(r.id));
        c.rejected += markRejected(db, refused);
        logEvent(db, 'sync_rejected', { count: refused.length, first: refused.slice(0, 20) });
      }
      done += sent.ids.length;
      o.progress?.update('push', Math.min(done, total), total);
    }
    if (deadlineHit) throw new SyncHttpError('--max-time reached before the next batch', 'deadline');
  }
}

/** A sync or async iterable as an async one. */
function toAsync<T>(it: Iterable<T> | AsyncIterable<T>): AsyncIterable<T> {
  if (Symbol.asyncIterator in it) return it;
  return (async function* () {
    yield* it;
  })();
}

/** `chunks` gzipped as a stream (zlib works on the libuv pool while the next chunks are read). */
function gzipStream(chunks: Iterable<Buffer> | AsyncIterable<Buffer>, level: number): AsyncIterable<Buffer> {
  const gz = createGzip({ level, chunkSize: 256 * 1024 });
  pipeline(Readable.from(chunks, { objectMode: false }), gz, () => {
    /* an error reaches the reader of gz */
  });
  return gz;
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
