// Marking acked samples uploaded during `sync` push, seen from every reader of the upload state.
// A KB in this process (frames push, the minimum of the protocol) holds each batch's answer
// until the test has done what it needs meanwhile: an eviction whose rowid a new sample takes,
// a label corrected, an answer that acks only part of a batch. Then status, samples ls|stats,
// eviction and the next push must all see exactly the acked samples as uploaded. Also: an
// outbox from before schema migration 6 (index samples_state_time) is migrated and pushed.
import { describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createGunzip } from 'node:zlib';
import Database from 'better-sqlite3';
import { readFrames } from '../src/format/sample-frames.js';
import { generateSigningKeys } from '../src/format/signature.js';
import { openEdgeDb, type DB } from '../src/store/db.js';
import { homePaths, loadConfig } from '../src/store/home.js';
import { Outbox } from '../src/store/outbox.js';
import { MIGRATIONS } from '../src/store/schema.js';
import { sedna, tempDir } from './helpers/cli.js';
import { markRejected } from '../src/store/rejected.js';
import { mulberry32 } from '../src/random.js';
import { logRecord } from './helpers/log-record.js';
import { type Edge, labelSamples, makeEdge, sednaAsync, seedOutbox } from './helpers/sync-edge.js';

/** What the KB answers to one frames batch: the ids it says it stored. */
type OnBatch = (ids: string[], batch: number) => Promise<string[]> | string[];

interface GatedKb {
  url: string;
  /** ids of each frames batch received, in order */
  batches: string[][];
  /** labels received on POST /v1/labels */
  labels: { id: string; label: string }[];
  /** what went wrong answering a batch (a failed assertion in onBatch) */
  errors: Error[];
  onBatch: OnBatch;
  close(): Promise<void>;
}

