// `npm run fuzz`: the decoder fuzz classes of test/fuzz/decoders.ts with many more cases than
// `npm test` (nightly). Prints one row per class (cases, crashes, hangs, samples lost) and the
// first counterexample of a failing class; exits 1 when any class has a crash, hang or loss.
//   FUZZ_RUNS=N (default 2000; bundle tar and push body: N/10)   FUZZ_SEED=S (default: time)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FUZZ_CLASSES, type ClassResult } from '../test/fuzz/decoders.js';

const runs = Number(process.env.FUZZ_RUNS ?? 2000);
const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
// these two write a file or make an HTTP request per case: a tenth of the cases
const SLOW = new Set(['bundle tar', 'push body']);

const rows: ClassResult[] = [];
for (const c of FUZZ_CLASSES) {
  const tmp = mkdtempSync(join(tmpdir(), 'sedna-ll-fuzz-'));
  const t0 = performance.now();
  try {
    const r = await c.run({ numRuns: SLOW.has(c.name) ? Math.max(1, Math.round(runs / 10)) : runs, seed, tmp, caseTimeoutMs: 30_000 });
    rows.push(r);
    process.stdout.write(`${r.name.padEnd(12)} cases ${String(r.cases).padStart(6)}  crashes ${r.crashes}  hangs ${r.hangs}  lost ${r.lost}  (${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
    if (r.example) process.stdout.write(`  ${r.example}\n`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
const total = rows.reduce((a, r) => ({ cases: a.cases + r.cases, bad: a.bad + r.crashes + r.hangs + r.lost }), { cases: 0, bad: 0 });
process.stdout.write(`seed ${seed}: ${total.cases} cases, ${total.bad === 0 ? 'no crash, hang or lost sample' : `${total.bad} failing`}\n`);
process.exitCode = total.bad === 0 ? 0 : 1;
