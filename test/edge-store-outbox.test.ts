// The outbox on a real SQLite file: dedup, blobs, quota eviction order, sync API (read through
// sync/outbox-reader.ts, as push reads it), concurrency.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openEdgeDb, kvGet, type DB } from '../src/store/db.js';
import { DEFAULT_CONFIG, homePaths, type HomePaths } from '../src/store/home.js';
import { INLINE_MAX, Outbox, type LogRecord } from '../src/store/outbox.js';
import { uuidv7, uuidv7Time } from '../src/store/uuid7.js';
import { PushReader } from '../src/sync/outbox-reader.js';
import { ROOT, tempDir } from './helpers/cli.js';
import { logRecord } from './helpers/log-record.js';

function setup(maxMb = 512): { paths: HomePaths; db: DB; outbox: Outbox; cleanup: () => void } {
  const t = tempDir('sedna-store-');
  const paths = homePaths(t.dir);
  const db = openEdgeDb(paths.db);
  const outbox = new Outbox(db, paths, { outbox: { ...DEFAULT_CONFIG.outbox, max_mb: maxMb } });
  return {
    paths,
    db,
    outbox,
    cleanup: () => {
      db.close();
      t.cleanup();
    },
  };
}

interface Pushed {
  id: string;
  task: string | null;
  payload_kind: string;
  payload: Buffer | null;
  payload_sha: string;
}

/** The pending samples as push reads them (one reader per call: it sees rows logged so far). */
function pushBatches(s: { db: DB; outbox: Outbox }, limit: number, maxBytes: number, send: (task: string) => boolean = () => true): Pushed[][] {
  const r = new PushReader(s.db, s.outbox);
  const out: Pushed[][] = [];
  for (let after = ''; ; ) {
    const b = r.next(after, limit, maxBytes, send);
    if (!b) return out;
    const samples = (JSON.parse(b.json.toString()) as { samples: (Pushed & { payload_b64?: string })[] }).samples;
    out.push(samples.map(({ payload_b64, ...x }) => ({ ...x, payload: payload_b64 === undefined ? null : Buffer.from(payload_b64, 'base64') })));
    after = b.cursor;
  }
}
const pending = (s: { db: DB; outbox: Outbox }) => pushBatches(s, 1000, 1e12).flat();

function rec(over: Partial<LogRecord> & { fill?: number; bytes?: number } = {}): LogRecord {
  const { fill = 0, bytes = 16, ...rest } = over;
  return logRecord(Buffer.alloc(bytes, fill), { kbVersion: 'local-1', ...rest });
}

test('uuidv7: RFC 9562 layout, embedded time, strictly increasing within a process', () => {
  const now = Date.now();
  const ids = Array.from({ length: 5000 }, () => uuidv7(now));
  for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.ok(Math.abs(uuidv7Time(ids[0]) - now) <= 1);
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i] > ids[i - 1], `ids out of order at ${i}`);
  assert.equal(new Set(ids).size, ids.length);
});

test('logBatch: one row per (task, payload); duplicates return the first id and count up', () => {
  const s = setup();
  try {
    const r1 = s.outbox.logBatch([rec({ fill: 1 }), rec({ fill: 2 }), rec({ fill: 1 }), rec({ fill: 1, task: 'other' })]);
    assert.deepEqual(r1.map((r) => r.duplicate), [false, false, true, false]);
    assert.equal(r1[2].sampleId, r1[0].sampleId);
    assert.notEqual(r1[3].sampleId, r1[0].sampleId, 'same payload, other task: a separate sample');
    const r2 = s.outbox.logBatch([rec({ fill: 1 })]);
    assert.deepEqual(r2, [{ sampleId: r1[0].sampleId, duplicate: true, evicted: false }]);
    const row = s.db.prepare('SELECT dup_count, kb_version FROM samples WHERE id = ?').get(r1[0].sampleId) as { dup_count: number };
    assert.equal(row.dup_count, 2);
    assert.equal((s.db.prepare('SELECT COUNT(*) AS n FROM samples').get() as { n: number }).n, 3);
    // the tracked bytes equal the rows' bytes: duplicates add nothing
    assert.equal(s.outbox.recountBytes().tracked, s.outbox.recountBytes().actual);
    assert.equal(s.db.prepare('SELECT kb_version FROM samples WHERE id = ?').pluck().get(r1[0].sampleId), 'local-1');
  } finally {
    s.cleanup();
  }
});