async function startGatedKb(): Promise<GatedKb> {
  const kb: GatedKb = { url: '', batches: [], labels: [], errors: [], onBatch: (ids) => ids, close: async () => {} };
  const body = async (req: IncomingMessage) => {
    const parts: Buffer[] = [];
    for await (const c of req as AsyncIterable<Buffer>) parts.push(c);
    return Buffer.concat(parts);
  };
  const server: Server = createServer(async (req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url === '/v1/protocol') return res.end(JSON.stringify({ revision: 2, push_framings: ['json', 'frames1'], push_encodings: ['identity'] }));
    if (req.url === '/v1/sample-frames') {
      // a failed check here answers 500 with the reason (the push then fails and says it)
      try {
        const ids: string[] = [];
        const src: AsyncIterable<Buffer> = req.headers['content-encoding'] === 'gzip' ? req.pipe(createGunzip()) : req;
        for await (const recs of readFrames(src, { maxRecordBytes: 1 << 20 })) for (const r of recs) ids.push(r.id);
        const n = kb.batches.push(ids) - 1;
        return res.end(JSON.stringify({ stored: await kb.onBatch(ids, n) }));
      } catch (e) {
        kb.errors.push(e as Error);
        res.statusCode = 500;
        return res.end(JSON.stringify({ error: String(e) }));
      }
    }
    const b = await body(req);
    if (req.url === '/v1/labels') {
      const items = (JSON.parse(b.toString('utf8')) as { labels: { id: string; label: string }[] }).labels;
      kb.labels.push(...items);
      return res.end(JSON.stringify({ stored: items.map((l) => l.id) }));
    }
    res.statusCode = 404;
    res.end('{"error":"not here"}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  kb.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  kb.close = () => new Promise<void>((r) => server.close(() => r()));
  return kb;
}

function edgeFor(kb: GatedKb, deviceId: string): Edge {
  const { publicKey } = generateSigningKeys();
  return makeEdge({ url: kb.url, deviceToken: 'd'.repeat(24), publicKeyPem: publicKey }, { deviceId });
}

function withDb<T>(e: Edge, fn: (db: DB, ob: Outbox) => T, maxMb?: number): T {
  const paths = homePaths(e.home);
  const db = openEdgeDb(paths.db);
  try {
    const cfg = loadConfig(e.home);
    return fn(db, new Outbox(db, paths, maxMb === undefined ? cfg : { outbox: { ...cfg.outbox, max_mb: maxMb } }));
  } finally {
    db.close();
  }
}

type Row = { rowid: number; id: string; state: string; label: string | null; label_state: string | null };
const rows = (e: Edge): Row[] => withDb(e, (db) => db.prepare('SELECT rowid, id, state, label, label_state FROM samples ORDER BY rowid').all() as Row[]);

function cliJson<T>(e: Edge, args: string[]): T {
  const r = sedna([...args, '--json'], { home: e.home });
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** Every reader of the upload state, compared with the rows themselves. */
function assertReadersAgree(e: Edge, pending: string[], uploaded: string[]): void {
  const s = cliJson<{ outbox: { pending: number; uploaded: number } }>(e, ['status']);
  assert.equal(s.outbox.pending, pending.length, 'status: pending');
  assert.equal(s.outbox.uploaded, uploaded.length, 'status: uploaded');
  for (const [state, want] of [['pending', pending], ['uploaded', uploaded]] as const) {
    const ls = cliJson<{ samples: { id: string; state: string }[] }>(e, ['samples', 'ls', '--state', state, '--limit', '100000']);
    assert.deepEqual(ls.samples.map((x) => x.id).sort(), [...want].sort(), `samples ls --state ${state}`);
    const ex = sedna(['samples', 'export', '--state', state], { home: e.home });
    assert.equal(ex.code, 0, ex.stderr);
    const exported = ex.stdout.trim() ? ex.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { id: string }).id) : [];
    assert.deepEqual(exported.sort(), [...want].sort(), `samples export --state ${state}`);
  }
  const st = cliJson<{ tasks: { pending: number; uploaded: number }[] }>(e, ['samples', 'stats']);
  assert.equal(st.tasks.reduce((a, t) => a + t.pending, 0), pending.length, 'samples stats: pending');
  assert.equal(st.tasks.reduce((a, t) => a + t.uploaded, 0), uploaded.length, 'samples stats: uploaded');
}

describe('sync push marks exactly the acked samples', () => {
  it('an acked sample evicted meanwhile, its rowid taken by a new one, stays unmarked; a label changed meanwhile stays pending', async () => {
    const kb = await startGatedKb();
    const e = edgeFor(kb, 'edge-reuse');
    try {
      const ids = seedOutbox(e.home, 199, 1024, { seed: 3 });
      // the newest row (highest rowid) is the least valuable: the eviction below takes it
      const victim = withDb(e, (_db, ob) => ob.logBatch([logRecord(Buffer.alloc(1024, 1), { hardness: 0 })])[0].sampleId);
      labelSamples(e.home, ids.slice(0, 10).map((id) => ({ id, label: 'cat' })));
      const relabelled = ids[3];
      const before = new Map(rows(e).map((r) => [r.id, r.rowid]));
      let fresh = '';
      kb.onBatch = (sent) => {
        // while the KB holds its answer: the outbox is full by one row; a sample as worthless
        // as the victim comes in (rowid victim + 1) and the eviction takes both; the next
        // sample then gets the victim's rowid (SQLite hands out the highest rowid + 1). And
        // the operator corrects a label.
        withDb(e, (db, ob) => {
          const maxMb = (ob.trackedBytes() - 1) / (1 << 20);
          const full = new Outbox(db, homePaths(e.home), { outbox: { max_mb: maxMb } });
          const [worthless] = full.logBatch([logRecord(Buffer.alloc(1024, 2), { hardness: 0 })]);
          assert.equal(worthless.evicted, true);
          const [r] = ob.logBatch([logRecord(Buffer.alloc(1024, 3), { hardness: 0.9 })]);
          assert.equal(r.evicted, false);
          fresh = r.sampleId;
          ob.setLabels([{ id: relabelled, label: 'dog' }]);
        });
        return sent; // everything sent is acked, the victim's id too
      };
      const r = await sednaAsync(['sync', '--push-only', '--batch-size', '1000', '--json'], { home: e.home });
      assert.deepEqual(kb.errors, []);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(kb.batches.length, 1);
      assert.deepEqual(kb.batches[0].sort(), [...ids, victim].sort(), 'one batch of everything');

      const after = rows(e);
      const freshRow = after.find((x) => x.id === fresh)!;
      assert.ok(!after.some((x) => x.id === victim), 'the victim was evicted');
      assert.equal(freshRow.rowid, before.get(victim), 'precondition: the new sample took the victim\'s rowid');
      assert.equal(freshRow.state, 'pending', 'a new sample on an acked rowid is not marked');
      assert.ok(after.filter((x) => x.id !== fresh).every((x) => x.state === 'uploaded'), 'every acked sample still here is uploaded');
      // the labels sent with the samples are uploaded, except the one changed during the push,
      // which the same run then sent through POST /v1/labels
      assert.deepEqual(kb.labels, [{ id: relabelled, label: 'dog' }]);
      assert.ok(after.filter((x) => x.label !== null).every((x) => x.label_state === 'uploaded'));
      assertReadersAgree(e, [fresh], ids);

      // the next run sends the new sample, and only it
      kb.onBatch = (sent) => sent;
      const r2 = await sednaAsync(['sync', '--push-only', '--json'], { home: e.home });
      assert.equal(r2.code, 0, r2.stderr);
      assert.deepEqual(kb.batches.slice(1), [[fresh]]);
      assertReadersAgree(e, [], [...ids, fresh]);
    } finally {
      e.cleanup();
      await kb.close();
    }
  });

  it('an answer acking part of each batch: only those are uploaded for status, samples, eviction and the next push', async () => {
    const kb = await startGatedKb();
    const e = edgeFor(kb, 'edge-partial');
    try {
      const ids = seedOutbox(e.home, 250, 1024, { seed: 4, tasks: ['a', 'b'] });
      const acked = new Set<string>();
      kb.onBatch = (sent) => {
        const part = sent.filter((_, i) => i % 3 === 0);
        for (const id of part) acked.add(id);
        return part;
      };
      const r = await sednaAsync(['sync', '--push-only', '--batch-size', '100', '--json'], { home: e.home });
      assert.deepEqual(kb.errors, []);
      assert.equal(r.code, 0, r.stderr);
      const s = JSON.parse(r.stdout) as { pushed: number; acked: number; pending: number };
      assert.equal(kb.batches.length, 3);
      assert.equal(s.pushed, 250);
      assert.equal(s.acked, acked.size);
      const unacked = ids.filter((id) => !acked.has(id));
      assert.equal(s.pending, unacked.length);
      assertReadersAgree(e, unacked, [...acked]);

      // eviction takes the uploaded samples first, whatever their hardness, and counts them so
      const tracked = withDb(e, (_db, ob) => ob.trackedBytes());
      const perRow = tracked / ids.length;
      const k = 20;
      const maxMb = (tracked - k * perRow + perRow / 2) / (1 << 20);
      withDb(e, (db, ob) => {
        const [x] = ob.logBatch([logRecord(Buffer.alloc(1024, 7), { task: 'a', hardness: 1 })]);
        assert.equal(x.evicted, false);
        const gone = ids.filter((id) => !db.prepare('SELECT 1 FROM samples WHERE id = ?').get(id));
        assert.equal(gone.length, k + 1, 'the new row\'s bytes and k more');
        assert.ok(gone.every((id) => acked.has(id)), 'only uploaded samples were evicted');
        const ev = ob.evictionCounters();
        assert.equal(ev.uploaded, k + 1);
        assert.equal(ev.pending, 0);
        const uploadedLeft = [...acked].filter((id) => !gone.includes(id));
        assertReadersAgree(e, [...unacked, x.sampleId], uploadedLeft);
        const st = cliJson<{ evictions: { uploaded: number; pending: number } }>(e, ['status']);
        assert.deepEqual([st.evictions.uploaded, st.evictions.pending], [k + 1, 0]);
      }, maxMb);

      // the next push sends exactly what was not acked (and the new sample)
      kb.onBatch = (sent) => sent;
      const before = kb.batches.length;
      const r2 = await sednaAsync(['sync', '--push-only', '--batch-size', '1000', '--json'], { home: e.home });
      assert.equal(r2.code, 0, r2.stderr);
      const second = kb.batches.slice(before).flat();
      assert.equal(second.length, unacked.length + 1);
      assert.ok(unacked.every((id) => second.includes(id)));
    } finally {
      e.cleanup();
      await kb.close();
    }
  });

  it('an outbox from before schema migration 6 is migrated: same counts, and a push sends exactly its pending samples', async () => {
    const kb = await startGatedKb();
    const e = edgeFor(kb, 'edge-old');
    try {
      const ids = seedOutbox(e.home, 120, 512, { seed: 5 });
      const path = homePaths(e.home).db;
      // the same rows in a schema-5 database (the index on (state, created_at)), 40 of them uploaded
      const old = new Database(`${path}.v5`);
      for (const m of MIGRATIONS.slice(0, 5)) old.exec(m);
      old.pragma('user_version = 5');
      old.exec(`ATTACH '${path}' AS cur; INSERT INTO samples SELECT * FROM cur.samples ORDER BY rowid;
        INSERT INTO sample_payloads SELECT * FROM cur.sample_payloads; INSERT INTO kv SELECT * FROM cur.kv; INSERT INTO kb_versions SELECT * FROM cur.kb_versions; DETACH cur;`);
      const up = ids.slice(20, 60);
      const mark = old.prepare(`UPDATE samples SET state = 'uploaded', uploaded_at = 1 WHERE id = ?`);
      for (const id of up) mark.run(id);
      assert.ok(old.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'samples_state_time'`).get());
      old.close();
      withDb(e, () => {}); // checkpoint and close the current one
      const { renameSync, rmSync } = await import('node:fs');
      rmSync(`${path}-wal`, { force: true });
      rmSync(`${path}-shm`, { force: true });
      renameSync(`${path}.v5`, path);

      const pending = ids.filter((id) => !up.includes(id));
      assertReadersAgree(e, pending, up); // opening it ran migration 6
      withDb(e, (db) => {
        assert.equal(db.pragma('user_version', { simple: true }), MIGRATIONS.length);
        const names = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'samples'`).pluck().all() as string[]).sort();
        assert.ok(names.includes('samples_pending_time') && !names.includes('samples_state_time'), names.join(','));
      });
      const r = await sednaAsync(['sync', '--push-only', '--batch-size', '50', '--json'], { home: e.home });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(kb.batches.flat().sort(), [...pending].sort());
      assertReadersAgree(e, [], ids);
    } finally {
      e.cleanup();
      await kb.close();
    }
  });
});

