// The push's streamed frames body (PushReader.framesBody) on a real edge.db: the records it
// reads page by page, with the meta JSON built by SQLite (FRAME_META_SQL), are the records the
// JS builder writes (PushReader.next, frames) on awkward rows: no task, empty/NULL JSON columns,
// local and negative KB versions, quotes, control characters and non-ASCII text, labels,
// preprocessing, blob payloads, a missing blob, a missing sample_payloads row, a payload of
// every byte value (NULs, invalid UTF-8), a task whose payload stays home, a row from before
// schema migration 4. Batch limits, the cursor and a retry's `until` range; marking by
// rowid (Outbox.markUploadedRows) checks the id and the label that was sent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { openEdgeDb, type DB } from '../src/store/db.js';
import { DEFAULT_CONFIG, homePaths } from '../src/store/home.js';
import { INLINE_MAX, Outbox, type LogRecord } from '../src/store/outbox.js';
import { FRAMES_PAGE_SQL, PushReader, newFramesSent, type FramesSent } from '../src/sync/outbox-reader.js';
import { readFrames, type FrameRecord } from '../src/format/sample-frames.js';
import { tempDir } from './helpers/cli.js';
import { logRecord } from './helpers/log-record.js';

// logRecord with the payload filled with `fill` and its own hardness per row (fill / 1000)
const rec = (fill: number, over: Partial<LogRecord> = {}): LogRecord => logRecord(Buffer.alloc(3072, fill), { hardness: fill / 1000, ...over });

async function decode(chunks: Iterable<Buffer>): Promise<FrameRecord[]> {
  const out: FrameRecord[] = [];
  async function* src() {
    yield* chunks;
  }
  for await (const recs of readFrames(src(), { maxRecordBytes: 64 << 20 })) for (const r of recs) out.push({ ...r, payload: r.payload ? Buffer.from(r.payload) : undefined });
  return out;
}

/** every pending record as the JSON-side builder writes it (PushReader.next, frames framing) */
async function reference(db: DB, ob: Outbox, send: (t: string) => boolean): Promise<FrameRecord[]> {
  const r = new PushReader(db, ob, 'frames');
  const out: FrameRecord[] = [];
  for (let after = ''; ; ) {
    const b = r.next(after, 5, 1e12, send);
    if (!b) return out;
    out.push(...(await decode([b.json])));
    after = b.cursor;
  }
}

/** every pending record through framesBody, in batches of `limit` samples / `maxBytes` payload bytes */
async function streamed(db: DB, ob: Outbox, send: (t: string) => boolean, limit: number, maxBytes: number): Promise<{ records: FrameRecord[]; batches: FramesSent[] }> {
  const r = new PushReader(db, ob, 'frames');
  const records: FrameRecord[] = [];
  const batches: FramesSent[] = [];
  for (let after = ''; r.pendingAfter(after); ) {
    const s = newFramesSent();
    records.push(...(await decode(r.framesBody(after, null, limit, maxBytes, send, s))));
    batches.push(s);
    after = s.end!;
  }
  return { records, batches };
}

const byIdOf = (recs: FrameRecord[]) => new Map(recs.map((r) => [r.id, JSON.parse(r.meta!)]));

const same = (a: FrameRecord[], b: FrameRecord[]) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    assert.equal(a[i].id, b[i].id);
    assert.equal(a[i].error, undefined, a[i].error);
    assert.deepEqual(JSON.parse(a[i].meta!), JSON.parse(b[i].meta!), `meta of ${a[i].id}`);
    assert.ok((a[i].payload ?? Buffer.alloc(0)).equals(b[i].payload ?? Buffer.alloc(0)), `payload of ${a[i].id}`);
  }
};

const ODD = 'q"uo\\te \u0001\n\t é ✓ \u2028';

/**
 * One row of every kind the push reads: no task, awkward text everywhere, a KB and a local
 * version, preprocessing, blobs/<sha> payloads (one gone missing), an empty payload, a payload
 * of every byte value, a missing sample_payloads row, a task whose payload stays home
 * (`send`), labels, and a row written before schema migration 4 (payload inline, empty JSON
 * columns, a negative version).
 */
