// The push's outbox reader in a worker thread (sync/frames-source.ts WorkerFrames, a real
// worker with its own read-only connection) sends byte for byte the bodies the reader in the
// main thread sends, on awkward rows (blob payloads, a missing blob, a task whose payload stays
// home, labels), batch by batch with the same cursor, ids, rowids and labels; a retry's `until`
// range re-reads the same rows; a reader thread that cannot open the database fails the
// body with its reason instead of leaving the push waiting; and a push whose reader thread dies
// mid-run (terminated through its handle) reads the rest in the main thread and still gets
// every sample acked.
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
import { startTestKb } from './helpers/kb-server.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import { edgeIds, kbSamples, makeEdge, seedOutbox } from './helpers/sync-edge.js';
import { loadConfig, readToken } from '../src/store/home.js';
import { KbClient, isRetryableError } from '../src/sync/http.js';
import { pushSamples, type PushCounters } from '../src/sync/push.js';
import { ReaderThreadLost } from '../src/sync/frames-source.js';
import type { FramesReply } from '../src/sync/frames-source.js';
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

test('a reader thread that dies mid-run: the rest is read in the main thread, every sample acked once', async () => {
  const kb = await startTestKb({ deviceId: 'edge-rt' });
  const e = makeEdge(kb, { deviceId: 'edge-rt' });
  // the link is held until the thread is ready: its start (80-350 ms, more under tsx) must not
  // let the main thread read the whole push before the thread takes over
  const proxy = await startFaultProxy(kb.port);
  try {
    assert.ok(isRetryableError(new ReaderThreadLost('push reader thread exited (code 1)')), 'a body the thread died under is retried');
    const ids = seedOutbox(e.home, 1200, 3072, { seed: 23 });
    // where it dies: once its first body is complete (between bodies, or as the next is asked
    // for), or at the second chunk of its second body (under a body partly sent: that request
    // fails and is retried)
    for (const [round, when] of [
      [0, 'after its first body'],
      [1, 'under its second body'],
    ] as const) {
      if (round === 1) {
        // the same samples again: push what the first round acked once more
        const paths = homePaths(e.home);
        const db = openEdgeDb(paths.db);
        db.exec(`UPDATE samples SET state = 'pending'`);
        db.close();
      }
      const paths = homePaths(e.home);
      const db = openEdgeDb(paths.db);
      const config = loadConfig(e.home);
      const client = await KbClient.create({ baseUrl: proxy.url, token: readToken(e.home)!, backoffBaseMs: 1, backoffCapMs: 10 });
      const c: PushCounters & { warnings: string[] } = { pushed: 0, acked: 0, rejected: 0, labels_pushed: 0, batches_gzip: 0, batches_plain: 0, push_framing: null, warnings: [] };
      let killed = false;
      proxy.hold();
      try {
        await pushSamples(db, new Outbox(db, paths, config), config, client, c, {
          framing: 'frames',
          batchSize: 100,
          batchBytes: 64 << 10, // several chunks per body
          compress: 'none',
          readThread: true,
          onReadThread: (w) => {
            let dones = 0;
            let chunks = 0; // of the bodies after the first
            w.on('message', (m: FramesReply) => {
              if ('ready' in m) proxy.release();
              if (killed) return;
              if ('done' in m) dones++;
              else if ('chunk' in m && dones > 0) chunks++;
              // round 1: at its second chunk, the first has been handed on (a message each)
              if ((round === 0 && dones === 1) || (round === 1 && chunks === 2)) {
                killed = true;
                void w.terminate();
              }
            });
          },
        });
      } finally {
        await client.close();
        db.close();
      }
      proxy.release();
      assert.ok(killed, `the thread was ended ${when}`);
      assert.equal(c.acked, ids.length, `${when}: every sample acked`);
      assert.equal(c.warnings.length, 1, `${when}: one warning: ${c.warnings.join(' | ')}`);
      assert.match(c.warnings[0], /push reader thread (exited|failed).*main thread/);
      assert.equal(edgeIds(e.home).pending.length, 0);
    }
    const stored = await kbSamples(kb, 'edge-rt');
    assert.equal(stored.length, ids.length);
    assert.deepEqual(new Set(stored.map((x) => x.id)), new Set(ids));
  } finally {
    await proxy.close();
    e.cleanup();
    await kb.stop();
  }
});
