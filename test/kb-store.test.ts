// The KbStore contract, run against every backend (today: SQLite + files). A PostgreSQL + S3
// backend adds itself to BACKENDS and must pass the same tests.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { tempDir } from './helpers/cli.js';
import { SqliteKbStore, INLINE_PAYLOAD_MAX } from '../src/kb/sqlite-store.js';
import { kbPaths } from '../src/kb/paths.js';
import type { KbStore, NewSample, TaskRecord } from '../src/kb/store.js';

const BACKENDS: { name: string; open: () => { store: KbStore; cleanup: () => void } }[] = [
  {
    name: 'sqlite',
    open: () => {
      const t = tempDir('sedna-ll-kbstore-');
      const store = new SqliteKbStore(kbPaths(join(t.dir, 'kb')));
      return { store, cleanup: t.cleanup };
    },
  },
];

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function newSample(id: string, payload: Buffer | null = randomBytes(64), extra: Partial<NewSample> = {}): NewSample {
  return {
    id,
    task: 'global',
    attrs: { site: 'a' },
    payload_kind: payload ? 'f32' : 'none',
    payload,
    payload_sha: sha(payload ?? Buffer.from(id)),
    pred_label: 'x',
    scores: [0.7, 0.3],
    hard: true,
    hard_reasons: ['margin'],
    unseen: false,
    unseen_reason: null,
    kb_version: 3,
    created_at: 1000,
    ...extra,
  };
}

function task(id: string, over: Partial<TaskRecord> = {}): TaskRecord {
  return {
    id,
    attrs: {},
    model_sha: 'a'.repeat(64),
    model_size: 10,
    inputs: [{ name: 'input', shape: [-1, 2], dtype: 'float32' }],
    outputs: [{ name: 'probabilities', shape: [-1, 2], dtype: 'float32' }],
    labels: ['a', 'b'],
    preprocessing: { kind: 'vector' },
    output_kind: 'probabilities',
    parent: null,
    metrics: {},
    centroid: null,
    radius: null,
    thresholds: null,
    samples: 0,
    updated_round: 0,
    fallback: false,
    created_at: 1,
    updated_at: 1,
    ...over,
  };
}