test('eviction deletes in exactly the order of schema 5\'s samples_evict, across uploaded, labelled, rejected and pending rows', () => {
  const t = tempDir('sedna-evict-order-');
  const paths = homePaths(t.dir);
  const db = openEdgeDb(paths.db);
  try {
    const ob = new Outbox(db, paths, { outbox: { max_mb: 0 } });
    const rand = mulberry32(9);
    // few distinct hardness values and one created_at per batch: ties broken by rowid, as the index did
    const ids: string[] = [];
    for (let b = 0; b < 6; b++) {
      const recs = Array.from({ length: 50 }, (_, i) => logRecord(Buffer.alloc(256, b * 50 + i + 1), { hardness: Math.floor(rand() * 4) / 4 }));
      ids.push(...ob.logBatch(recs).map((r) => r.sampleId));
    }
    const pick = (p: number) => ids.filter(() => rand() < p);
    ob.setLabels(pick(0.3).map((id) => ({ id, label: 'cat' })));
    ob.markUploaded(pick(0.5), {}); // some labels stay pending on uploaded rows
    ob.markLabelsUploaded(pick(0.3));
    markRejected(db, pick(0.1).map((id) => ({ id, reason: 'test' })));
    // the order schema 5's index samples_evict gave (then rowid), computed before anything goes
    const want = db
      .prepare(`SELECT id FROM samples ORDER BY (state = 'pending' OR label_state IS 'pending'), (label IS NOT NULL), hardness, created_at, rowid`)
      .pluck()
      .all() as string[];
    const groups = db.prepare(`SELECT COUNT(DISTINCT (state = 'pending' OR label_state IS 'pending') || (label IS NOT NULL)) FROM samples`).pluck().get() as number;
    assert.equal(groups, 4, 'every group of the order is there');
    // shrink the quota step by step; each step evicts some rows: the whole sequence must match
    const got: string[] = [];
    const present = () => new Set(db.prepare('SELECT id FROM samples').pluck().all() as string[]);
    let before = present();
    for (let n = want.length - 7; n > 0; n -= 23) {
      const acct = ob.trackedBytes() / before.size;
      const small = new Outbox(db, paths, { outbox: { max_mb: (n * acct) / (1 << 20) } });
      const [r] = small.logBatch([logRecord(Buffer.alloc(256, 0), { hardness: 2, id: undefined, attrs: { site: String(n) } })]);
      assert.equal(r.evicted, false);
      const now = present();
      for (const id of want) if (before.has(id) && !now.has(id)) got.push(id);
      before = now;
    }
    assert.ok(got.length > want.length / 2, `evicted ${got.length}`);
    assert.deepEqual(got, want.slice(0, got.length));
  } finally {
    db.close();
    t.cleanup();
  }
});
