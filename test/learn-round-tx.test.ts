// What a learning round keeps in the KB commits with the round (KbStore.applyRound): a round
// that fails after it resolved its settings (here: a --trainer-cmd that exits 3) leaves no
// trace of them; a round that applies keeps them for the next. Both backends, real stores.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { runRound } from '../src/learn/round.js';
import type { KbStore, NewSample } from '../src/kb/store.js';
import { KB_BACKENDS, stopBackends } from './helpers/kb-backends.js';
import { siteBlobs } from './helpers/learn-data.js';
import { kbSample } from './helpers/kb-sample.js';

after(stopBackends);

/** n labelled f32 samples of site A (4 classes, 8 dims), imported (no device) */
async function importSite(store: KbStore, n: number, seed: number): Promise<void> {
  const b = siteBlobs({ angle: 0, n, seed });
  const samples: NewSample[] = [];
  for (let i = 0; i < n; i++) {
    const payload = Buffer.from(b.X.buffer.slice(i * b.d * 4, (i + 1) * b.d * 4));
    samples.push(kbSample(`imp-${seed}-${i}`, payload, { task: null, attrs: { site: 'A' }, created_at: 1000 + i, label: `c${b.y[i]}`, source: 'import' }));
  }
  const r = await store.putSamples(null, samples);
  assert.equal(r.inserted, n);
}

for (const backend of KB_BACKENDS) {
  describe(`learning round transaction: ${backend.name}`, { skip: backend.skip }, () => {
    test('unseen settings asked of a round that fails are not kept; those of a round that applies are', { timeout: 240_000 }, async () => {
      const kb = await backend.open();
      try {
        const { store } = kb;
        await importSite(store, 60, 1);
        const asked = { methods: ['confidence' as const], combine: 'all' as const, fpr: 0.2 };
        await assert.rejects(runRound(store, { seed: 1, epochs: 3, trainerCmd: 'exit 3', unseen: asked }), /--trainer-cmd failed for task \S+ \(exit 3\)/);
        assert.equal(await store.getMeta('learn.unseen'), null, 'the failed round kept the settings it was asked for');
        assert.equal(await store.getMeta('learn.round'), null, 'the failed round applied nothing');
        assert.equal(await store.latestVersion(), null);

        const r = await runRound(store, { seed: 1, epochs: 3, unseen: asked });
        assert.equal(r.version, 1, r.message);
        assert.deepEqual(JSON.parse((await store.getMeta('learn.unseen'))!), { methods: ['confidence'], combine: 'all', confidence: 0.5, fpr: 0.2 });
        const index = JSON.parse((await store.readVersionIndex(1))!.bytes.toString('utf8'));
        assert.deepEqual([index.unseen.methods, index.unseen.combine, index.unseen.fpr], [['confidence'], 'all', 0.2]);
      } finally {
        await kb.cleanup();
      }
    });
  });
}