test('large payloads live in blobs/<sha>; a blob shared by two rows is deleted only with the last one', () => {
  const s = setup();
  try {
    const big = INLINE_MAX + 1;
    const [a, b] = s.outbox.logBatch([rec({ bytes: big, fill: 7, task: 't1' }), rec({ bytes: big, fill: 7, task: 't2' })]);
    const small = s.outbox.logBatch([rec({ bytes: INLINE_MAX, fill: 3 })])[0];
    const blobs = readdirSync(s.paths.blobs);
    assert.equal(blobs.length, 1, 'one content-addressed blob for both rows; the 64 KiB payload stays inline');
    const row = s.db.prepare('SELECT payload IS NULL AS ext, payload_bytes FROM samples WHERE id = ?').get(a.sampleId) as { ext: number; payload_bytes: number };
    assert.deepEqual(row, { ext: 1, payload_bytes: big });
    const batch = pending(s);
    const got = batch.find((x) => x.id === a.sampleId)!;
    assert.ok(got.payload!.equals(Buffer.alloc(big, 7)), 'payload read back from the blob');
    assert.ok(batch.find((x) => x.id === small.sampleId)!.payload!.equals(Buffer.alloc(INLINE_MAX, 3)));

    s.outbox.markUploaded([a.sampleId, b.sampleId]);
    assert.equal(s.outbox.deleteUploaded([a.sampleId]), 1);
    assert.ok(existsSync(join(s.paths.blobs, blobs[0])), 'still referenced by the t2 row');
    assert.equal(s.outbox.deleteUploaded([b.sampleId]), 1);
    assert.ok(!existsSync(join(s.paths.blobs, blobs[0])), 'last reference gone: blob deleted');
    assert.equal(readdirSync(s.paths.tmp).length, 0, 'no tombstones left');
    assert.equal(s.outbox.deleteUploaded([small.sampleId]), 0, 'a pending sample is never deleted as uploaded');
    const { tracked, actual } = s.outbox.recountBytes();
    assert.equal(tracked, actual);
  } finally {
    s.cleanup();
  }
});

