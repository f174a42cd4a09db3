// Small-sample transfer and decision stability of the KB's learning round (bench:lifelong):
//   learning curve  a KB that knows some base sites gets n = 50, 100, 200, 500, 1000 labelled
//                   samples of a new site (each n on its own copy of the same KB) and trains one
//                   round: does the site win a model of its own (a significant gain over the
//                   fallback that serves it), and what accuracy serves the site's test set?
//   stability       the same data imported twice into fresh KBs, with other sample ids (as
//                   edges make them: time-based), trained the same rounds: the decisions
//                   (verdict, n, p, model sha256) must be identical.
// Rounds run through the KB store and runRound in-process, like the main loop's `kb train`.
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initKb } from '../../src/kb/init.js';
import { openKbStore } from '../../src/kb/open.js';
import { importSamples } from '../../src/kb/samples-io.js';
import type { KbStore } from '../../src/kb/store.js';
import { loadTaskModel, predictLabels } from '../../src/learn/models.js';
import type { RoundReport } from '../../src/learn/round.js';
import { DIM, LABELS, type Samples, type TaskData } from './mnist.js';

export type Round = (store: KbStore) => Promise<RoundReport>;

export interface CurveStep {
  n: number;
  /** accept: the site's own model won; keep: the fallback still serves it */
  verdict: string | null;
  own_model: boolean;
  /** held-out samples of the decision, its p-value and the two held-out accuracies */
  heldout: number;
  p: number | null;
  heldout_fallback: number | null;
  heldout_candidate: number | null;
  /** test accuracy of what serves the site after the round, and of the fallback alone */
  test_serving: number;
  test_fallback: number;
  parent: string | null;
}

export interface LearningCurve {
  site: string;
  base_sites: string[];
  steps: CurveStep[];
  /** the smallest n at which the site won its own model (null: none of them) */
  samples_to_win: number | null;
}

export interface Stability {
  identical: boolean;
  /** decisions compared (task decisions over all rounds) */
  decisions: number;
  /** the first difference, when there is one */
  diff: string | null;
}

type Decision = [string, string, string | null, number | null, number | null, string | null];
const decisions = (r: RoundReport): Decision[] => r.tasks.map((t) => [t.task, t.kind, t.verdict ?? null, t.test?.n ?? null, t.test?.p ?? null, t.model_sha]);

function jsonl(file: string, set: Samples, n: number, site: string, idPrefix: string): void {
  const lines: string[] = [];
  for (let i = 0; i < Math.min(n, set.n); i++) {
    lines.push(JSON.stringify({ id: `${idPrefix}-${i}`, x: Array.from(set.x.subarray(i * DIM, (i + 1) * DIM), (v) => Math.round(v * 1e6) / 1e6), label: LABELS[set.y[i]], attrs: { site } }));
  }
  writeFileSync(file, lines.join('\n') + '\n');
}

async function importSite(store: KbStore, dir: string, t: TaskData, n: number, idPrefix: string): Promise<void> {
  const f = join(dir, `${idPrefix}.jsonl`);
  jsonl(f, t.train, n, t.site, idPrefix);
  await importSamples(store, f, { strict: true, onBad: (l, r) => { throw new Error(`learning curve import line ${l}: ${r}`); } });
}

async function testAccuracy(store: KbStore, taskId: string, test: Samples): Promise<number> {
  const t = (await store.listTasks()).find((x) => x.id === taskId);
  if (!t) throw new Error(`learning curve: no task ${taskId}`);
  const rows = Array.from({ length: test.n }, (_, i) => test.x.subarray(i * DIM, (i + 1) * DIM));
  const pred = (await predictLabels(await loadTaskModel(store, t), rows)).labels;
  let ok = 0;
  for (let i = 0; i < test.n; i++) if (pred[i] === LABELS[test.y[i]]) ok++;
  return ok / test.n;
}

/** A fresh KB with the base sites imported (ids with `tag`) and one round trained. */
async function baseKb(dir: string, base: TaskData[], round: Round, tag: string): Promise<RoundReport> {
  mkdirSync(dir, { recursive: true });
  await initKb(dir);
  const store = await openKbStore(dir);
  try {
    for (const t of base) await importSite(store, dir, t, t.train.n, `${tag}-${t.site}`);
    return await round(store);
  } finally {
    await store.close();
  }
}

