// A metrics scrape of the KB does not count the samples table: the totals are read at most once
// per max age (CachedRead) and kept current by the server's own writes in between. Real SQLite
// KB store; its stats() is wrapped only to count the calls.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { CachedRead } from '../src/metrics/cached-read.js';
import { initKb } from '../src/kb/init.js';
import { KbMetrics } from '../src/kb/metrics.js';
import { openKbStore } from '../src/kb/open.js';
import { tempDir } from './helpers/cli.js';
import { kbSample } from './helpers/kb-sample.js';

test('CachedRead: one read per max age, concurrent callers share it, update() changes the cached value', async () => {
  let now = 0;
  let reads = 0;
  const c = new CachedRead(async () => ({ n: 10 * ++reads }), 1000, () => now);
  const [a, b] = await Promise.all([c.get(), c.get()]);
  assert.equal(reads, 1);
  assert.equal(a, b);
  c.update((v) => (v.n += 3));
  now = 999;
  assert.deepEqual(await c.get(), { n: 13 });
  assert.equal(reads, 1);
  now = 1000;
  assert.deepEqual(await c.get(), { n: 20 }, 're-read once the max age is reached');
  assert.equal(reads, 2);
});

const sample = (id: string, label: string | null = null) => kbSample(id, randomBytes(32), { pred_label: 'a', scores: [1], hard: true, label });

test('KB metrics: scrapes do not re-count the samples; pushed samples and labels still show at once', async (t) => {
  const tmp = tempDir('sedna-ll-metrics-');
  const dir = join(tmp.dir, 'kb');
  await initKb(dir);
  const store = await openKbStore(dir);
  t.after(async () => {
    await store.close();
    tmp.cleanup();
  });
  await store.putSamples(null, [sample('s-1'), sample('s-2', 'a')]);
  let statsCalls = 0;
  const stats = store.stats.bind(store);
  store.stats = () => (statsCalls++, stats());
  const m = new KbMetrics(store);
  const value = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
  let text = await m.render();
  assert.deepEqual([value(text, 'sedna_ll_knowledgebase_samples'), value(text, 'sedna_ll_knowledgebase_samples_labelled')], [2, 1]);
  // a push through the store, reported to the metrics as the server does
  const r = await store.putSamples('dev-1', [sample('s-3', 'b'), sample('s-4')]);
  m.samplesPushed(0.01, 2, r.inserted, r.labelled);
  const l = await store.setLabels([{ id: 's-1', label: 'c' }], 'admin', null);
  m.labelsPushed(null, l.stored.length, l.newly_labelled);
  for (let i = 0; i < 3; i++) text = await m.render();
  assert.deepEqual([value(text, 'sedna_ll_knowledgebase_samples'), value(text, 'sedna_ll_knowledgebase_samples_labelled')], [4, 3]);
  assert.equal(statsCalls, 1, 'four scrapes, one count of the samples table');
  const fresh = await stats();
  assert.deepEqual([fresh.samples, fresh.labelled], [4, 3], 'the gauges equal a fresh count');
});