test('quota: uploaded evicted first, then unlabelled by lowest hardness, labelled kept longest; all counted', () => {
  // rows of 1000-byte payloads are ~1.1 KB accounted; quota fits about 9 of them
  const s = setup(10_000 / (1024 * 1024));
  try {
    const ids = s.outbox.logBatch([
      rec({ fill: 1, bytes: 1000, hardness: 0.9 }), // will be uploaded
      rec({ fill: 2, bytes: 1000, hardness: 0.95 }), // will be uploaded
      rec({ fill: 3, bytes: 1000, hardness: 0.1 }), // will be labelled
      rec({ fill: 4, bytes: 1000, hardness: 0.2 }),
      rec({ fill: 5, bytes: 1000, hardness: 0.3 }),
      rec({ fill: 6, bytes: 1000, hardness: 0.8 }),
    ]).map((r) => r.sampleId);
    s.outbox.markUploaded([ids[0], ids[1]]);
    s.outbox.setLabels([{ id: ids[2], label: 'cat' }]);
    assert.equal(s.outbox.evictionCounters().count, 0);
    // 6 more rows: about 3 rows over quota -> the 2 uploaded ones, then hardness 0.2 (unlabelled)
    const more = s.outbox.logBatch([0.5, 0.6, 0.7, 0.75, 0.85, 0.9].map((h, i) => rec({ fill: 10 + i, bytes: 1000, hardness: h })));
    assert.ok(more.every((r) => !r.evicted), 'the new samples are more valuable than what was evicted');
    const left = new Set((s.db.prepare('SELECT id FROM samples').all() as { id: string }[]).map((r) => r.id));
    assert.ok(!left.has(ids[0]) && !left.has(ids[1]), 'uploaded samples go first');
    assert.ok(left.has(ids[2]), 'the labelled sample (hardness 0.1) is kept');
    assert.ok(!left.has(ids[3]), 'lowest-hardness unlabelled pending sample goes next');
    assert.ok(left.has(ids[5]));
    const c = s.outbox.evictionCounters();
    assert.equal(c.uploaded, 2);
    assert.equal(c.count, 2 + c.pending);
    assert.ok(c.pending >= 1);
    assert.equal(c.labelled, 0);
    assert.ok(s.outbox.counts().bytes <= s.outbox.maxBytes);
    const ev = s.db.prepare(`SELECT detail FROM events WHERE kind = 'outbox_evicted'`).all() as { detail: string }[];
    assert.equal(ev.length, 1);
    const evictedIds = [...ids, ...more.map((m) => m.sampleId)].filter((id) => !left.has(id));
    assert.deepEqual(new Set(JSON.parse(ev[0].detail).ids), new Set(evictedIds), 'the event names every evicted sample');

    // a sample less valuable than everything stored is itself evicted, and says so
    const low = s.outbox.logBatch([rec({ fill: 99, bytes: 3000, hardness: 0 })])[0];
    assert.equal(low.evicted, true);
    assert.equal(s.db.prepare('SELECT 1 FROM samples WHERE id = ?').get(low.sampleId), undefined);
    assert.ok(left.has(ids[2]) && s.db.prepare('SELECT 1 FROM samples WHERE id = ?').get(ids[2]), 'label still kept');
    assert.equal(kvGet(s.db, 'evicted_count'), String(s.outbox.evictionCounters().count));
    // rounds within a minute merge into one events row whose counts match the counters
    const ev2 = s.db.prepare(`SELECT detail FROM events WHERE kind = 'outbox_evicted'`).all() as { detail: string }[];
    assert.equal(ev2.length, 1);
    const d = JSON.parse(ev2[0].detail);
    assert.equal(d.rounds, 2);
    assert.equal(d.count, s.outbox.evictionCounters().count);
    assert.ok(d.ids.includes(low.sampleId));
  } finally {
    s.cleanup();
  }
});

test('push reads pending samples in order with a cursor, honours maxBytes, skips payload reads when asked; labels and acks', () => {
  const s = setup();
  try {
    const ids = s.outbox.logBatch(Array.from({ length: 7 }, (_, i) => rec({ fill: i, bytes: 100, task: i % 2 ? 'keep' : 'none' }))).map((r) => r.sampleId);
    const seen: string[] = [];
    for (const b of pushBatches(s, 3, 250, (t) => t === 'keep')) {
      assert.ok(b.length <= 3);
      assert.ok(b.reduce((n, x) => n + (x.payload?.length ?? 0), 0) <= 250 || b.length === 1);
      for (const x of b) {
        assert.equal(x.payload === null, x.task === 'none');
        assert.equal(x.payload_kind === 'none', x.task === 'none');
        seen.push(x.id);
      }
    }
    assert.deepEqual(seen, ids, 'every pending sample once, in order');
    const one = pushBatches(s, 10, 1)[0];
    assert.equal(one.length, 1, 'a sample larger than maxBytes still goes, alone');

    // labels: sent with the sample, marked uploaded only if unchanged since
    s.outbox.setLabels([
      { id: ids[0], label: 'a' },
      { id: ids[1], label: 'b' },
    ]);
    s.outbox.setLabels([{ id: ids[1], label: 'b2' }]); // corrected during the push
    assert.equal(s.outbox.markUploaded([ids[0], ids[1], ids[2]], { [ids[0]]: 'a', [ids[1]]: 'b' }), 3);
    assert.deepEqual(s.outbox.pendingLabels(10).map((l) => [l.id, l.label]), [[ids[1], 'b2']]);
    assert.equal(s.outbox.markLabelsUploaded([{ id: ids[1], label: 'b' }]), 0, 'stale label not acked');
    assert.equal(s.outbox.markLabelsUploaded([{ id: ids[1], label: 'b2' }]), 1);
    assert.equal(s.outbox.pendingLabels(10).length, 0);
    const c = s.outbox.counts();
    assert.equal(c.pending, 4);
    assert.equal(c.uploaded, 3);
    assert.equal(c.labelsPending, 0);
    assert.equal(c.pendingBytes + c.uploadedBytes, c.bytes);
  } finally {
    s.cleanup();
  }
});