/** One step: a copy of the base KB gets n samples of the new site and trains one round. */
async function step(baseDir: string, dir: string, site: TaskData, n: number, round: Round, tag: string): Promise<{ report: RoundReport; step: CurveStep }> {
  cpSync(baseDir, dir, { recursive: true });
  const store = await openKbStore(dir);
  try {
    await importSite(store, dir, site, n, `${tag}-${site.site}-n${n}`);
    const report = await round(store);
    const o = report.tasks.find((t) => t.task === site.site);
    const fb = (await store.listTasks()).find((t) => t.fallback)!;
    const serving = o ? site.site : fb.id;
    return {
      report,
      step: {
        n,
        verdict: o?.verdict ?? null,
        own_model: o?.verdict === 'accept',
        heldout: o?.samples.heldout ?? 0,
        p: o?.test?.p ?? null,
        heldout_fallback: o?.test?.incumbent ?? null,
        heldout_candidate: o?.test?.candidate ?? null,
        test_serving: await testAccuracy(store, serving, site.test),
        test_fallback: await testAccuracy(store, fb.id, site.test),
        parent: o?.parent ?? null,
      },
    };
  } finally {
    await store.close();
  }
}

export async function learningCurveAndStability(o: { base: TaskData[]; site: TaskData; sizes: number[]; work: string; round: Round; stabilityN: number; log: (m: string) => void }): Promise<{ curve: LearningCurve; stability: Stability }> {
  const baseDir = join(o.work, 'curve-base');
  const baseReport = await baseKb(baseDir, o.base, o.round, 'a');
  const steps: CurveStep[] = [];
  let stabilityRef: RoundReport | null = null;
  for (const n of o.sizes) {
    const r = await step(baseDir, join(o.work, `curve-n${n}`), o.site, n, o.round, 'a');
    steps.push(r.step);
    if (n === o.stabilityN) stabilityRef = r.report;
    o.log(`learning curve ${o.site.site} n=${n}: ${r.step.verdict} (p ${r.step.p}), test ${r.step.test_serving.toFixed(4)} (fallback ${r.step.test_fallback.toFixed(4)})`);
  }
  // the same data again with other ids: base round + the stabilityN step
  const againDir = join(o.work, 'stability-base');
  const baseAgain = await baseKb(againDir, o.base, o.round, 'b');
  const stepAgain = await step(againDir, join(o.work, 'stability-step'), o.site, o.stabilityN, o.round, 'b');
  const a = [...decisions(baseReport), ...(stabilityRef ? decisions(stabilityRef) : [])];
  const b = [...decisions(baseAgain), ...decisions(stepAgain.report)];
  const i = a.findIndex((d, k) => JSON.stringify(d) !== JSON.stringify(b[k]));
  const diff = a.length !== b.length ? `${a.length} vs ${b.length} decisions` : i >= 0 ? `${JSON.stringify(a[i])} vs ${JSON.stringify(b[i])}` : null;
  const win = steps.find((s) => s.own_model);
  return {
    curve: { site: o.site.site, base_sites: o.base.map((t) => t.site), steps, samples_to_win: win ? win.n : null },
    stability: { identical: diff === null, decisions: a.length, diff },
  };
}

export function formatCurve(c: LearningCurve, s: Stability): string {
  let out = `learning curve: new site ${c.site} on a KB that knows ${c.base_sites.join(', ')} (one round per n, each on a copy of the same KB)\n`;
  out += `     n  decision  held-out fallback -> candidate (p)   test acc serving  fallback  parent\n`;
  for (const x of c.steps) {
    const ho = x.p === null ? '-' : `${x.heldout_fallback?.toFixed(3)} -> ${x.heldout_candidate?.toFixed(3)} (${x.p})`;
    out += `${String(x.n).padStart(6)}  ${(x.own_model ? 'own model' : (x.verdict ?? '-')).padEnd(9)}  n=${String(x.heldout).padEnd(4)} ${ho.padEnd(28)}  ${x.test_serving.toFixed(4).padStart(16)}  ${x.test_fallback.toFixed(4)}  ${x.parent ?? '-'}\n`;
  }
  out += `samples the new site needs before its own model wins: ${c.samples_to_win ?? 'more than ' + c.steps[c.steps.length - 1]?.n}\n`;
  out += `decision stability (same data, other sample ids, ${s.decisions} decisions): ${s.identical ? 'identical' : `DIFFERENT: ${s.diff}`}\n`;
  return out;
}