function awkwardRows(db: DB, ob: Outbox): { ids: string[]; odd: string; send: (task: string) => boolean } {
  const odd = ODD;
  const ids = ob
    .logBatch([
      rec(1),
      rec(2, { task: null, attrs: { [odd]: odd }, predLabel: odd, unseen: true, unseenReason: odd, hardReasons: [odd] }),
      rec(3, { kbVersion: '7', preprocessing: JSON.stringify({ size: [2, 2], channels: 1, scale: 1 }) }),
      rec(4, { kbVersion: 'local-3', task: 'home-only' }),
      rec(5, { payload: Buffer.alloc(INLINE_MAX + 1, 5) }), // blobs/<sha>
      rec(6, { payload: Buffer.alloc(INLINE_MAX + 2, 6), preprocessing: '{"channels":3}' }), // its blob goes missing below
      rec(7, { payloadKind: 'png', payload: Buffer.alloc(0) }),
      // every byte value: NULs, invalid UTF-8 (nothing on the way may treat a payload as text)
      rec(8, { payload: Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7 + (i >> 8)) & 255)) }),
      rec(9), // its sample_payloads row goes missing below (a damaged file): sent without payload
    ])
    .map((x) => x.sampleId);
  ob.setLabels([
    { id: ids[0], label: odd },
    { id: ids[2], label: 'cat' },
  ]);
  // columns only other writers (older versions, hand edits) leave behind
  db.prepare(
    `INSERT INTO samples (id, payload_sha, task, attrs, payload_kind, payload, payload_bytes, scores, hard_reasons, kb_version, created_at, preprocessing)
     VALUES ('old-inline-0001', ?, 'global', '', 'f32', ?, 16, NULL, '', -1, 2, '')`,
  ).run('b'.repeat(64), Buffer.alloc(16, 9));
  rmSync(ob.blobPath((db.prepare('SELECT payload_sha FROM samples WHERE id = ?').pluck().get(ids[5]) as string)));
  db.prepare('DELETE FROM sample_payloads WHERE id = ?').run(ids[8]);
  const send = (task: string) => task !== 'home-only';
  return { ids, odd, send };
}

test('framesBody writes the records the JS builder writes, on awkward rows', async () => {
  const t = tempDir('sedna-frames-body-');
  const paths = homePaths(t.dir);
  const db = openEdgeDb(paths.db);
  try {
    const ob = new Outbox(db, paths, { outbox: { ...DEFAULT_CONFIG.outbox, max_mb: 0 } });
    const { ids, odd, send } = awkwardRows(db, ob);

    const ref = await reference(db, ob, send);
    assert.equal(ref.length, 10);
    const { records, batches } = await streamed(db, ob, send, 3, 1e12);
    same(records, ref);
    assert.deepEqual(
      batches.map((b) => b.ids.length),
      [3, 3, 3, 1],
    );
    assert.equal(batches.reduce((n, b) => n + b.missingBlobs, 0), 2);
    // in one batch too (the rows read on their own in the same pages as the others)
    same((await streamed(db, ob, send, 100, 1e12)).records, ref);
    assert.equal(byIdOf(records).get(ids[8]).payload_kind, 'none', 'a payload row gone missing: the metadata goes without payload');
    assert.ok(records.find((r) => r.id === ids[7])!.payload!.equals(Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7 + (i >> 8)) & 255))));
    const byId = new Map(records.map((r) => [r.id, JSON.parse(r.meta!)]));
    assert.equal(byId.get(ids[1]).task, null);
    assert.equal(byId.get(ids[2]).kb_version, 7);
    assert.equal(byId.get(ids[3]).kb_version, null, 'local versions are not KB versions');
    assert.equal(byId.get(ids[3]).payload_kind, 'none', 'the upload policy keeps this payload home');
    assert.equal(byId.get(ids[5]).payload_kind, 'none', 'a missing blob goes without payload');
    assert.equal(byId.get(ids[5]).preprocessing, undefined, 'no preprocessing without the bytes it describes');
    assert.deepEqual(byId.get(ids[2]).preprocessing, { size: [2, 2], channels: 1, scale: 1 });
    assert.equal(byId.get(ids[0]).label, odd);
    assert.deepEqual(byId.get('old-inline-0001').attrs, {});
    assert.equal(byId.get('old-inline-0001').kb_version, null);
    // the labels travel for the marking's label CAS
    assert.deepEqual(
      Object.fromEntries(batches.flatMap((b) => Object.entries(b.labels))),
      { [ids[0]]: odd, [ids[2]]: 'cat' },
    );
  } finally {
    db.close();
    t.cleanup();
  }
});

