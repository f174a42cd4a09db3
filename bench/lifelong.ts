// npm run bench:lifelong -- --scenario rotated-mnist|permuted-mnist [--tasks 20] [--seed S]
//
// The GEM protocol (Lopez-Paz & Ranzato 2017) adapted to edge sites: task t = site t, whose
// digits are rotated by t*180/T degrees (or permuted by a fixed seeded permutation). sedna-ll's
// loop runs in-process through the modules the CLI uses (bench/lib/sedna-loop.ts): the edge
// infers each round's stream (new site + traffic of known sites), uploads hard/unseen samples,
// an annotator labels them, the KB trains one round (LEARN's runRound: task definition,
// transfer, eval gate, calibration, signed publish), the edge pulls and activates. The
// baselines use the same trainer (src/learn/trainer.ts, same architecture and optimiser) on the
// same labelled data the KB received each round. Output: bench/out/lifelong-<scenario>.json
// (every number + the matrices) and .html (charts).
//
// Defaults follow GEM (1 000 training digits per site) and run in ~5-6 min on 2 cores; the
// accuracy aims (rotated ACC >= 0.95, permuted >= 0.93) need more data per site:
//   npm run bench:lifelong -- --scenario rotated-mnist --train-per-task 3000 --traffic-per-site 1000
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, availableParallelism, cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runRound, DEFAULT_ROUND } from '../src/learn/round.js';
import { randomInitRow, runBaselinesParallel, type BaselineRun } from './lib/baselines.js';
import { acc, accSeenPerRound, auroc, bwt, forgetting, fwt, samplesTransferRatio, tprAtFpr } from './lib/metrics.js';
import { makeScenario, SCENARIOS, type ScenarioName } from './lib/mnist.js';
import { barChartSvg, colour, esc, heatmapSvg, htmlPage, lineChartSvg, tableHtml, type ReportSection, type Series } from './lib/report.js';
import { runSednaLoop, type SednaLoopResult } from './lib/sedna-loop.js';
import { BENCH_UNSEEN, buildNewDomains, formatNewDomain } from './lib/new-domain.js';
import { DEFAULT_DENSE, denseTrainer } from './lib/trainer.js';
import { formatCurve, learningCurveAndStability } from './lib/learning-curve.js';
import { redownloads, servedAfterRound, siteForgetting, type Served } from './lib/site-forgetting.js';

const USAGE = `usage: npm run bench:lifelong -- --scenario rotated-mnist|permuted-mnist [--tasks 20] [--seed 1]
  [--train-per-task 1000] [--test-per-task 1000] [--traffic-per-site N (default: train-per-task)]
  [--replay-buffer 5120] [--detection-per-site 200] [--out bench/out] [--no-baselines] [--no-curve] [--keep-work]
  [--arch mlp|cnn] (cnn: the KB trains the built-in CNN on [1,28,28]; rotated-mnist only)`;

