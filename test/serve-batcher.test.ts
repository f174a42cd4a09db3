// ServeBatcher (src/runtime/serve-batcher.ts) on a real pipeline, outbox and model: concurrent
// requests share one batch; with the durable hook (serve's WAL fdatasync, here a gate the test
// opens) only the requests with a sample reported logged wait for it; the others are answered
// at once, and a failed fsync fails only the waiting ones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from './helpers/cli.js';
import { writeIdentityModel } from './helpers/models.js';
import { makeHome } from './edge-runtime-fixtures.js';
import { openHome } from '../src/store/open-home.js';
import { Outbox } from '../src/store/outbox.js';
import { decodeJsonRecord } from '../src/runtime/decode-jsonl.js';
import { Pipeline, type Outcome } from '../src/runtime/pipeline.js';
import { commitDurability, ServeBatcher } from '../src/runtime/serve-batcher.js';
import { WalDurability } from '../src/store/wal-durability.js';
import { SessionCache } from '../src/runtime/sessions.js';
import { loadRuntimeState } from '../src/runtime/state.js';

async function setup(dir: string) {
  const home = join(dir, 'home');
  // identity model, softmax over 2 features, margin filter: [0, 0] is hard (margin 0), [5, 0] is not
  makeHome(home, { tasks: [{ id: 'global', model: writeIdentityModel(dir, 'm', 2, { softmax: true }), inDim: 2, outDim: 2, labels: ['a', 'b'] }], hard: [{ type: 'margin', threshold: 0.1 }] });
  const { paths, cfg, db } = openHome(home);
  const sessions = new SessionCache(paths.models, { intraOpThreads: 1 });
  const state = loadRuntimeState(paths, db);
  for (const t of state.index.tasks) await sessions.get(t);
  const pipeline = new Pipeline(sessions, { db, sink: new Outbox(db, paths, cfg), seed: 1, runInTurn: true });
  const item = (x: number[]) => [decodeJsonRecord({ x }, 'request', 1, null, null)];
  return { db, sessions, state, pipeline, item, close: async () => (await sessions.dispose(), db.close()) };
}

/** a durable hook whose fsync completes (or fails) when the test says so */
function gate() {
  let open!: () => void;
  let fail!: (e: Error) => void;
  const p = new Promise<void>((a, b) => ((open = a), (fail = b)));
  p.catch(() => {});
  const g = { calls: 0, open, fail, durable: () => (g.calls++, p) };
  return g;
}

const line = (o: Outcome[]) => JSON.parse(o[0].line!) as { label: string; hard: boolean; logged: boolean };

test('serve batcher: a request with nothing logged is answered before the fsync its batch waits for; the logged one after it', async () => {
  const t = tempDir('sedna-ll-batcher-');
  const s = await setup(t.dir);
  try {
    const g = gate();
    const b = new ServeBatcher(s.pipeline, g.durable);
    let hardDone = false;
    const hard = b.run(s.state, s.item([0, 0])).then((o) => ((hardDone = true), o));
    const easy = b.run(s.state, s.item([5, 0]));
    const e = line(await easy);
    assert.deepEqual({ label: e.label, hard: e.hard, logged: e.logged, hardDone, calls: g.calls }, { label: 'a', hard: false, logged: false, hardDone: false, calls: 1 });
    g.open();
    const h = line(await hard);
    assert.deepEqual({ hard: h.hard, logged: h.logged }, { hard: true, logged: true });
    assert.deepEqual({ batches: b.batches, requests: b.batchedRequests }, { batches: 1, requests: 2 }, 'both requests shared one batch');

    // a batch that logs nothing does not call the hook
    const quiet = gate();
    const b2 = new ServeBatcher(s.pipeline, quiet.durable);
    assert.equal(line(await b2.run(s.state, s.item([0, 5]))).logged, false);
    assert.equal(quiet.calls, 0);
  } finally {
    await s.close();
    t.cleanup();
  }
});

test('serve batcher: a failed fsync fails the requests that logged, not the ones answered without logging', async () => {
  const t = tempDir('sedna-ll-batcher-');
  const s = await setup(t.dir);
  try {
    const g = gate();
    const b = new ServeBatcher(s.pipeline, g.durable);
    const hard = b.run(s.state, s.item([1, 1]));
    const easy = b.run(s.state, s.item([0, 6]));
    assert.equal(line(await easy).logged, false);
    g.fail(new Error('EIO'));
    await assert.rejects(hard, /cannot log samples to the outbox: EIO; nothing of these samples was reported logged/);
  } finally {
    await s.close();
    t.cleanup();
  }
});

test('serve batcher: without a checkpointer (the single-file binary has none) a logged answer still waits for the WAL fdatasync', async () => {
  const t = tempDir('sedna-ll-batcher-');
  const s = await setup(t.dir);
  try {
    assert.equal(commitDurability(null, null), null, 'no logging, no hook');
    // the real WAL durability serve sets up: the connection now commits with synchronous=NORMAL
    const wal = new WalDurability(s.db, join(t.dir, 'home', 'edge.db'));
    const b = new ServeBatcher(s.pipeline, commitDurability(wal, null));
    const h = line(await b.run(s.state, s.item([0, 0])));
    assert.equal(h.logged, true);
    assert.equal(wal.syncs, 1, 'the answer came after one fdatasync of the WAL');
    let told = 0;
    const b2 = new ServeBatcher(s.pipeline, commitDurability(wal, { committed: () => void told++ }));
    assert.equal(line(await b2.run(s.state, s.item([1, 1]))).logged, true);
    assert.deepEqual({ syncs: wal.syncs, told }, { syncs: 2, told: 1 }, 'and with a checkpointer it is told of the commit');
    await wal.close();
  } finally {
    await s.close();
    t.cleanup();
  }
});
