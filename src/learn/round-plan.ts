// The plan of a learning round: everything a round decides, computed from a snapshot of the KB
// without writing to it (round-apply.ts writes the plan in one store transaction). Steps:
//   1. task definition (round-define.ts)
//   2. held-out split, sticky per sample (round-split.ts)
//   3. candidates: what to train, parents of new tasks (round-select.ts)
//   4. training: the built-in trainer on worker threads or --trainer-cmd (candidates.ts)
//   5. gate on each task's own held-out set (round-decide.ts, gate.ts)
//   6. task records with calibration (round-records.ts, task-record.ts)
import { createHash } from 'node:crypto';
import { DEFAULT_ALLOCATION, type Preprocessing, type TaskIndex } from '../format/index-manifest.js';
import type { TaskRecord } from '../kb/store.js';
import { trainCandidates, type Trained } from './candidates.js';
import { chooseScale, preprocess, sortLabels, type LoadedSample } from './dataset.js';
import { imageSize } from './image-samples.js';
import type { ScoringModel } from './models.js';
import { defineTasks, unusedAttrKeys } from './round-define.js';
import { gateCandidates, type GateResult } from './round-decide.js';
import { resolveRecords, type PlannedTask } from './round-records.js';
import { chooseParent, selectCandidates } from './round-select.js';
import { splitHeldout, type AssignRow } from './round-split.js';
import { contentRank, GLOBAL_TASK, type Candidate, type ClusterReport, type PlanCtx, type RoundOptions, type TaskOutcome } from './round-types.js';

/** The KB as a round reads it. */
export interface RoundInput {
  round: number;
  tasks: TaskRecord[];
  prevIndex: TaskIndex | null;
  samples: LoadedSample[];
  skipped: Record<string, number>;
  /** the KB-wide preprocessing fixed by the first round (null: not fixed yet) */
  preprocessing: Preprocessing | null;
  /** the preprocessing image samples were decoded with (image-samples.ts), if any */
  imagePreprocessing?: Preprocessing | null;
  nextCluster: number;
  loadModel: (t: TaskRecord) => Promise<ScoringModel>;
}

export interface RoundPlan {
  round: number;
  attrKeys: string[];
  /** null: no labelled samples, nothing to do */
  P: Preprocessing | null;
  /** the preprocessing is fixed by this round (write it) */
  fixPreprocessing: boolean;
  samples: { total: number; labelled: number; skipped: Record<string, number> };
  warnings: string[];
  clusters: ClusterReport | null;
  nextCluster: number;
  assign: AssignRow[];
  /** ids of samples a candidate trained or was gated on */
  used: string[];
  /** task ids trained this round */
  trained: string[];
  tasks: PlannedTask[];
  outcomes: TaskOutcome[];
  rejects: Record<string, unknown>[];
  changedModels: number;
  changedEntries: number;
  now: number;
}