test('a crashed delete leaves a blob tombstone that the next open restores (row still there) or removes', () => {
  const s = setup();
  try {
    const big = INLINE_MAX + 10;
    const [kept] = s.outbox.logBatch([rec({ bytes: big, fill: 1 })]);
    const sha = pending(s)[0].payload_sha;
    // simulate: a writer (dead pid) moved the blob aside but its delete never committed
    const deadPid = 2 ** 22 + 12345;
    renameSync(join(s.paths.blobs, sha), join(s.paths.tmp, `blobdel-${sha}-${deadPid}`));
    writeFileSync(join(s.paths.tmp, `blobdel-${'e'.repeat(64)}-${deadPid}`), 'orphan');
    new Outbox(s.db, s.paths, { outbox: { max_mb: 512 } });
    assert.ok(existsSync(join(s.paths.blobs, sha)), 'restored: the row still references it');
    assert.equal(readdirSync(s.paths.tmp).length, 0, 'the unreferenced tombstone is removed');
    assert.ok(pending(s)[0].payload!.equals(Buffer.alloc(big, 1)));
    assert.ok(kept.sampleId);
  } finally {
    s.cleanup();
  }
});

test('two processes logging into the same outbox at once lose nothing', async () => {
  const t = tempDir('sedna-store-conc-');
  try {
    const paths = homePaths(t.dir);
    openEdgeDb(paths.db).close();
    const dist = (p: string) => pathToFileURL(join(ROOT, 'dist', p)).href;
    const script = join(t.dir, 'writer.mjs');
    writeFileSync(
      script,
      `import { openEdgeDb } from ${JSON.stringify(dist('store/db.js'))};
       import { homePaths } from ${JSON.stringify(dist('store/home.js'))};
       import { Outbox } from ${JSON.stringify(dist('store/outbox.js'))};
       const [home, tag] = process.argv.slice(2);
       const p = homePaths(home);
       const db = openEdgeDb(p.db);
       const o = new Outbox(db, p, { outbox: { max_mb: 512 } });
       const ids = [];
       for (let b = 0; b < 40; b++) {
         const recs = [];
         for (let i = 0; i < 25; i++) {
           const payload = Buffer.from(tag + ':' + b + ':' + i + ':' + 'x'.repeat(i === 0 ? 70000 : 10));
           recs.push({ task: 'global', attrs: {}, payloadKind: 'npy', payload, predLabel: null, scores: [1], hard: true,
             hardReasons: ['random'], unseen: false, unseenReason: null, hardness: 0.5, kbVersion: null });
         }
         for (const r of o.logBatch(recs)) ids.push(r.sampleId);
       }
       process.stdout.write(JSON.stringify(ids));
       db.close();`,
    );
    const runOne = (tag: string) =>
      new Promise<string[]>((res, rej) => {
        const c = spawn(process.execPath, [script, t.dir, tag], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        c.stdout.on('data', (d) => (out += d));
        c.stderr.on('data', (d) => (err += d));
        c.on('exit', (code) => (code === 0 ? res(JSON.parse(out)) : rej(new Error(`writer ${tag} exit ${code}: ${err}`))));
      });
    const [a, b] = await Promise.all([runOne('A'), runOne('B')]);
    assert.equal(a.length, 1000);
    assert.equal(b.length, 1000);
    const db = openEdgeDb(paths.db);
    try {
      const n = (db.prepare('SELECT COUNT(*) AS n FROM samples').get() as { n: number }).n;
      assert.equal(n, 2000);
      const have = db.prepare('SELECT 1 FROM samples WHERE id = ?').pluck();
      for (const id of [...a, ...b]) assert.ok(have.get(id), `sample ${id} missing`);
      assert.equal(readdirSync(paths.blobs).length, 80, 'one blob per large payload');
      const o = new Outbox(db, paths, { outbox: { max_mb: 512 } });
      const { tracked, actual } = o.recountBytes();
      assert.equal(tracked, actual, 'byte accounting stays exact under concurrent writers');
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    } finally {
      db.close();
    }
  } finally {
    t.cleanup();
  }
});
