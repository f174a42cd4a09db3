// The outbox's read commands on one outbox: `samples export` and `samples ls` read it in
// (created_at, id) order, export in pages (keyset (created_at, id) > cursor); `samples stats`
// and `status` count it. The outbox here is made so that a paging mistake shows:
// batches of up to 1300 rows share one created_at (logBatch stamps a batch with one time), so
// page boundaries fall inside a run of equal times, and most ids are the client's own, in an
// order unlike their rowids (a cursor on rowid, or on created_at alone, skips or repeats rows).
// A quarter of the rows are marked uploaded, scattered, a few rejected, and there are two tasks:
// the filters skip rows inside pages too. Expected orders and counts are computed here from the
// rows themselves.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openEdgeDb, type DB } from '../src/store/db.js';
import { homePaths, loadConfig } from '../src/store/home.js';
import { type LogRecord, Outbox } from '../src/store/outbox.js';
import { FEW_TASK_ROWS, exportPageQuery, exportSamples, fewTaskRows, listSamples, type SampleFilter } from '../src/store/samples-query.js';
import { markRejected } from '../src/store/rejected.js';
import { ROW_BYTES_SQL } from '../src/store/outbox-accounting.js';
import { generateSigningKeys } from '../src/format/signature.js';
import { logRecord } from './helpers/log-record.js';
import { jsonLines, sedna, tempDir } from './helpers/cli.js';
import { type Edge, makeEdge } from './helpers/sync-edge.js';

type Row = { rowid: number; id: string; created_at: number; task: string; state: string };

/** A batch of n records (distinct payloads), ids from idOf (undefined: the outbox's UUIDv7). */
function batch(b: number, n: number, idOf: (i: number) => string | undefined): LogRecord[] {
  return Array.from({ length: n }, (_, i) => logRecord(Buffer.from(Float32Array.from([b, i, 0.5]).buffer), { task: i % 2 ? 'a' : 'b', id: idOf(i) }));
}

/** Wait for the clock's next millisecond, so that the next batch gets a later created_at. */
function nextMs(): void {
  const t = Date.now();
  while (Date.now() === t);
}

const FILTERS: SampleFilter[] = [{}, { state: 'uploaded' }, { state: 'pending' }, { task: 'b' }, { task: 'a', state: 'uploaded' }, { task: 'b', state: 'pending' }];
const cliArgs = (f: SampleFilter) => [...(f.task ? ['--task', f.task] : []), ...(f.state ? ['--state', f.state] : [])];
const byTimeId = (x: Row, y: Row) => x.created_at - y.created_at || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0);
/** The ids `f` selects from `rows`, in export's order (created_at, then id). */
const expectedIds = (rows: Row[], f: SampleFilter) => rows.filter((r) => (f.task === undefined || r.task === f.task) && (f.state === undefined || r.state === f.state)).sort(byTimeId).map((r) => r.id);
/** An edge home whose KB is never reached (these tests only read the outbox). */
const offlineEdge = (): Edge => makeEdge({ url: 'http://127.0.0.1:9', deviceToken: 'x'.repeat(20), publicKeyPem: generateSigningKeys().publicKey });