test('framesBody sends byte for byte what the JS builder sends, for every row kind, across pages and times', async () => {
  const t = tempDir('sedna-frames-body-');
  const paths = homePaths(t.dir);
  const db = openEdgeDb(paths.db);
  try {
    const ob = new Outbox(db, paths, { outbox: { ...DEFAULT_CONFIG.outbox, max_mb: 0 } });
    const { send } = awkwardRows(db, ob);
    // 600 more rows logged together (one created_at), the last 300 of them a millisecond later,
    // and the awkward rows moved between the two: pages start inside a time and run into the next
    ob.logBatch(Array.from({ length: 600 }, (_, i) => rec(i % 250, { payload: Buffer.alloc(500 + (i % 7), i % 250), task: i % 5 ? 'global' : 'home-only' })));
    const rids = db.prepare('SELECT rowid FROM samples ORDER BY rowid').pluck().all() as number[];
    const from = rids[rids.length - 300];
    db.prepare('UPDATE samples SET created_at = created_at + 1 WHERE rowid >= ?').run(from);
    db.prepare(`UPDATE samples SET created_at = (SELECT created_at FROM samples WHERE rowid = ?) WHERE id IN (SELECT id FROM samples ORDER BY rowid LIMIT 3)`).run(from);
    const r = new PushReader(db, ob, 'frames');
    for (const limit of [1000, 300, 256, 7]) {
      let batches = 0;
      for (let after = ''; r.pendingAfter(after); batches++) {
        const s = newFramesSent();
        const body = Buffer.concat([...r.framesBody(after, null, limit, 1e12, send, s)]);
        const ref = r.next(after, limit, 1e12, send)!;
        if (!body.equals(ref.json)) {
          let i = 0;
          while (body[i] === ref.json[i]) i++;
          assert.fail(`limit ${limit}, batch after '${after}': bodies differ at byte ${i} of ${body.length}/${ref.json.length}: ${body.subarray(Math.max(0, i - 40), i + 40).toString('latin1')}`);
        }
        assert.deepEqual(s.ids, ref.ids);
        assert.equal(s.end, ref.cursor);
        assert.equal(s.bodyBytes, body.length);
        after = s.end!;
      }
      assert.equal(batches, Math.ceil(610 / limit), `limit ${limit}`);
    }
  } finally {
    db.close();
    t.cleanup();
  }
});

