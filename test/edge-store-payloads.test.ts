// Edge schema migration 4 on real SQLite files: inline payloads live in sample_payloads (so
// marking a sample uploaded rewrites a small row), rows written before the migration keep
// theirs inline, and every way a sample goes (eviction, retention=delete) takes its payload.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openEdgeDb, type DB } from '../src/store/db.js';
import { DEFAULT_CONFIG, homePaths } from '../src/store/home.js';
import { MIGRATIONS } from '../src/store/schema.js';
import { INLINE_MAX, Outbox, type LogRecord } from '../src/store/outbox.js';
import { PushReader } from '../src/sync/outbox-reader.js';
import { logRecord } from './helpers/log-record.js';
import { exportSamples } from '../src/store/samples-query.js';
import { tempDir } from './helpers/cli.js';

function rec(fill: number, bytes = 3072, task = 'global'): LogRecord {
  return logRecord(Buffer.alloc(bytes, fill), { task, hardness: fill / 1000 });
}

const count = (db: DB, sql: string) => (db.prepare(sql).pluck().get() as number) ?? 0;

/** every pending sample's payload as the push would send it (decoded from the wire JSON) */
function pushed(db: DB, outbox: Outbox): Map<string, Buffer> {
  const r = new PushReader(db, outbox);
  const out = new Map<string, Buffer>();
  let cursor = '';
  for (;;) {
    const b = r.next(cursor, 7, 1e9, () => true);
    if (!b) return out;
    cursor = b.cursor;
    for (const s of (JSON.parse(b.json.toString()) as { samples: { id: string; payload_b64: string }[] }).samples) out.set(s.id, Buffer.from(s.payload_b64, 'base64'));
  }
}

test('new inline payloads live in sample_payloads; blobs and duplicates do not get a payload row; reads see the same bytes', () => {
  const t = tempDir('sedna-payloads-');
  const paths = homePaths(t.dir);
  const db = openEdgeDb(paths.db);
  try {
    const ob = new Outbox(db, paths, { outbox: { ...DEFAULT_CONFIG.outbox, max_mb: 0 } });
    const ids = ob.logBatch([rec(1), rec(2), rec(3, INLINE_MAX + 1)]).map((r) => r.sampleId);
    const dup = ob.logBatch([rec(1)])[0];
    assert.equal(dup.duplicate, true);
    assert.equal(count(db, 'SELECT COUNT(*) FROM sample_payloads'), 2, 'two inline payloads, none for the blob or the duplicate');
    assert.equal(count(db, 'SELECT COUNT(*) FROM samples WHERE payload_ext = 1 AND length(payload) = 0'), 2);
    assert.equal(count(db, 'SELECT COUNT(*) FROM samples WHERE payload IS NULL'), 1, 'NULL still means blobs/<sha>');
    const got = pushed(db, ob);
    assert.ok(got.get(ids[0])!.equals(Buffer.alloc(3072, 1)));
    assert.ok(got.get(ids[1])!.equals(Buffer.alloc(3072, 2)));
    assert.ok(got.get(ids[2])!.equals(Buffer.alloc(INLINE_MAX + 1, 3)));
    const exported = [...exportSamples(db, paths, {})].find((s) => s.id === ids[1])!;
    assert.ok(Buffer.from(new Float32Array(exported.x!).buffer).equals(Buffer.alloc(3072, 2)), 'samples export path');
    // marking touches the small row only: the payload row is untouched
    ob.markUploaded(ids);
    assert.equal(count(db, `SELECT COUNT(*) FROM samples WHERE state = 'uploaded'`), 3);
    assert.ok((db.prepare('SELECT payload FROM sample_payloads WHERE id = ?').pluck().get(ids[0]) as Buffer).equals(Buffer.alloc(3072, 1)));
    // retention=delete takes the payload with the sample
    assert.equal(ob.deleteUploaded([ids[0]]), 1);
    assert.equal(count(db, 'SELECT COUNT(*) FROM sample_payloads'), 1);
  } finally {
    db.close();
    t.cleanup();
  }
});

