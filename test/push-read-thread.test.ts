// The push's outbox reader in a worker thread (sync/frames-source.ts WorkerFrames, a real
// worker with its own read-only connection) sends byte for byte the bodies the reader in the
// main thread sends, on awkward rows (blob payloads, a missing blob, a task whose payload stays
// home, labels), batch by batch with the same cursor, ids, rowids and labels; a retry's `until`
// range re-reads the same rows; and a reader thread that cannot open the database fails the
// body with its reason instead of leaving the push waiting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { openEdgeDb } from '../src/store/db.js';
import { DEFAULT_CONFIG, homePaths, type EdgeConfig } from '../src/store/home.js';
import { INLINE_MAX, Outbox, type LogRecord } from '../src/store/outbox.js';
import { PushReader, newFramesSent, type FramesSent } from '../src/sync/outbox-reader.js';
import { type FramesSource, WorkerFrames, inThreadFrames, uploadAllows } from '../src/sync/frames-source.js';
import { startFramesWorker } from '../src/sync/frames-worker-start.js';
import { tempDir } from './helpers/cli.js';
import { logRecord } from './helpers/log-record.js';

const rec = (fill: number, over: Partial<LogRecord> = {}): LogRecord => logRecord(Buffer.alloc(3072, fill), { hardness: fill / 1000, ...over });

async function collect(it: Iterable<Buffer> | AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

/** every batch of the source: its body and what it sent */
async function batches(src: FramesSource, reader: PushReader, limit: number, maxBytes: number): Promise<{ body: Buffer; sent: FramesSent }[]> {
  const out: { body: Buffer; sent: FramesSent }[] = [];
  for (let after = ''; reader.pendingAfter(after); ) {
    const sent = newFramesSent();
    let completed = 0;
    const body = await collect(src.body(after, null, limit, maxBytes, sent, () => completed++));
    assert.equal(completed, 1, 'complete() once per body');
    out.push({ body, sent });
    after = sent.end!;
  }
  return out;
}

test('the reader thread sends the bodies the main-thread reader sends', async () => {
  const t = tempDir('sedna-read-thread-');
  const paths = homePaths(t.dir);
  const db = openEdgeDb(paths.db);
  let worker: WorkerFrames | null = null;
  try {
    const ob = new Outbox(db, paths, { outbox: { ...DEFAULT_CONFIG.outbox, max_mb: 0 } });
    const recs: LogRecord[] = [];
    for (let i = 0; i < 700; i++) {
      const payload = Buffer.alloc(3072, i % 250);
      payload.writeUInt32LE(i); // each its own payload (the same one is stored once)
      recs.push(rec(i % 250, { payload, hardness: (i % 97) / 97 }));
    }
    recs.push(rec(251, { payload: Buffer.alloc(INLINE_MAX + 1, 5) })); // blobs/<sha>
    recs.push(rec(252, { payload: Buffer.alloc(INLINE_MAX + 2, 6) })); // its blob goes missing below
    recs.push(rec(253, { task: 'home-only', kbVersion: '4' }));
    recs.push(rec(254, { task: null, predLabel: 'q"uo\\te é ✓' }));
    const ids = ob.logBatch(recs).map((r) => r.sampleId);
    ob.setLabels([
      { id: ids[3], label: 'cat' },
      { id: ids[701], label: 'dog' },
    ]);
    rmSync(ob.blobPath(db.prepare('SELECT payload_sha FROM samples WHERE id = ?').pluck().get(ids[701]) as string));
    const upload: EdgeConfig['upload'] = { ...DEFAULT_CONFIG.upload, per_task: { 'home-only': 'none' } } as EdgeConfig['upload'];
    const reader = new PushReader(db, ob, 'frames');
    const here = inThreadFrames(reader, (task) => uploadAllows(upload, task));
    const w = startFramesWorker({ dbPath: db.name, blobsDir: paths.blobs, tmpDir: paths.tmp, upload, lastRowid: reader.lastRowid });
    assert.ok(w, 'a worker starts from sources');
    worker = new WorkerFrames(w);
    for (const [limit, maxBytes] of [
      [1024, 4 << 20],
      [300, 1e12],
      [1000, 100_000],
    ]) {
      const a = await batches(here, reader, limit, maxBytes);
      const b = await batches(worker, reader, limit, maxBytes);
      assert.equal(b.length, a.length);
      for (let i = 0; i < a.length; i++) {
        assert.ok(b[i].body.equals(a[i].body), `batch ${i} (limit ${limit}, ${maxBytes} bytes): same body`);
        assert.deepEqual(b[i].sent, a[i].sent);
      }
      assert.equal(a.reduce((n, x) => n + x.sent.ids.length, 0), ids.length);
      assert.equal(a.reduce((n, x) => n + x.sent.missingBlobs, 0), 1);
    }
    // a retry: the rows up to the first attempt's end, whatever the limits
    const first = newFramesSent();
    const body = await collect(worker.body('', null, 300, 1e12, first, () => {}));
    const again = newFramesSent();
    const body2 = await collect(worker.body('', first.end, 1, 1, again, () => {}));
    assert.ok(body2.equals(body));
    assert.deepEqual(again, first);
    // rows logged after the run started wait for the next run, in the worker too
    ob.logBatch([rec(255)]);
    const all = await batches(worker, reader, 1e6, 1e12);
    assert.equal(all.reduce((n, x) => n + x.sent.ids.length, 0), ids.length);
  } finally {
    await worker?.close();
    db.close();
    t.cleanup();
  }
});

test('a reader thread that cannot open the database fails the body with its reason', async () => {
  const t = tempDir('sedna-read-thread-');
  const paths = homePaths(t.dir);
  const w = startFramesWorker({ dbPath: `${t.dir}/missing.db`, blobsDir: paths.blobs, tmpDir: paths.tmp, upload: DEFAULT_CONFIG.upload, lastRowid: 10 });
  const src = new WorkerFrames(w!);
  try {
    await assert.rejects(collect(src.body('', null, 10, 1e6, newFramesSent(), () => assert.fail('not complete'))), /push reader thread (failed|exited).*missing\.db|cannot open/);
    // and a body asked for after the failure fails at once
    await assert.rejects(collect(src.body('', null, 10, 1e6, newFramesSent(), () => {})), /push reader thread/);
  } finally {
    await src.close();
    t.cleanup();
  }
});