for (const backend of BACKENDS) {
  describe(`KbStore contract: ${backend.name}`, () => {
    test('samples: idempotent upsert, ownership, payloads inline and in blobs, labels, counters', async () => {
      const { store, cleanup } = backend.open();
      try {
        const big = randomBytes(INLINE_PAYLOAD_MAX + 1000);
        const batch = [newSample('id-aaaaaaaa'), newSample('id-bbbbbbbb', big), newSample('id-cccccccc', null, { label: 'l1' })];
        const r1 = await store.putSamples('dev-1', batch);
        assert.deepEqual([r1.stored, r1.inserted, r1.rejected], [batch.map((s) => s.id), 3, []]);
        const r2 = await store.putSamples('dev-1', batch);
        assert.deepEqual([r2.stored, r2.inserted], [batch.map((s) => s.id), 0]);
        const r3 = await store.putSamples('dev-2', [newSample('id-aaaaaaaa', randomBytes(8)), newSample('id-dddddddd')]);
        assert.deepEqual(r3.stored, ['id-dddddddd']);
        assert.equal(r3.rejected[0].id, 'id-aaaaaaaa');
        assert.deepEqual(await store.samplePayload('id-aaaaaaaa'), batch[0].payload, 'never overwritten by another owner');
        assert.deepEqual(await store.samplePayload('id-bbbbbbbb'), big);
        assert.ok(await store.blobs.has(sha(big)), 'a large payload lives in the blob store');
        assert.equal(await store.samplePayload('id-cccccccc'), null);
        assert.equal(await store.samplePayload('nope'), null);
        const s = (await store.getSample('id-aaaaaaaa'))!;
        assert.deepEqual([s.device_id, s.task, s.attrs, s.scores, s.hard, s.hard_reasons, s.kb_version, s.payload_bytes, s.source], ['dev-1', 'global', { site: 'a' }, [0.7, 0.3], true, ['margin'], 3, 64, 'edge']);

        // labels: a device only for its own samples, all or nothing; admin for any
        const bad = await store.setLabels([{ id: 'id-aaaaaaaa', label: 'z' }, { id: 'id-dddddddd', label: 'z' }], 'edge', 'dev-2');
        assert.deepEqual([bad.stored, bad.forbidden], [[], ['id-aaaaaaaa']]);
        assert.equal((await store.getSample('id-dddddddd'))!.label, null, 'nothing stored from a refused batch');
        const ok = await store.setLabels([{ id: 'id-aaaaaaaa', label: 'z' }, { id: 'missing-1', label: 'q' }], 'admin', null);
        assert.deepEqual([ok.stored, ok.unknown, ok.newly_labelled], [['id-aaaaaaaa'], ['missing-1'], 1]);
        const again = await store.setLabels([{ id: 'id-aaaaaaaa', label: 'y' }], 'admin', null);
        assert.equal(again.newly_labelled, 0, 'relabelling is not new');
        const c = await store.counters();
        assert.deepEqual([c.samples_new, c.labelled_new], [4, 2]);
        await store.setCounter('labelled_new', 0);
        await store.addCounter('labelled_new', 5);
        assert.equal((await store.counters()).labelled_new, 5);

        // listing: filters, keyset paging, order
        assert.equal(await store.countSamples(), 4);
        assert.equal(await store.countSamples({ labelled: true }), 2);
        assert.deepEqual((await store.listSamples({ device: 'dev-2' })).map((x) => x.id), ['id-dddddddd']);
        const p1 = await store.listSamples({ limit: 2 });
        const p2 = await store.listSamples({ after: p1[1].seq, limit: 2 });
        assert.deepEqual([...p1, ...p2].map((x) => x.id), ['id-aaaaaaaa', 'id-bbbbbbbb', 'id-cccccccc', 'id-dddddddd']);
        assert.equal((await store.listSamples({ order: 'desc', limit: 1 }))[0].id, 'id-dddddddd');

        // learner bookkeeping
        await store.assignSamples([{ id: 'id-aaaaaaaa', assigned_task: 't1', split: 'heldout' }]);
        await store.markSamplesUsed(['id-aaaaaaaa', 'id-bbbbbbbb'], 4);
        assert.deepEqual((await store.listSamples({ assigned_task: 't1', split: 'heldout' })).map((x) => x.used_in_round), [4]);
        assert.equal(await store.countSamples({ unused: true }), 2);
        assert.equal(await store.countSamples({ split: 'none' }), 3);
        const st = await store.stats();
        assert.deepEqual([st.samples, st.labelled], [4, 2]);
      } finally {
        await store.close();
        cleanup();
      }
    });

    test('devices, tasks, versions, channels, events, blobs', async () => {
      const { store, cleanup } = backend.open();
      try {
        await store.addDevice({ id: 'd1', token_hash: 'h1', channel: 'stable' });
        await assert.rejects(store.addDevice({ id: 'd1', token_hash: 'h2', channel: 'stable' }), /already exists/);
        assert.equal((await store.deviceByTokenHash('h1'))!.id, 'd1');
        assert.equal(await store.deviceByTokenHash('h9'), null);
        assert.ok(await store.setDeviceChannel('d1', 'canary'));
        assert.ok(!(await store.setDeviceChannel('ghost', 'canary')));
        await store.saveReport('d1', { active_version: 2, trial: { version: 2, result: 'fail', reason: 'canary' } }, 5000);
        const d = (await store.getDevice('d1'))!;
        assert.deepEqual([d.channel, d.active_version, d.last_seen, d.last_report!.trial!.result], ['canary', 2, 5000, 'fail']);
        assert.ok(await store.revokeDevice('d1'));
        assert.ok((await store.getDevice('d1'))!.revoked_at! > 0);
        assert.equal((await store.listDevices({ channel: 'canary' })).length, 1);

        await store.putTask(task('b', { fallback: true }));
        await store.putTask(task('a', { metrics: { accuracy: 0.9 }, extra: { history: [1, 2] } }));
        await store.putTask(task('old', { retired: true }));
        assert.deepEqual((await store.listTasks()).map((t) => t.id), ['a', 'b']);
        assert.equal((await store.listTasks({ includeRetired: true })).length, 3);
        assert.deepEqual((await store.getTask('a'))!.extra, { history: [1, 2] });
        await store.putTask(task('a', { updated_round: 2 }));
        assert.equal((await store.getTask('a'))!.updated_round, 2);

        const model = randomBytes(5000);
        const put = await store.blobs.put(Readable.from([model.subarray(0, 100), model.subarray(100)]));
        assert.deepEqual(put, { sha256: sha(model), size: 5000 });
        await assert.rejects(store.blobs.put(Buffer.from('x'), 'b'.repeat(64)), /expected/);
        assert.equal(await store.blobs.size(sha(model)), 5000);
        const chunks: Buffer[] = [];
        for await (const c of await store.blobs.get(sha(model), { start: 10, end: 19 })) chunks.push(c as Buffer);
        assert.deepEqual(Buffer.concat(chunks), model.subarray(10, 20));

        assert.equal(await store.latestVersion(), null);
        const idx = Buffer.from('{"v":1}');
        await store.addVersion({ n: 1, created_at: 1, parent: null, channel: 'stable', tasks: 1, notes: { r: 1 } }, idx, 'sig1', [sha(model)]);
        await assert.rejects(store.addVersion({ n: 1, created_at: 2, parent: null, channel: 'stable', tasks: 1, notes: null }, Buffer.from('{}'), 's', []), /already exists/);
        assert.deepEqual(await store.readVersionIndex(1), { bytes: idx, sig: 'sig1' }, 'a refused duplicate leaves the stored index alone');
        assert.ok(await store.isPublishedBlob(sha(model)));
        assert.ok(!(await store.isPublishedBlob('c'.repeat(64))));
        await store.addVersion({ n: 2, created_at: 3, parent: 1, channel: null, tasks: 1, notes: null }, Buffer.from('{"v":2}'), 'sig2', []);
        assert.equal((await store.getChannel('stable'))!.version, 1, 'channel null: no channel moved');
        const ch = await store.setChannelVersion('stable', 2);
        assert.deepEqual([ch.version, ch.previous_version], [2, 1]);
        await assert.rejects(store.setChannelVersion('stable', 9), /does not exist/);
        const up = await store.upsertChannel('canary', { config: { abort_pct: 30 } });
        assert.deepEqual([up.version, up.config], [null, { abort_pct: 30 }]);
        await store.upsertChannel('canary', { state: { trial: 2 } });
        assert.deepEqual((await store.getChannel('canary'))!.config, { abort_pct: 30 }, 'fields left out keep their value');
        assert.deepEqual((await store.listVersions()).map((v) => [v.n, v.parent, v.index_sha]), [
          [1, null, sha(idx)],
          [2, 1, sha(Buffer.from('{"v":2}'))],
        ]);
        assert.equal((await store.latestVersion())!.n, 2);

        await store.logEvent('x', { a: 1 });
        await store.logEvent('y');
        assert.deepEqual((await store.listEvents({ kind: 'x' })).map((e) => e.detail), [{ a: 1 }]);
        assert.equal((await store.listEvents({ limit: 1 }))[0].kind, 'y');
        await store.setMeta('k', 'v');
        assert.equal(await store.getMeta('k'), 'v');
        assert.equal(await store.getMeta('none'), null);
      } finally {
        await store.close();
        cleanup();
      }
    });
  });
}