test('eviction over quota removes the evicted samples payload rows too', () => {
  const t = tempDir('sedna-payloads-');
  const paths = homePaths(t.dir);
  const db = openEdgeDb(paths.db);
  try {
    const ob = new Outbox(db, paths, { outbox: { max_mb: 0.1 } }); // ~100 KB: ~30 samples of 3 KB
    for (let i = 0; i < 10; i++) ob.logBatch(Array.from({ length: 10 }, (_, k) => rec(i * 10 + k + 1)));
    const rows = count(db, 'SELECT COUNT(*) FROM samples');
    assert.ok(rows > 0 && rows < 100, `evicted down to ${rows}`);
    assert.equal(count(db, 'SELECT COUNT(*) FROM sample_payloads'), rows, 'one payload row per remaining sample, none orphaned');
    assert.equal(count(db, 'SELECT COUNT(*) FROM sample_payloads sp WHERE NOT EXISTS (SELECT 1 FROM samples s WHERE s.id = sp.id)'), 0);
  } finally {
    db.close();
    t.cleanup();
  }
});

test('a database written before migration 4 keeps its inline payloads readable and pushable; new rows are split', () => {
  const t = tempDir('sedna-payloads-');
  const paths = homePaths(t.dir);
  const dbPath = paths.db;
  // a schema-3 database (what an older sedna-ll left behind) with one inline row
  const db0 = openEdgeDb(dbPath);
  db0.close();
  // roll the file back to version 3: undo what migrations 4 to 7 did, insert an old-style row
  const raw = openEdgeDb(dbPath);
  raw.exec('DROP INDEX samples_time_id; DROP INDEX samples_rejected');
  raw.exec('DROP TRIGGER samples_payload_gone; DROP TABLE sample_payloads; ALTER TABLE samples DROP COLUMN payload_ext; ALTER TABLE samples DROP COLUMN preprocessing;');
  raw.exec(`DROP INDEX samples_pending_time; CREATE INDEX samples_state_time ON samples (state, created_at); DROP INDEX samples_evict_done; DROP INDEX samples_evict_value;
    CREATE INDEX samples_evict ON samples ((state = 'pending' OR label_state IS 'pending'), (label IS NOT NULL), hardness, created_at);`);
  raw.pragma('user_version = 3');
  raw
    .prepare(
      `INSERT INTO samples (id, payload_sha, task, attrs, payload_kind, payload, payload_bytes, scores, hard_reasons, created_at)
       VALUES ('old-sample-0001', ?, 'global', '{}', 'f32', ?, 3072, '[]', '[]', 1)`,
    )
    .run('a'.repeat(64), Buffer.alloc(3072, 9));
  raw.close();
  // reopen: migrate() runs migration 4 on it
  const db = openEdgeDb(dbPath);
  try {
    assert.equal(db.pragma('user_version', { simple: true }), MIGRATIONS.length);
    const ob = new Outbox(db, paths, { outbox: { max_mb: 0 } });
    const [n] = ob.logBatch([rec(4)]);
    const got = pushed(db, ob);
    assert.ok(got.get('old-sample-0001')!.equals(Buffer.alloc(3072, 9)), 'old inline row');
    assert.ok(got.get(n.sampleId)!.equals(Buffer.alloc(3072, 4)), 'new split row');
    assert.equal(count(db, `SELECT payload_ext FROM samples WHERE id = 'old-sample-0001'`), 0);
    // deleting the old row must not touch sample_payloads (trigger only for payload_ext = 1)
    ob.markUploaded(['old-sample-0001']);
    assert.equal(ob.deleteUploaded(['old-sample-0001']), 1);
    assert.equal(count(db, 'SELECT COUNT(*) FROM sample_payloads'), 1);
  } finally {
    db.close();
    t.cleanup();
  }
});