describe('samples export and ls: (created_at, id) order across page boundaries', () => {
  const t = tempDir('sedna-ll-export-');
  let e: Edge;
  let rows: Row[];
  const expected = (f: SampleFilter) => expectedIds(rows, f);

  before(() => {
    e = offlineEdge();
    const paths = homePaths(e.home);
    const db = openEdgeDb(paths.db);
    try {
      const ob = new Outbox(db, paths, loadConfig(e.home));
      // client ids in a scrambled order (7919 is prime to 10007), then UUIDv7 ids, then ids
      // descending against their rowids
      ob.logBatch(batch(1, 1300, (i) => `c-${String((i * 7919) % 10007).padStart(5, '0')}-${i}`));
      nextMs();
      ob.logBatch(batch(2, 700, () => undefined));
      nextMs();
      ob.logBatch(batch(3, 600, (i) => `z-${String(999999 - i).padStart(6, '0')}`));
      rows = db.prepare('SELECT rowid, id, created_at, task, state FROM samples ORDER BY rowid').all() as Row[];
      // every 4th row by rowid, so uploaded rows are scattered through every page
      const up = rows.filter((_, i) => i % 4 === 1).map((r) => r.id);
      assert.equal(ob.markUploaded(up), up.length);
      const rejected = rows.filter((_, i) => i % 97 === 3 && i % 4 !== 1).map((r) => ({ id: r.id, reason: 'test' }));
      assert.equal(markRejected(db, rejected), rejected.length);
      rows = db.prepare('SELECT rowid, id, created_at, task, state FROM samples ORDER BY rowid').all() as Row[];
    } finally {
      db.close();
    }
  });
  after(() => {
    e?.cleanup();
    t.cleanup();
  });

  it('the outbox is one that catches paging mistakes', () => {
    assert.equal(rows.length, 2600);
    const sizes = new Map<number, number>();
    for (const r of rows) sizes.set(r.created_at, (sizes.get(r.created_at) ?? 0) + 1);
    assert.deepEqual([...sizes.values()], [1300, 700, 600], 'three batches, three times');
    assert.notDeepEqual(expected({}), rows.map((r) => r.id), 'id order differs from rowid order');
    assert.equal(rows.filter((r) => r.state === 'uploaded').length, 650);
    assert.equal(rows.filter((r) => r.state === 'rejected').length, 20);
  });

  it('in-process export, page sizes 1 to 500: every row once, in (created_at, id) order', () => {
    const paths = homePaths(e.home);
    const db = openEdgeDb(paths.db, { readonly: true });
    try {
      for (const f of FILTERS) {
        const want = expected(f);
        assert.ok(want.length > 0);
        for (const page of [1, 7, 499, 500, 5000]) {
          const got = [...exportSamples(db, paths, f, page)].map((r) => r.id);
          assert.deepEqual(got, want, `filter ${JSON.stringify(f)}, page ${page}`);
        }
      }
    } finally {
      db.close();
    }
  });

  it('each export page seeks samples_time_id: no sort, no scan of the table', () => {
    const db = openEdgeDb(homePaths(e.home).db, { readonly: true });
    try {
      for (const f of FILTERS) {
        const q = exportPageQuery(f);
        const plan = (db.prepare(`EXPLAIN QUERY PLAN ${q.sql}`).all(...q.args, 0, '', 500) as { detail: string }[]).map((p) => p.detail).join('; ');
        assert.match(plan, /SEARCH samples USING (COVERING )?INDEX samples_time_id \(\(created_at,id\)>\(\?,\?\)\)/, `${JSON.stringify(f)}: ${plan}`);
        assert.doesNotMatch(plan, /TEMP B-TREE/, `${JSON.stringify(f)}: ${plan}`);
      }
    } finally {
      db.close();
    }
  });

  it('an outbox not migrated yet (read-only commands do not migrate) exports the same rows in the same order', () => {
    const paths = homePaths(e.home);
    const copy = join(t.dir, 'old.db');
    {
      const db = openEdgeDb(paths.db);
      db.pragma('wal_checkpoint(TRUNCATE)');
      db.close();
    }
    copyFileSync(paths.db, copy);
    const raw = openEdgeDb(copy);
    raw.exec('DROP INDEX samples_time_id');
    raw.close();
    const db: DB = openEdgeDb(copy, { readonly: true });
    try {
      for (const f of FILTERS) assert.deepEqual([...exportSamples(db, paths, f, 500)].map((r) => r.id), expected(f), JSON.stringify(f));
    } finally {
      db.close();
    }
  });

  it('the CLI (pages of 500): same rows, order and records, to stdout and to a file', () => {
    for (const f of FILTERS) {
      const r = sedna(['samples', 'export', ...cliArgs(f)], { home: e.home });
      assert.equal(r.code, 0, r.stderr);
      const recs = jsonLines<{ id: string; task: string; state: string; x: number[] }>(r.stdout);
      assert.deepEqual(recs.map((x) => x.id), expected(f), JSON.stringify(f));
      for (const x of recs) {
        if (f.task) assert.equal(x.task, f.task);
        if (f.state) assert.equal(x.state, f.state);
      }
    }
    const out = join(t.dir, 'all.jsonl');
    const r = sedna(['samples', 'export', '-o', out], { home: e.home });
    assert.equal(r.code, 0, r.stderr);
    const recs = jsonLines<{ id: string; x: number[] }>(readFileSync(out, 'utf8'));
    assert.deepEqual(recs.map((x) => x.id), expected({}));
    // each record carries its own payload: (batch, index in batch, 0.5), all distinct
    assert.equal(new Set(recs.map((x) => `${x.x[0]}/${x.x[1]}/${x.x[2]}`)).size, rows.length);
    assert.ok(recs.every((x) => x.x.length === 3 && x.x[2] === 0.5));
  });

  it('samples ls: the newest first, (created_at, id) descending, with the filters and limits across the time runs', () => {
    for (const f of FILTERS) {
      for (const limit of [1, 650, 5000]) {
        const r = sedna(['samples', 'ls', '--json', '--limit', String(limit), ...cliArgs(f)], { home: e.home });
        assert.equal(r.code, 0, r.stderr);
        const got = (JSON.parse(r.stdout) as { samples: { id: string }[] }).samples.map((x) => x.id);
        assert.deepEqual(got, expected(f).reverse().slice(0, limit), `${JSON.stringify(f)} --limit ${limit}`);
      }
    }
  });

  it('samples stats and status count every state from the rows; status corrects a drifted byte count', () => {
    const paths = homePaths(e.home);
    const n = (f: (r: Row) => boolean) => rows.filter(f).length;
    const st = JSON.parse(sedna(['samples', 'stats', '--json'], { home: e.home }).stdout) as { tasks: { task: string; samples: number; pending: number; uploaded: number }[] };
    for (const task of ['a', 'b']) {
      const got = st.tasks.find((x) => x.task === task)!;
      assert.deepEqual(
        { samples: got.samples, pending: got.pending, uploaded: got.uploaded },
        { samples: n((r) => r.task === task), pending: n((r) => r.task === task && r.state === 'pending'), uploaded: n((r) => r.task === task && r.state === 'uploaded') },
        task,
      );
    }
    let db = openEdgeDb(paths.db);
    const actual = db.prepare(`SELECT SUM(${ROW_BYTES_SQL}) FROM samples`).pluck().get() as number;
    const pendingBytes = db.prepare(`SELECT SUM(${ROW_BYTES_SQL}) FROM samples WHERE state = 'pending'`).pluck().get() as number;
    // a drift of the tracked count (what the quota compares): status puts the rows' sum back
    db.prepare(`UPDATE kv SET value = ? WHERE key = 'outbox_bytes'`).run(String(actual + 12345));
    db.close();
    const r = sedna(['status', '--json'], { home: e.home });
    assert.equal(r.code, 0, r.stderr);
    const o = (JSON.parse(r.stdout) as { outbox: Record<string, number> }).outbox;
    assert.deepEqual(
      { pending: o.pending, uploaded: o.uploaded, rejected: o.rejected, pending_bytes: o.pending_bytes, bytes: o.bytes },
      { pending: n((x) => x.state === 'pending'), uploaded: n((x) => x.state === 'uploaded'), rejected: n((x) => x.state === 'rejected'), pending_bytes: pendingBytes, bytes: actual },
    );
    db = openEdgeDb(paths.db, { readonly: true });
    try {
      assert.equal(Number(db.prepare(`SELECT value FROM kv WHERE key = 'outbox_bytes'`).pluck().get()), actual, 'corrected in kv');
    } finally {
      db.close();
    }
  });
});

