// store/wal-durability.ts on a real edge database: the connection commits with
// synchronous=NORMAL; durable() fdatasyncs the WAL off the event loop, one fsync for every
// caller that arrived while the previous one ran, and a later caller is never served by an
// fsync that started before it; a WAL file replaced on disk is reopened. store/wal-checkpointer.ts:
// checkpoints on a worker thread instead of inside a COMMIT.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { statSync } from 'node:fs';
import { tempDir } from './helpers/cli.js';
import { kvGet, kvSet, openEdgeDb } from '../src/store/db.js';
import { FsyncPace, IDENTITY_EVERY, WalDurability } from '../src/store/wal-durability.js';
import { WalCheckpointer } from '../src/store/wal-checkpointer.js';

test('WalDurability: NORMAL commits, grouped fdatasync of the WAL, callers after a start wait for the next fsync', async () => {
  const t = tempDir();
  const path = join(t.dir, 'edge.db');
  const db = openEdgeDb(path);
  try {
    const d = new WalDurability(db, path);
    assert.equal(db.pragma('synchronous', { simple: true }), 1, 'NORMAL on this connection');
    kvSet(db, 'a', 1);
    const first = d.durable(); // starts an fsync now
    kvSet(db, 'b', 2); // committed after that fsync started: it must not be what serves the next callers
    const later = [d.durable(), d.durable(), d.durable()];
    assert.equal(later[0], later[1], 'callers while an fsync runs share the next one');
    let firstDone = false;
    void first.then(() => (firstDone = true));
    await later[0];
    assert.equal(firstDone, true, 'the later fsync completes after the first');
    await Promise.all([first, ...later]);
    assert.deepEqual([d.calls, d.syncs], [4, 2]);
    // an idle durable() starts at once and resolves
    await d.durable();
    assert.equal(d.syncs, 3);
    await d.close();
  } finally {
    db.close();
  }

  // the WAL is deleted when the last connection closes and recreated by the next one: a
  // durability object that outlives that reopens the new file (checked by inode per fsync)
  const db1 = openEdgeDb(path);
  const d1 = new WalDurability(db1, path);
  kvSet(db1, 'c', 3);
  await d1.durable();
  const ino1 = statSync(`${path}-wal`).ino;
  db1.close();
  const db2 = openEdgeDb(path);
  try {
    kvSet(db2, 'd', 4);
    assert.notEqual(statSync(`${path}-wal`).ino, ino1, 'a new WAL file');
    // the identity is checked every IDENTITY_EVERY fsyncs: within that many the new file is used
    for (let i = 0; i < IDENTITY_EVERY; i++) await d1.durable();
    assert.equal(d1.reopens, 2, 'opened once, then reopened for the new file');
    assert.equal(kvGet(db2, 'd'), '4');
    await d1.close();
  } finally {
    db2.close();
    t.cleanup();
  }
});

test('WalCheckpointer: no checkpoint in the serving connection; a worker checkpoints every N commits, PASSIVE, all frames', async () => {
  const t = tempDir();
  const path = join(t.dir, 'edge.db');
  const db = openEdgeDb(path);
  const warnings: string[] = [];
  try {
    const c = new WalCheckpointer(db, path, (m) => warnings.push(m), 10, 2 ** 31 - 1); // no timer-driven checkpoint in this test
    assert.equal(db.pragma('wal_autocheckpoint', { simple: true }), 0);
    for (let i = 0; i < 9; i++) {
      kvSet(db, `k${i}`, 'x'.repeat(3000)); // a page or more per commit
      c.committed();
    }
    await c.idle();
    assert.equal(c.checkpoints, 0, 'not before `every` commits');
    kvSet(db, 'k9', 'y');
    c.committed(); // the 10th: a checkpoint starts on the worker
    await c.idle();
    assert.ok(c.checkpoints >= 1, 'a checkpoint ran');
    assert.ok(c.last!.log > 0 && c.last!.checkpointed === c.last!.log, `every WAL frame copied: ${JSON.stringify(c.last)}`);
    await c.close();
    assert.deepEqual(warnings, []);
    assert.equal(kvGet(db, 'k9'), 'y');
  } finally {
    db.close();
    t.cleanup();
  }
});

test('WalDurability inline (serve): fdatasync on the calling thread covers the commit; FsyncPace sends a slow disk to the thread pool and probes it again', async () => {
  const t = tempDir();
  const path = join(t.dir, 'edge.db');
  const db = openEdgeDb(path);
  try {
    const d = new WalDurability(db, path, { inlineMaxMs: Infinity });
    kvSet(db, 'a', 1);
    await d.durable();
    kvSet(db, 'b', 2);
    await d.durable();
    assert.deepEqual([d.calls, d.syncs, d.inlineSyncs], [2, 2, 2], 'every fsync inline');
    await d.close();
    // without the option every fsync goes to the thread pool (the KB's use)
    const off = new WalDurability(db, path);
    kvSet(db, 'c', 3);
    await off.durable();
    assert.deepEqual([off.syncs, off.inlineSyncs], [1, 0]);
    await off.close();
  } finally {
    db.close();
    t.cleanup();
  }

  const pace = new FsyncPace(1);
  assert.equal(pace.inline, true, 'an unknown disk is tried inline');
  for (let i = 0; i < 20; i++) pace.took(0.3);
  assert.equal(pace.inline, true, 'a 0.3 ms disk stays inline');
  pace.took(20); // one slow fsync (an SD card, a busy disk)
  assert.equal(pace.inline, false, 'one 20 ms fsync sends the next ones to the thread pool');
  let offloaded = 0;
  while (!pace.inline) {
    pace.offloaded();
    offloaded++;
  }
  assert.ok(offloaded >= 4 && offloaded <= 8, `a few offloaded fsyncs before the next inline probe (${offloaded})`);
  pace.took(20); // the probe: still slow
  assert.equal(pace.inline, false);
  for (let i = 0; i < 10 && !pace.inline; i++) pace.offloaded();
  pace.took(0.3);
  pace.took(0.3);
  assert.equal(pace.inline, true, 'a disk that is fast again is back inline');
});
