// Samples the KB rejects for good are marked on the edge and never re-sent. A real KB (kb serve
// child) and two real edges: edge-b is a clone of edge-a's disk image (same sample ids, its own
// token), so the KB refuses edge-b's copies as another device's (a whole batch of them: 409; mixed
// with new samples: 200 with `rejected`); one more sample fails the KB's payload check. The run
// exits 4 once; the rejected samples then stay out of every later push, which exits 0.
import assert from 'node:assert/strict';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { openEdgeDb } from '../src/store/db.js';
import { homePaths } from '../src/store/home.js';
import { sedna, tempDir } from './helpers/cli.js';
import { startTestKb, type TestKb } from './helpers/kb-server.js';
import { editConfig, kbSamples, labelSamples, makeEdge, seedOutbox, type Edge } from './helpers/sync-edge.js';

let kb: TestKb;
let a: Edge;
const tmp = tempDir('sedna-ll-sync-rejected-');
const bHome = join(tmp.dir, 'edge-b');

const syncJson = (home: string, args: string[] = []) => {
  const r = sedna(['sync', '--push-only', '--json', ...args], { home });
  return { code: r.code, stderr: r.stderr, s: JSON.parse(r.stdout) as Record<string, number> };
};
function rows(home: string): { id: string; state: string; reject_reason: string | null }[] {
  const db = openEdgeDb(homePaths(home).db);
  try {
    return db.prepare('SELECT id, state, reject_reason FROM samples ORDER BY created_at, rowid').all() as { id: string; state: string; reject_reason: string | null }[];
  } finally {
    db.close();
  }
}

before(async () => {
  kb = await startTestKb({ deviceId: 'edge-a' });
  a = makeEdge(kb, { deviceId: 'edge-a' });
});
after(async () => {
  a?.cleanup();
  await kb?.stop();
  tmp.cleanup();
});

test('rejected samples are marked with the reason, counted, and not re-sent; only that run exits 4', async () => {
  const cloned = seedOutbox(a.home, 5, 64, { seed: 1 });
  // the gateway image is cloned before its first sync; the clone enrols as edge-b
  cpSync(a.home, bHome, { recursive: true });
  editConfig(bHome, (c) => {
    c.device_id = 'edge-b';
  });
  writeFileSync(homePaths(bHome).token, kb.addDevice('edge-b').token + '\n');
  const ra = syncJson(a.home);
  assert.equal(ra.code, 0, ra.stderr);
  assert.equal(ra.s.acked, 5);

  labelSamples(bHome, [{ id: cloned[4], label: 'cat' }]); // its label can never go up either
  const fresh = seedOutbox(bHome, 3, 64, { seed: 2 });
  const broken = seedOutbox(bHome, 1, 64, { seed: 3 })[0];
  const db = openEdgeDb(homePaths(bHome).db);
  db.prepare('UPDATE samples SET payload_sha = ? WHERE id = ?').run('f'.repeat(64), broken);
  db.close();

  // batches of 4: [4 clones] -> 409 (all another device's), [clone, 3 fresh] -> 200 with 1 rejected, [broken] -> rejected
  const r1 = syncJson(bHome, ['--batch-size', '4']);
  assert.equal(r1.code, 4, r1.stderr);
  assert.match(r1.stderr, /6 sample\(s\) rejected by the KB/);
  assert.deepEqual([r1.s.pushed, r1.s.acked, r1.s.rejected, r1.s.pending, r1.s.rejected_total, r1.s.labels_pending], [9, 3, 6, 0, 6, 0]);
  const byId = new Map(rows(bHome).map((r) => [r.id, r]));
  for (const id of cloned) {
    assert.equal(byId.get(id)!.state, 'rejected');
    assert.match(byId.get(id)!.reject_reason!, /another device/);
  }
  for (const id of fresh) assert.equal(byId.get(id)!.state, 'uploaded');
  assert.equal(byId.get(broken)!.state, 'rejected');
  assert.match(byId.get(broken)!.reject_reason!, /payload_sha does not match/);

  // the next runs send nothing again and succeed
  for (let i = 0; i < 2; i++) {
    const r = syncJson(bHome, ['--batch-size', '4']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([r.s.pushed, r.s.rejected, r.s.pending, r.s.rejected_total], [0, 0, 0, 6]);
  }
  const st = JSON.parse(sedna(['status', '--json'], { home: bHome }).stdout) as { outbox: { pending: number; rejected: number } };
  assert.deepEqual([st.outbox.pending, st.outbox.rejected], [0, 6]);
  assert.match(sedna(["status"], { home: bHome }).stdout, /6 rejected by the KB/);
  // the KB: edge-a owns its 5, edge-b the 3 fresh ones
  assert.deepEqual((await kbSamples(kb, 'edge-a')).map((s) => s.id).sort(), [...cloned].sort());
  assert.deepEqual((await kbSamples(kb, 'edge-b')).map((s) => s.id).sort(), [...fresh].sort());
});