function die(msg: string): never {
  process.stderr.write(`bench:lifelong: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

function int(name: string, v: string | undefined, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) die(`--${name} "${v}": expected an integer >= ${min}`);
  return n;
}

const { values: a } = (() => {
  try {
    return parseArgs({
      options: {
        scenario: { type: 'string', default: 'rotated-mnist' },
        arch: { type: 'string', default: 'mlp' },
        tasks: { type: 'string' },
        seed: { type: 'string' },
        'train-per-task': { type: 'string' },
        'test-per-task': { type: 'string' },
        'traffic-per-site': { type: 'string' },
        'replay-buffer': { type: 'string' },
        'detection-per-site': { type: 'string' },
        out: { type: 'string' },
        'no-baselines': { type: 'boolean' },
        'no-curve': { type: 'boolean' },
        'keep-work': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
  } catch (e) {
    die((e as Error).message);
  }
})();
if (a.help) {
  process.stdout.write(USAGE + '\n');
  process.exit(0);
}
const scenarioName = a.scenario as ScenarioName;
if (!SCENARIOS.includes(scenarioName)) die(`--scenario "${a.scenario}": expected one of ${SCENARIOS.join(', ')}`);
const arch = a.arch as 'mlp' | 'cnn';
if (arch !== 'mlp' && arch !== 'cnn') die(`--arch "${a.arch}": expected mlp or cnn`);
// a fixed pixel permutation scatters every neighbourhood a 3x3 convolution looks at: on permuted
// digits a CNN has nothing spatial to exploit, so that scenario stays on the dense path
if (arch === 'cnn' && scenarioName === 'permuted-mnist') die('--arch cnn: permuted-mnist stays on the dense path (a pixel permutation destroys the spatial neighbourhoods convolutions exploit)');
const T = int('tasks', a.tasks, 20, 2);
const seed = int('seed', a.seed, 1, 0);
const trainPerTask = int('train-per-task', a['train-per-task'], 1000, 10);
const testPerTask = int('test-per-task', a['test-per-task'], 1000, 10);
const trafficPerSite = int('traffic-per-site', a['traffic-per-site'], trainPerTask, 0);
const replayBuffer = int('replay-buffer', a['replay-buffer'], 5120, 1);
const detectionPerSite = int('detection-per-site', a['detection-per-site'], 200, 10);
const outDir = resolve(a.out ?? join(import.meta.dirname, 'out'));
if (trainPerTask + T * trafficPerSite > 60000) die(`--train-per-task + tasks x --traffic-per-site exceeds the 60000 MNIST training digits`);

const log = (m: string) => process.stderr.write(`[${((performance.now() - T0) / 1000).toFixed(1)}s] ${m}\n`);
const T0 = performance.now();

const scenario = makeScenario({ scenario: scenarioName, tasks: T, trainPerTask, testPerTask, seed });
log(`${scenarioName}: ${T} tasks, ${trainPerTask} train / ${testPerTask} test per task, traffic ${trafficPerSite} per known site per round`);

const work = mkdtempSync(join(tmpdir(), 'sedna-ll-lifelong-'));
// Ctrl-C: the KB server and the edge live in this process; only the work dir needs removing
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (!a['keep-work']) rmSync(work, { recursive: true, force: true });
    process.stderr.write(`bench:lifelong: ${sig}, stopped\n`);
    process.exit(130);
  });
}
let sedna: SednaLoopResult;
// per round: how the KB serves each site, and the model sha256s its tasks point at
const served: Served[] = [];
const modelShas: string[][] = [];
let curve: Awaited<ReturnType<typeof learningCurveAndStability>> | null = null;
const denseCfg = { arch: DEFAULT_DENSE.arch, hidden: DEFAULT_DENSE.hidden!, epochs: DEFAULT_DENSE.epochs!, patience: DEFAULT_DENSE.patience, batchSize: DEFAULT_DENSE.batchSize, lr: DEFAULT_DENSE.lr, l2: DEFAULT_DENSE.l2, optimizer: DEFAULT_DENSE.optimizer };
// the CNN: the KB's defaults (conv 8, 16 + dense head 64), its own learning rate default
const trainCfg = arch === 'cnn' ? { ...denseCfg, arch: 'cnn' as const, hidden: [64], filters: [8, 16], inputShape: [1, 28, 28] as [number, number, number], lr: undefined } : denseCfg;
try {
  const t0 = performance.now();
  sedna = await runSednaLoop({
    scenario,
    trafficPerSite,
    work,
    seed,
    detection: true,
    detectionPerSite,
    newDomains: buildNewDomains(250, seed),
    log,
    kbTrain: async ({ store, seed: s }) => {
      const r = await runRound(store, { ...trainCfg, seed: s, unseen: BENCH_UNSEEN });
      const sv = await servedAfterRound(store);
      served.push(sv.served);
      modelShas.push(sv.shas);
      return {
        version: r.version,
        summary: r.tasks.map((x) => ({ task: x.task, kind: x.kind, accepted: x.accepted, verdict: x.verdict ?? null, p: x.test?.p ?? null, pinned: x.pinned?.from ?? null, parent: x.parent, before: x.before?.accuracy ?? null, after: x.after?.accuracy ?? null, train: x.samples.train, heldout: x.samples.heldout, epochs: x.epochs, ms: x.trainMs })),
      };
    },
  });
  log(`sedna-ll loop done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (!a['no-curve'] && T >= 3) {
    // a KB that knows the first two sites gets n samples of the middle site (far from both)
    const sizes = [50, 100, 200, 500, 1000].filter((n) => n <= trainPerTask);
    curve = await learningCurveAndStability({ base: scenario.tasks.slice(0, 2), site: scenario.tasks[Math.max(2, Math.floor(T / 2))], sizes, stabilityN: sizes.includes(200) ? 200 : sizes[0], work, log, round: (store) => runRound(store, { ...trainCfg, seed, unseen: BENCH_UNSEEN }) });
  }
} finally {
  if (!a['keep-work']) rmSync(work, { recursive: true, force: true });
  else log(`work dir kept: ${work}`);
}

// ---- baselines: same trainer, same labelled data per round ----
const trainer = denseTrainer(DEFAULT_DENSE);
const tests = scenario.tasks.map((t) => t.test);
const b = randomInitRow(trainer, tests, seed);
const baselines: BaselineRun[] = [];
if (!a['no-baselines']) {
  baselines.push(...(await runBaselinesParallel({ rounds: sedna.roundData, tests, seed, replayBuffer, trainer: DEFAULT_DENSE }, ['naive', 'replay', 'joint'], log)));
}

// ---- metrics ----
interface MethodSummary {
  method: string;
  acc: number;
  bwt: number | null;
  fwt: number | null;
  forgetting: number | null;
  acc_seen_per_round: number[] | null;
  train_s: number;
  R: number[][];
  notes: string;
}
const summarise = (method: string, R: number[][], trainMs: number, notes: string): MethodSummary =>
  R.length === T
    ? { method, acc: acc(R), bwt: bwt(R), fwt: fwt(R, b), forgetting: forgetting(R), acc_seen_per_round: accSeenPerRound(R), train_s: trainMs / 1000, R, notes }
    : { method, acc: R[R.length - 1].reduce((x, y) => x + y, 0) / T, bwt: null, fwt: null, forgetting: null, acc_seen_per_round: null, train_s: trainMs / 1000, R, notes };
const methods: MethodSummary[] = [
  summarise(
    'sedna-ll',
    sedna.R,
    sedna.rounds.reduce((x, r) => x + r.train_ms, 0),
    'per-site task models via the real edge pipeline and KB rounds (runRound: attribute task definition, transfer from the best-scoring model, eval gate, calibration, signed publish, sync pull)',
  ),
  ...baselines.map((r) => summarise(r.name, r.R, r.trainMs.reduce((x, y) => x + y, 0), r.notes)),
];
const transfer = { uploaded: sedna.totals.uploaded, inferred: sedna.totals.inferred, samples_transfer_ratio: samplesTransferRatio(sedna.totals.uploaded, sedna.totals.inferred) };

// unseen-site detection: per round, then the mean over rounds
// detectors measured in every round (distance needs calibrated centroids, absent while only the global task exists)
const detectors = [...new Set(sedna.detection.flatMap((d) => Object.keys(d.scores)))];
const detection = {
  note: 'site t (about to be learned) vs the sites the edge already knows, test samples WITHOUT the site attribute (with it, the attr method flags every new-site sample: TPR 1, FPR 0). Scores: edge = the index\'s configured unseen methods as one continuous score (per method a ratio > 1 exactly when it fires: confidence t/p1, entropy H/t, distance d/radius; combined by max for "any", min for "all"); max_softmax = 1 - max p of the allocated model (Hendrycks & Gimpel 2017); entropy = normalised entropy; distance = distance to the allocated task centroid / its radius.',
  per_round: sedna.detection.map((d) => ({
    round: d.round,
    site: d.site,
    positives: d.scores.max_softmax?.pos.length ?? 0,
    negatives: d.scores.max_softmax?.neg.length ?? 0,
    edge_flag: d.edge_flag,
    unseen_config: d.unseen_config,
    allocation: d.allocation_method,
    ...Object.fromEntries(
      detectors.map((k) => {
        const s = d.scores[k];
        if (!s) return [k, null];
        const r = tprAtFpr(s.pos, s.neg, 0.05);
        return [k, { auroc: auroc(s.pos, s.neg), tpr_at_5_fpr: r.tpr }];
      }),
    ),
  })),
  mean: {} as Record<string, { auroc: number; tpr_at_5_fpr: number; rounds: number }>,
  edge_flag_mean: { tpr: 0, fpr: 0 },
};
for (const k of detectors) {
  const rows = detection.per_round.map((r) => (r as unknown as Record<string, { auroc: number; tpr_at_5_fpr: number } | null>)[k]).filter((r) => r !== null);
  detection.mean[k] = { auroc: avg(rows.map((r) => r.auroc)), tpr_at_5_fpr: avg(rows.map((r) => r.tpr_at_5_fpr)), rounds: rows.length };
}
detection.edge_flag_mean = { tpr: avg(detection.per_round.map((r) => r.edge_flag.tpr)), fpr: avg(detection.per_round.map((r) => r.edge_flag.fpr)) };

function avg(xs: number[]): number {
  return xs.length ? xs.reduce((x, y) => x + y, 0) / xs.length : NaN;
}

const aims =
  scenarioName === 'rotated-mnist'
    ? { acc: 0.95, bwt: -0.005, samples_transfer_ratio: 0.35 as number | null }
    : { acc: 0.93, bwt: -0.005, samples_transfer_ratio: null as number | null };
const s0 = methods[0];
const perSite = siteForgetting(sedna.R, scenario.tasks.map((t) => t.site), served);
const downloads = redownloads(modelShas, sedna.rounds.map((r) => r.models_downloaded));
const aimCheck: Record<string, { aim: number; got: number | null; met: boolean; op?: string }> = {
  acc: { aim: aims.acc, got: s0.acc, met: s0.acc >= aims.acc },
  bwt: { aim: aims.bwt, got: s0.bwt, met: (s0.bwt ?? -1) >= aims.bwt },
  ...(aims.samples_transfer_ratio !== null ? { samples_transfer_ratio: { aim: aims.samples_transfer_ratio, got: transfer.samples_transfer_ratio, met: transfer.samples_transfer_ratio <= aims.samples_transfer_ratio, op: '<=' } } : {}),
  bwt_every_site: { aim: perSite.aim, got: perSite.min_bwt, met: perSite.met },
  model_redownloads: { aim: 0, got: downloads.redownloaded, met: downloads.met, op: '<=' },
  ...(curve ? { identical_decisions_on_rerun: { aim: 1, got: curve.stability.identical ? 1 : 0, met: curve.stability.identical } } : {}),
};
const elapsed = (performance.now() - T0) / 1000;
// training time of one site model: the first model of each new site (median over sites)
const siteModelMs = sedna.rounds.flatMap((r) => ((r.kb_summary as { kind: string; task: string; ms: number | null }[] | undefined) ?? []).filter((x) => x.kind === 'new' && x.task !== 'global' && x.ms !== null).map((x) => x.ms!));
const siteModelMedianS = siteModelMs.length ? [...siteModelMs].sort((x, y) => x - y)[Math.floor(siteModelMs.length / 2)] / 1000 : null;

const result = {
  benchmark: 'sedna-ll lifelong learning (GEM protocol over edge sites)',
  scenario: scenarioName,
  created_at: new Date().toISOString(),
  machine: { cpus: availableParallelism(), cpu_model: cpus()[0]?.model ?? 'unknown', node: process.version },
  settings: {
    tasks: T,
    seed,
    train_per_task: trainPerTask,
    test_per_task: testPerTask,
    traffic_per_known_site_per_round: trafficPerSite,
    replay_buffer: replayBuffer,
    detection_per_site: detectionPerSite,
    transforms: scenario.tasks.map((t) => ({ site: t.site, transform: t.transform })),
    trainer: trainer.settings,
    kb_round: { ...DEFAULT_ROUND, ...trainCfg, seed: `${seed}+round` },
    protocol:
      'Round 0: the KB imports site 0\'s labelled training set and trains (kb samples import + kb train); the edge pulls. Round t>=1: the edge infers site t\'s training set (all new) mixed with traffic-per-site fresh digits of every known site, shuffled; what the edge logs is uploaded (sync), labelled with the dataset labels (kb label import), the KB trains one round, the edge pulls. R[i][j] = accuracy of the edge\'s active version on site j\'s test set (with its site attribute) after round i; unknown sites are served by the fallback (global) task.',
    b: 'GEM b_j: accuracy of the trainer\'s randomly initialised model (same architecture, seed) on task j',
    metrics: 'ACC = mean_j R[T-1][j]; BWT = mean_{j<T-1} R[T-1][j] - R[j][j]; FWT = mean_{j>0} R[j-1][j] - b_j (GEM, accuracies as fractions); forgetting = mean_{j<T-1} max_{l<T-1} R[l][j] - R[T-1][j] (Chaudhry et al. 2018); samples_transfer_ratio = uploaded / inferred (Ianvs)',
    baselines_data: 'each baseline trains, per round, on exactly the labelled samples the KB received in that round (round 0: site 0\'s training set), with the same trainer and settings',
  },
  b,
  methods,
  samples_transfer: transfer,
  rounds: sedna.rounds,
  detection,
  new_domain: sedna.new_domain,
  aims: aimCheck,
  site_forgetting: perSite,
  model_downloads: downloads,
  learning_curve: curve?.curve ?? null,
  decision_stability: curve?.stability ?? null,
  arch,
  site_model_train_s_median: siteModelMedianS,
  elapsed_s: elapsed,
};

const f = (v: number | null, d = 4) => (v === null || !Number.isFinite(v) ? '–' : v.toFixed(d));

mkdirSync(outDir, { recursive: true });
const suffix = arch === 'cnn' ? '-cnn' : '';
const jsonPath = join(outDir, `lifelong-${scenarioName}${suffix}.json`);
const htmlPath = join(outDir, `lifelong-${scenarioName}${suffix}.html`);
writeFileSync(jsonPath, JSON.stringify(result, null, 1) + '\n');
writeFileSync(htmlPath, renderHtml());

// ---- console summary ----
const rows = [['method', 'ACC', 'BWT', 'FWT', 'forgetting', 'train s'], ...methods.map((m) => [m.method, f(m.acc), f(m.bwt), f(m.fwt), f(m.forgetting), m.train_s.toFixed(1)])];
const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
process.stdout.write(`\n${scenarioName}, ${T} sites, seed ${seed}, ${trainPerTask} train/site, KB arch ${arch}${arch === 'cnn' ? ' (baselines: the dense trainer)' : ''}\n`);
for (const r of rows) process.stdout.write(r.map((c, i) => (i ? c.padStart(w[i]) : c.padEnd(w[i]))).join('  ') + '\n');
process.stdout.write(`samples_transfer_ratio ${f(transfer.samples_transfer_ratio)} (${transfer.uploaded} uploaded / ${transfer.inferred} inferred)\n`);
for (const k of detectors) process.stdout.write(`unseen-site detection ${k.padEnd(12)} AUROC ${f(detection.mean[k].auroc, 3)}  TPR@5%FPR ${f(detection.mean[k].tpr_at_5_fpr, 3)}\n`);
if (detectors.length) process.stdout.write(`edge unseen flag (no attribute): TPR ${f(detection.edge_flag_mean.tpr, 3)} at FPR ${f(detection.edge_flag_mean.fpr, 3)}\n`);
if (sedna.new_domain) process.stdout.write(formatNewDomain(sedna.new_domain));
process.stdout.write(`per-site BWT: min ${f(perSite.min_bwt)}, fallback-served sites ${perSite.fallback_served_sites} (min BWT ${f(perSite.min_bwt_fallback_served)}), below ${perSite.aim}: ${perSite.below_aim.join(', ') || 'none'}\n`);
process.stdout.write(`models downloaded by the edge ${downloads.downloaded}, new models published ${downloads.new_models}, re-downloads ${downloads.redownloaded}\n`);
if (curve) process.stdout.write(formatCurve(curve.curve, curve.stability));
for (const [k, v] of Object.entries(aimCheck)) process.stdout.write(`aim ${k}: ${v.op ?? '>='} ${v.aim}: ${f(v.got)} ${v.met ? 'MET' : 'NOT MET'}\n`);
process.stdout.write(`training time per site model (${arch}, median over new sites): ${siteModelMedianS === null ? '–' : siteModelMedianS.toFixed(1) + ' s'}\n`);
process.stdout.write(`${jsonPath}\n${htmlPath}\nelapsed ${elapsed.toFixed(1)} s\n`);

function renderHtml(): string {
  const taskLabels = scenario.tasks.map((t) => (scenarioName === 'rotated-mnist' ? `${Math.round(t.angle ?? 0)}°` : `p${t.index}`));
  const roundLabels = scenario.tasks.map((_, i) => String(i));
  const sections: ReportSection[] = [];
  sections.push({
    heading: 'Summary',
    html:
      tableHtml(
        ['method', 'ACC', 'BWT', 'FWT', 'forgetting', 'train time (s)', 'what it is'],
        methods.map((m) => [m.method, m.acc, m.bwt, m.fwt, m.forgetting, Number(m.train_s.toFixed(1)), m.notes]),
        4,
      ) +
      tableHtml(
        ['aim', 'target', 'measured', 'met'],
        Object.entries(aimCheck).map(([k, v]) => [k, `${v.op ?? '>='} ${v.aim}`, v.got, v.met ? 'yes' : 'no']),
        4,
      ) +
      `<p>samples_transfer_ratio = ${transfer.uploaded} uploaded / ${transfer.inferred} inferred = <b>${f(transfer.samples_transfer_ratio)}</b>. Elapsed ${elapsed.toFixed(0)} s on ${availableParallelism()} cores.</p>`,
    note: result.settings.metrics,
  });
  const seenSeries: Series[] = methods.filter((m) => m.acc_seen_per_round).map((m) => ({ name: m.method, values: m.acc_seen_per_round! }));
  for (const m of methods.filter((x) => !x.acc_seen_per_round)) seenSeries.push({ name: `${m.method} (final)`, values: roundLabels.map(() => m.acc), dashed: true });
  sections.push({
    heading: 'Average accuracy over the sites seen so far, per round',
    html: lineChartSvg(seenSeries, { title: 'mean_{j<=i} R[i][j]', xLabels: roundLabels, xAxis: 'round (site added)', yAxis: 'accuracy', yMin: 0, yMax: 1 }),
  });
  for (const m of methods.filter((x) => x.R.length === T)) {
    sections.push({
      heading: `Accuracy matrix R: ${m.method}`,
      html:
        heatmapSvg(m.R, {
          title: `R[i][j]: accuracy on site j after round i (${m.method})`,
          rowLabels: roundLabels,
          colLabels: taskLabels,
          colAxis: scenarioName === 'rotated-mnist' ? 'site (rotation)' : 'site (permutation)',
          marked: (i, j) => i < j,
          markedLabel: 'before the site was learned',
          colColours: taskLabels.map((_, j) => colour(j)),
        }) +
        lineChartSvg(
          scenario.tasks.map((_, j) => ({ name: taskLabels[j], colour: colour(j), dashedBefore: j, values: m.R.map((row) => row[j]) })),
          { title: `accuracy of each site over rounds (${m.method})`, xLabels: roundLabels, xAxis: 'round', yAxis: 'accuracy', dashedLabel: 'dashed, hollow: before the site was learned' },
        ),
    });
  }
  sections.push({
    heading: 'Uploads per round (edge -> KB)',
    html: barChartSvg(
      [
        { name: 'new site (unseen)', values: sedna.rounds.map((r) => r.uploaded_new_site) },
        { name: 'known sites (hard/unseen)', values: sedna.rounds.map((r) => r.uploaded_known_sites) },
      ],
      { title: 'samples uploaded per round', xLabels: roundLabels, xAxis: 'round', yAxis: 'samples' },
    ) +
      tableHtml(
        ['round', 'site', 'inferred', 'uploaded', 'new site', 'known sites', 'unseen', 'hard', 'published', 'active', 'tasks', 'train s'],
        sedna.rounds.map((r) => [r.round, r.site, r.inferred, r.uploaded, r.uploaded_new_site, r.uploaded_known_sites, r.uploaded_unseen, r.uploaded_hard, r.published === null ? '–' : `v${r.published}`, r.active ?? '–', r.tasks.length, Number((r.train_ms / 1000).toFixed(1))]),
      ),
  });
  if (detectors.length) {
    sections.push({
      heading: 'Unseen-site detection when a new site arrives',
      note: detection.note,
      html:
        tableHtml(['detector', 'mean AUROC', 'mean TPR @ 5% FPR', 'rounds'], detectors.map((k) => [k, detection.mean[k].auroc, detection.mean[k].tpr_at_5_fpr, detection.mean[k].rounds]), 3) +
        `<p>The edge's binary unseen flag on the same samples: TPR ${f(detection.edge_flag_mean.tpr, 3)} at FPR ${f(detection.edge_flag_mean.fpr, 3)} (mean over rounds); unseen config ${esc(JSON.stringify(sedna.detection[0]?.unseen_config ?? {}))}.</p>` +
        lineChartSvg(
          detectors.map((k) => ({ name: k, values: [null, ...detection.per_round.map((r) => (r as unknown as Record<string, { auroc: number } | null>)[k]?.auroc ?? null)] })),
          { title: 'AUROC per round (new site vs known sites)', xLabels: roundLabels, xAxis: 'round', yAxis: 'AUROC', yMin: 0.4, yMax: 1 },
        ),
    });
  }
  sections.push({ heading: 'Settings', html: `<pre>${esc(JSON.stringify(result.settings, null, 2))}</pre>` });
  return htmlPage(`sedna-ll lifelong benchmark: ${scenarioName}, ${T} sites`, `Seed ${seed}; generated ${result.created_at}; reproduce with: npm run bench:lifelong -- --scenario ${scenarioName} --tasks ${T} --seed ${seed}`, sections);
}