test('the page queries seek to the cursor: no walk past the rows of its time already sent', () => {
  const t = tempDir('sedna-frames-body-');
  const paths = homePaths(t.dir);
  const db = openEdgeDb(paths.db);
  try {
    const plan = (sql: string) =>
      (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...sql.split('?').slice(1).map(() => 1)) as { detail: string }[]).map((x) => x.detail).join('; ');
    assert.match(plan(FRAMES_PAGE_SQL.sameTime), /SEARCH samples USING INDEX samples_pending_time \(created_at=\? AND rowid>\?/);
    assert.match(plan(FRAMES_PAGE_SQL.later), /SEARCH samples USING INDEX samples_pending_time \(created_at>\?/);
    assert.doesNotMatch(plan(FRAMES_PAGE_SQL.later), /TEMP B-TREE/, 'rows come in index order, unsorted');
  } finally {
    db.close();
    t.cleanup();
  }
});

test('a page is read through a memory mapping that is gone before the page is handed on', () => {
  const t = tempDir('sedna-frames-body-');
  const paths = homePaths(t.dir);
  const db = openEdgeDb(paths.db);
  try {
    const ob = new Outbox(db, paths, { outbox: { ...DEFAULT_CONFIG.outbox, max_mb: 0 } });
    const ids = ob.logBatch(Array.from({ length: 600 }, (_, i) => rec(i % 250, { payload: Buffer.alloc(1000 + (i % 7), i % 250) }))).map((x) => x.sampleId);
    const mmap = () => db.pragma('mmap_size', { simple: true }) as number;
    const r = new PushReader(db, ob, 'frames');
    assert.equal(mmap(), 0);
    const sent = newFramesSent();
    const body = r.framesBody('', null, 600, 1e12, () => true, sent)[Symbol.iterator]();
    assert.equal(body.next().done, false);
    // the chunk is on its way and the marking of another batch may run now: through no mapping
    // (its pages would stay in the RSS: 386 MB on a 1 GB backlog when the mapping stayed on)
    assert.equal(mmap(), 0, 'unmapped once the page is read');
    ob.markUploaded(ids.slice(300, 310));
    while (!body.next().done) assert.equal(mmap(), 0);
    assert.equal(sent.ids.length, 590);
    // a connection with a mapping of its own keeps it
    db.pragma('mmap_size = 65536');
    const r2 = new PushReader(db, ob, 'frames');
    for (const _ of r2.framesBody('', null, 600, 1e12, () => true, newFramesSent()));
    assert.equal(mmap(), 65536);
  } finally {
    db.close();
    t.cleanup();
  }
});

test('framesBody: batch limits, one pass over every row, and a retry re-reads the same range', async () => {
  const t = tempDir('sedna-frames-body-');
  const paths = homePaths(t.dir);
  const db = openEdgeDb(paths.db);
  try {
    const ob = new Outbox(db, paths, { outbox: { ...DEFAULT_CONFIG.outbox, max_mb: 0 } });
    const ids = ob.logBatch(Array.from({ length: 700 }, (_, i) => rec(i % 250, { payload: Buffer.alloc(1000 + (i % 7), i % 250) }))).map((x) => x.sampleId);
    // payload byte limit: at most 10 000 payload bytes (9 or 10 samples), 600 samples per batch
    const send = () => true;
    const { records, batches } = await streamed(db, ob, send, 600, 10_000);
    assert.deepEqual(
      records.map((r) => r.id),
      ids,
    );
    for (const [i, b] of batches.entries()) {
      // the last one takes what is left
      assert.ok(b.ids.length <= 10 && (b.ids.length >= 9 || i === batches.length - 1), `${b.ids.length} samples`);
      assert.equal(b.rowids.length, b.ids.length);
    }
    // sample limit across several pages (pages are 256 rows)
    const big = await streamed(db, ob, send, 600, 1e12);
    assert.deepEqual(
      big.batches.map((b) => b.ids.length),
      [600, 100],
    );
    // a retry reads (after, until]: the same samples even with other limits, and rows gone in
    // between are simply not in it
    const r = new PushReader(db, ob, 'frames');
    const first = newFramesSent();
    await decode(r.framesBody('', null, 600, 1e12, send, first));
    ob.markUploaded(ids.slice(10, 20));
    const again = newFramesSent();
    const recs = await decode(r.framesBody('', first.end, 1, 1, send, again));
    assert.deepEqual(again.ids, [...ids.slice(0, 10), ...ids.slice(20, 600)]);
    assert.deepEqual(
      recs.map((x) => x.id),
      again.ids,
    );
    assert.equal(again.end, first.end);
    // nothing after the end: no rows, an empty (but well-formed) body
    const none = newFramesSent();
    assert.deepEqual(await decode(r.framesBody(first.end!, big.batches[1].end, 600, 1e12, send, newFramesSent())).then((x) => x.length), 100);
    assert.deepEqual(await decode(r.framesBody(big.batches[1].end!, null, 600, 1e12, send, none)), []);
    assert.equal(r.pendingAfter(big.batches[1].end!), false);
  } finally {
    db.close();
    t.cleanup();
  }
});

test('markUploadedRows marks by rowid only the row with that id, and the label only if it is the one sent', () => {
  const t = tempDir('sedna-frames-body-');
  const paths = homePaths(t.dir);
  const db = openEdgeDb(paths.db);
  try {
    const ob = new Outbox(db, paths, { outbox: { ...DEFAULT_CONFIG.outbox, max_mb: 0 } });
    const ids = ob.logBatch([rec(1), rec(2), rec(3)]).map((x) => x.sampleId);
    ob.setLabels([
      { id: ids[0], label: 'a' },
      { id: ids[1], label: 'b' },
    ]);
    const rowid = (id: string) => db.prepare('SELECT rowid FROM samples WHERE id = ?').pluck().get(id) as number;
    // ids[1]'s label was corrected after it was sent ('old' went): the correction stays pending
    const n = ob.markUploadedRows([
      { rowid: rowid(ids[0]), id: ids[0], label: 'a' },
      { rowid: rowid(ids[1]), id: ids[1], label: 'old' },
      { rowid: rowid(ids[2]), id: 'someone-else-0001' }, // a rowid reused by another sample
    ]);
    assert.equal(n, 2);
    const rows = db.prepare('SELECT id, state, label_state FROM samples ORDER BY rowid').all() as { id: string; state: string; label_state: string | null }[];
    assert.deepEqual(
      rows.map((r) => [r.state, r.label_state]),
      [
        ['uploaded', 'uploaded'],
        ['uploaded', 'pending'],
        ['pending', null],
      ],
    );
    assert.equal(ob.markUploadedRows([{ rowid: rowid(ids[0]), id: ids[0] }]), 0, 'marking again changes nothing');
  } finally {
    db.close();
    t.cleanup();
  }
});