// A task of few rows is read through its own index (task, payload_sha) and sorted, not found
// by walking samples_time_id over the whole outbox (FEW_TASK_ROWS): `samples ls --task T` for a
// new or absent task was ~2x slower after migration 7 (400k rows: 0.14 -> 0.31 s). Both plans
// must give the same rows in the same order: a small task, scattered through runs of equal
// created_at, some rows uploaded, against a big one.
describe('samples export and ls of a task of few rows: read through the task index, same rows and order', () => {
  let e: Edge;
  let rows: Row[];
  const expected = (f: SampleFilter) => expectedIds(rows, f);
  const filters: SampleFilter[] = [{ task: 'small' }, { task: 'small', state: 'uploaded' }, { task: 'small', state: 'pending' }, { task: 'none' }, { task: 'big' }, { task: 'big', state: 'uploaded' }];

  before(() => {
    e = offlineEdge();
    const paths = homePaths(e.home);
    const db = openEdgeDb(paths.db);
    try {
      const ob = new Outbox(db, paths, loadConfig(e.home));
      // every 37th record is of task 'small' (ids scrambled against rowids), in three time runs
      const rec = (b: number, i: number) =>
        logRecord(Buffer.from(Float32Array.from([b, i, 0.25]).buffer), { task: i % 37 === 5 ? 'small' : 'big', id: `k-${String((i * 7919 + b) % 10007).padStart(5, '0')}-${b}-${i}` });
      for (const [b, n] of [[1, 700], [2, 500], [3, 500]] as const) {
        ob.logBatch(Array.from({ length: n }, (_, i) => rec(b, i)));
        nextMs();
      }
      rows = db.prepare('SELECT rowid, id, created_at, task, state FROM samples ORDER BY rowid').all() as Row[];
      const up = rows.filter((_, i) => i % 3 === 1).map((r) => r.id);
      assert.equal(ob.markUploaded(up), up.length);
      rows = db.prepare('SELECT rowid, id, created_at, task, state FROM samples ORDER BY rowid').all() as Row[];
    } finally {
      db.close();
    }
  });
  after(() => e?.cleanup());

  it('the plan follows the task\'s size', () => {
    const db = openEdgeDb(homePaths(e.home).db, { readonly: true });
    try {
      const small = rows.filter((r) => r.task === 'small').length;
      assert.ok(small > 20 && small <= FEW_TASK_ROWS && rows.length - small > FEW_TASK_ROWS, `${small} of ${rows.length}`);
      assert.equal(fewTaskRows(db, 'small'), true);
      assert.equal(fewTaskRows(db, 'none'), true);
      assert.equal(fewTaskRows(db, 'big'), false);
      const plan = (f: SampleFilter, byTask: boolean) => {
        const q = exportPageQuery(f, byTask);
        return (db.prepare(`EXPLAIN QUERY PLAN ${q.sql}`).all(...q.args, 0, '', 500) as { detail: string }[]).map((p) => p.detail).join('; ');
      };
      assert.match(plan({ task: 'small' }, true), /SEARCH samples USING (COVERING )?INDEX sqlite_autoindex_samples_\d \(task=\?\)/);
      assert.match(plan({ task: 'big' }, false), /samples_time_id/);
    } finally {
      db.close();
    }
  });

  it('in process and through the CLI: export (pages 1 to 500) and ls give the rows of the filter, in order', () => {
    const paths = homePaths(e.home);
    const db = openEdgeDb(paths.db, { readonly: true });
    try {
      for (const f of filters) {
        const want = expected(f);
        for (const page of [1, 7, 500]) assert.deepEqual([...exportSamples(db, paths, f, page)].map((r) => r.id), want, `${JSON.stringify(f)} page ${page}`);
        for (const limit of [1, 5, 5000]) assert.deepEqual(listSamples(db, { ...f, limit }).map((r) => r.id), [...want].reverse().slice(0, limit), `${JSON.stringify(f)} ls --limit ${limit}`);
      }
    } finally {
      db.close();
    }
    for (const f of [filters[0], filters[1]]) {
      const r = sedna(['samples', 'export', ...cliArgs(f)], { home: e.home });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(jsonLines<{ id: string }>(r.stdout).map((x) => x.id), expected(f), JSON.stringify(f));
    }
  });
});
