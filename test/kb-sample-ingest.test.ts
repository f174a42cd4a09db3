// The KB's frames ingest in-process on a real SQLite KB (kb/sample-ingest.ts ->
// SqliteKbStore.putSamples): malformed records rejected while their neighbours are stored,
// commits in groups while the stream goes on, idempotent re-sends that move the counters by
// exactly the rows inserted, a cut stream that keeps what was committed, and the grouped
// durability of pushed batches (NORMAL commit + fdatasync of the WAL before the answer; the
// connection back on FULL for every other write).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { assembleFrames, encodeRecordHead } from '../src/format/sample-frames.js';
import { kbPaths } from '../src/kb/paths.js';
import { ingestFrames } from '../src/kb/sample-ingest.js';
import { SqliteKbStore } from '../src/kb/sqlite-store.js';
import { tempDir } from './helpers/cli.js';
import { kbSample } from './helpers/kb-sample.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function rec(id: string, payload: Buffer, over: Record<string, unknown> = {}): Buffer[] {
  const meta = JSON.stringify({
    task: 'global',
    attrs: { Site: 'a_b' },
    payload_kind: 'f32',
    payload_sha: sha(payload),
    pred_label: '1',
    scores: [0.6, 0.4],
    hard: true,
    hard_reasons: ['margin'],
    unseen: false,
    unseen_reason: null,
    kb_version: null,
    created_at: 1_700_000_000_000,
    ...over,
  });
  return [encodeRecordHead(id, meta, payload.length), payload];
}

function body(records: Buffer[][]): Buffer {
  const parts = records.flat();
  return assembleFrames(parts, parts.reduce((a, b) => a + b.length, 0));
}

async function* chunks(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield Buffer.from(buf.subarray(i, i + size));
}

function openStore(dir: string): SqliteKbStore {
  const paths = kbPaths(dir);
  for (const d of [paths.data, paths.blobs, paths.tmp, paths.versions, paths.keys]) mkdirSync(d, { recursive: true });
  return new SqliteKbStore(paths);
}

test('frames ingest on a real SQLite KB: rejects the malformed, stores the neighbours, commits in groups, idempotent re-send', async (t) => {
  const tmp = tempDir();
  const store = openStore(join(tmp.dir, 'kb'));
  t.after(async () => {
    await store.close();
    tmp.cleanup();
  });
  const p = (i: number) => Buffer.alloc(3072, i);
  const good = Array.from({ length: 10 }, (_, i) => rec(`good-${String(i).padStart(6, '0')}`, p(i), i === 4 ? { label: 'cat' } : {}));
  const stream = body([...good.slice(0, 5), rec('bad-sha-0001', p(1), { payload_sha: sha(p(2)) }), rec('bad-meta-001', p(1), { hard: 'yes' }), ...good.slice(5)]);
  const commits: number[] = [];
  const ingest = () =>
    ingestFrames(chunks(stream, 1000), { put: (s) => store.putSamples('edge-1', s), maxRecordBytes: 1 << 20, txSamples: 4, onCommit: (_s, n) => commits.push(n) });

  const r = await ingest();
  assert.equal(r.records, 12);
  assert.deepEqual(r.stored.sort(), good.map((_, i) => `good-${String(i).padStart(6, '0')}`));
  assert.deepEqual(r.rejected.map((x) => x.id), ['bad-sha-0001', 'bad-meta-001']);
  assert.match(r.rejected[0].reason, /^record 5: payload_sha does not match the payload$/);
  assert.match(r.rejected[1].reason, /^record 6: invalid sample: \/hard must be boolean$/);
  // groups of 4 good records while the stream goes on, the rest at its end
  assert.deepEqual(commits, [4, 4, 2]);
  assert.deepEqual((await store.counters()).samples_new, 10);
  assert.equal((await store.counters()).labelled_new, 1);
  const s4 = await store.getSample('good-000004');
  assert.deepEqual([s4?.attrs, s4?.label, s4?.device_id], [{ site: 'a-b' }, 'cat', 'edge-1']);
  assert.ok((await store.samplePayload('good-000007'))!.equals(p(7)));

  // the same stream again: every good id acked again, nothing inserted, counters unmoved
  const again = await ingest();
  assert.equal(again.stored.length, 10);
  assert.equal((await store.counters()).samples_new, 10);
  assert.equal((await store.counters()).labelled_new, 1);

  // a stream cut after 7 records: what was committed before the cut stays stored and acked
  const more = body(Array.from({ length: 9 }, (_, i) => rec(`more-${String(i).padStart(6, '0')}`, p(i))));
  const cut = await ingestFrames(chunks(more.subarray(0, more.length - 3000), 777), { put: (s) => store.putSamples('edge-1', s), maxRecordBytes: 1 << 20, txSamples: 4 });
  assert.equal(cut.streamError?.status, 400);
  assert.match(cut.streamError!.message, /stream cut inside record 8/);
  assert.equal(cut.stored.length, 8);
  assert.equal((await store.counters()).samples_new, 18);
});

test('a pushed batch is made durable by a grouped fdatasync of the WAL; the connection stays synchronous=FULL for other writes', async (t) => {
  const tmp = tempDir();
  const store = openStore(join(tmp.dir, 'kb'));
  t.after(async () => {
    await store.close();
    tmp.cleanup();
  });
  const internals = store as unknown as { db: { pragma(s: string, o?: object): unknown }; walSync: { syncs: number; calls: number } };
  const FULL = 2;
  assert.equal(internals.db.pragma('synchronous', { simple: true }), FULL);
  const batch = (k: number) => Array.from({ length: 5 }, (_, i) => ({ ...sampleOf(`dur-${k}-${String(i).padStart(4, '0')}`) }));
  // three pushes at once: each resolves only after an fdatasync that began after its commit
  const rs = await Promise.all([0, 1, 2].map((k) => store.putSamples('edge-1', batch(k))));
  assert.deepEqual(rs.map((r) => r.inserted), [5, 5, 5]);
  assert.equal(internals.walSync.calls, 3);
  assert.ok(internals.walSync.syncs >= 1 && internals.walSync.syncs <= 3, `${internals.walSync.syncs} fsyncs`);
  assert.equal(internals.db.pragma('synchronous', { simple: true }), FULL);
  // inside a transaction the batch is part of it (its COMMIT, FULL, makes it durable): no extra fsync
  await store.tx(async (tx) => {
    await tx.putSamples('edge-1', batch(3));
  });
  assert.equal(internals.walSync.calls, 3);
  assert.equal((await store.counters()).samples_new, 20);
});

const sampleOf = (id: string) => kbSample(id, Buffer.alloc(64, 1), { attrs: { site: 'a' }, pred_label: '1', scores: [1], label: null, source: 'edge' });