export async function planRound(i: RoundInput, o: RoundOptions): Promise<RoundPlan> {
  const log = o.log ?? (() => {});
  const now = Date.now();
  const attrKeys = o.attrKeys ?? i.prevIndex?.allocation.attr_keys ?? DEFAULT_ALLOCATION.attr_keys;
  const { samples, dim, skipped } = commonDimension(i.samples, i.skipped);
  const labelled = samples.filter((s) => s.rec.label !== null);
  const plan: RoundPlan = {
    round: i.round,
    attrKeys,
    P: null,
    fixPreprocessing: false,
    samples: { total: i.samples.length, labelled: labelled.length, skipped },
    clusters: null,
    warnings: [],
    nextCluster: i.nextCluster,
    assign: [],
    used: [],
    trained: [],
    tasks: [],
    outcomes: [],
    rejects: [],
    changedModels: 0,
    changedEntries: 0,
    now,
  };
  if (labelled.length === 0) return plan;

  // the KB-wide input space: fixed at the first round (see chooseScale), from every sample the
  // KB holds, labelled or not (the input space must fit them all)
  const existingVec = i.tasks.find((t) => t.preprocessing.kind === 'vector');
  // image samples are decoded into their preprocessing's input space: when they are the
  // samples that train, that preprocessing is the KB's
  const imageP = i.imagePreprocessing && imageSize(i.imagePreprocessing) === dim ? i.imagePreprocessing : null;
  const P = i.preprocessing ?? imageP ?? (existingVec ? existingVec.preprocessing : chooseScale(samples.map((s) => s.raw)));
  plan.P = P;
  plan.fixPreprocessing = !i.preprocessing;
  const inputs = new Map<LoadedSample, Float32Array>();
  const input = (s: LoadedSample) => {
    let v = inputs.get(s);
    if (!v) inputs.set(s, (v = preprocess(s.raw, P)));
    return v;
  };

  // 1. task definition
  const def = defineTasks({ samples, tasks: i.tasks, attrKeys, P, dim, input, minSamples: o.minSamples, kMax: o.kMax, seed: o.seed, nextCluster: i.nextCluster });
  plan.clusters = def.clusters;
  plan.warnings = unusedAttrKeys(samples, attrKeys);
  plan.nextCluster = def.nextCluster;

  // 2. held-out split: a share of every site (also those the fallback serves), chosen by a
  // stable hash of the sample's content and site, so the same data gives the same split (and
  // decisions) whatever ids and arrival order the samples have
  const siteOf = (s: LoadedSample) => def.siteOf.get(s) ?? '';
  const { split, assign } = splitHeldout({
    samples,
    bucketOf: siteOf,
    taskOf: (s) => def.taskOf.get(s) ?? null,
    fraction: o.heldoutFraction,
    rank: (s) => contentRank(o.seed, s, siteOf(s)),
  });
  plan.assign = assign;

  const taskById = new Map(i.tasks.map((t) => [t.id, t]));
  const scoring = new Map<string, Promise<ScoringModel>>();
  const ctx: PlanCtx = {
    o,
    round: i.round,
    labels: sortLabels(labelled.map((s) => s.rec.label!)),
    dim,
    P,
    input,
    tasks: i.tasks,
    taskById,
    currentGlobal: i.tasks.find((t) => t.fallback) ?? taskById.get(GLOBAL_TASK) ?? null,
    split,
    modelOf: (t) => {
      if (!scoring.has(t.id)) scoring.set(t.id, i.loadModel(t));
      return scoring.get(t.id)!;
    },
    log,
    now,
  };

  // 3. candidates, 4. training (the trainer hook: candidates.ts), 5. gate. Two passes: first the
  // fallback and the known tasks; then brand-new tasks, whose parent may be the fallback just
  // retrained (it has seen the new site's samples) and which are gated against the fallback
  // that will serve them
  const sel = selectCandidates(ctx, labelled, def.qualifying);
  const isNew = (c: Candidate) => c.kind === 'new' && !c.fallback && !c.group.existing;
  const first = sel.candidates.filter((c) => !isNew(c));
  const later = sel.candidates.filter(isNew);
  const train = (cs: Candidate[], x: PlanCtx) => trainCandidates(cs, { o, labels: x.labels, dim, P, input, modelOf: x.modelOf, taskById: x.taskById, log, round: i.round });
  const trained = await train(first, ctx);
  const gate = await gateCandidates(ctx, first, trained);
  if (later.length) {
    const ctxB = withFreshFallback(ctx, first, gate, trained);
    for (const c of later) Object.assign(c, await chooseParent(ctxB, c.train));
    for (const [c, t] of await train(later, ctxB)) trained.set(c, t);
    const gateB = await gateCandidates(ctx, later, trained, gate.servingGlobal);
    gate.order.push(...gateB.order);
    for (const [c, d] of gateB.decisions) gate.decisions.set(c, d);
  }
  // 6. records
  // sites the fallback serves: tasks pointing at its model, and groups too small to be tasks
  const qualifying = new Set(def.qualifying);
  const small = [...def.groups.values()].filter((g) => !qualifying.has(g) && Object.keys(g.attrs).length > 0);
  const inSplit = (g: (typeof small)[number], want: 'train' | 'heldout') => g.members.filter((s) => s.rec.label !== null && split.get(s) === want);
  const served = [...sel.repoint, ...small.map((group) => ({ group, train: inSplit(group, 'train'), heldout: inSplit(group, 'heldout') }))];
  const res = await resolveRecords(ctx, gate, trained, served);
  plan.tasks = res.tasks;
  plan.outcomes = [...sel.unchanged, ...res.outcomes];
  plan.rejects = res.rejects;
  plan.changedModels = res.changedModels;
  plan.changedEntries = res.changedEntries;
  plan.trained = sel.candidates.map((c) => c.group.id);
  plan.used = [...new Set(sel.candidates.flatMap((c) => [...c.train, ...c.heldout].map((s) => s.rec.id)))];
  plan.outcomes.sort((a, b) => Number(b.fallback) - Number(a.fallback) || a.task.localeCompare(b.task, 'en', { numeric: true }));
  return plan;
}

/** One input dimension: the most common one (others cannot feed these models); the rest are skipped. */
export function commonDimension(loaded: LoadedSample[], skipped0: Record<string, number>): { samples: LoadedSample[]; dim: number; skipped: Record<string, number> } {
  const skipped = { ...skipped0 };
  const dimCount = new Map<number, number>();
  for (const s of loaded) dimCount.set(s.raw.length, (dimCount.get(s.raw.length) ?? 0) + 1);
  const dim = [...dimCount.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]?.[0] ?? 0;
  const samples = loaded.filter((s) => {
    if (s.raw.length === dim) return true;
    const why = `${s.raw.length} features instead of ${dim}`;
    skipped[why] = (skipped[why] ?? 0) + 1;
    return false;
  });
  return { samples, dim, skipped };
}

/**
 * The plan context with this round's accepted fallback candidate in place of the current
 * fallback, as a parent for new tasks (unchanged when the fallback was not retrained or kept).
 */
function withFreshFallback(ctx: PlanCtx, first: Candidate[], gate: GateResult, trained: Map<Candidate, Trained>): PlanCtx {
  const g = first.find((c) => c.fallback);
  if (!g || !gate.decisions.get(g)?.d.accepted) return ctx;
  const tr = trained.get(g)!;
  const prev = ctx.currentGlobal;
  const rec: TaskRecord = {
    id: g.group.id,
    attrs: {},
    model_sha: createHash('sha256').update(tr.bytes).digest('hex'),
    model_size: tr.bytes.length,
    ...tr.io,
    labels: ctx.labels,
    preprocessing: ctx.P,
    output_kind: tr.outputKind,
    arch: tr.arch,
    parent: prev?.parent ?? null,
    metrics: {},
    centroid: null,
    radius: null,
    thresholds: null,
    samples: g.train.length + g.heldout.length,
    updated_round: ctx.round,
    fallback: true,
    created_at: prev?.created_at ?? ctx.now,
    updated_at: ctx.now,
  };
  const tasks = [rec, ...ctx.tasks.filter((t) => t.id !== rec.id && !t.fallback)];
  return {
    ...ctx,
    tasks,
    taskById: new Map(tasks.map((t) => [t.id, t])),
    modelOf: (t) => (t === rec ? Promise.resolve(tr.model) : ctx.modelOf(t)),
  };
}
