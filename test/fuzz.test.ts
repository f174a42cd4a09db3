// The fuzz suite in `npm test`: every decoder class with a fixed seed and a bounded case count
// (seconds each; `npm run fuzz` runs many more). A class passes with 0 crashes, 0 hangs and
// 0 samples lost; the figures of a longer run are in README "Reliability".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir } from './helpers/cli.js';
import { FUZZ_CLASSES } from './fuzz/decoders.js';

const RUNS: Record<string, number> = { jsonl: 60, csv: 60, npy: 80, png: 60, jpeg: 30, 'bundle tar': 25, 'index JSON': 80, 'push body': 40 };

for (const c of FUZZ_CLASSES) {
  test(`fuzz ${c.name}: documented outcome for every case (seed 16)`, async () => {
    const t = tempDir('sedna-ll-fuzz-');
    try {
      const r = await c.run({ numRuns: RUNS[c.name] ?? 40, seed: 16, tmp: t.dir, caseTimeoutMs: 20_000 });
      assert.deepEqual({ crashes: r.crashes, hangs: r.hangs, lost: r.lost }, { crashes: 0, hangs: 0, lost: 0 }, r.example);
      assert.equal(r.cases, RUNS[c.name] ?? 40);
    } finally {
      t.cleanup();
    }
  });
}
