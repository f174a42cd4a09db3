// What a learning round trains (plan step, no writes): the fallback when it has new samples, each
// task with new samples (an update on its own data), each new group (a new task, warm-started
// from its most related model). Tasks with nothing new stay unchanged, or follow the fallback
// when its model serves them.
import type { TaskRecord } from '../kb/store.js';
import { distancesTo } from './calibrate.js';
import type { LoadedSample } from './dataset.js';
import { scoreLabels } from './metrics.js';
import { predictLabels, stack } from './models.js';
import { GLOBAL_TASK, type Candidate, type Group, type PlanCtx, type Repoint, type TaskOutcome } from './round-types.js';

export interface Selection {
  candidates: Candidate[];
  /** tasks not trained this round */
  unchanged: TaskOutcome[];
  repoint: Repoint[];
}

export function selectCandidates(ctx: PlanCtx, labelled: LoadedSample[], qualifying: Group[]): Selection {
  const trainOf = (m: LoadedSample[]) => m.filter((s) => s.rec.label !== null && ctx.split.get(s) === 'train');
  const heldOf = (m: LoadedSample[]) => m.filter((s) => s.rec.label !== null && ctx.split.get(s) === 'heldout');
  const freshOf = (m: LoadedSample[]) => m.filter((s) => s.rec.label !== null && s.rec.used_in_round === null).length;
  const g0 = ctx.currentGlobal;
  const out: Selection = { candidates: [], unchanged: [], repoint: [] };
  const globalGroup: Group = { id: g0?.id ?? GLOBAL_TASK, attrs: {}, members: labelled, existing: g0 };
  const globalFresh = freshOf(labelled);
  if (!g0 || globalFresh > 0) {
    out.candidates.push({ group: globalGroup, kind: g0 ? 'update' : 'new', fallback: true, parent: g0 ? g0.parent : null, train: trainOf(labelled), heldout: heldOf(labelled), fresh: globalFresh });
  }
  for (const g of qualifying) {
    const fresh = freshOf(g.members);
    const train = trainOf(g.members);
    const heldout = heldOf(g.members);
    const shares = !!g.existing && sharesFallback(g.existing);
    if (g.existing && fresh === 0 && g.existing.updated_round > 0) {
      // nothing new; a task served by the fallback's model follows the fallback when it changes
      if (shares) out.repoint.push({ group: g, train, heldout });
      else out.unchanged.push(unchanged(g.existing, train.length, heldout.length));
      continue;
    }
    if (train.length === 0 || heldout.length === 0) {
      if (g.existing) out.unchanged.push({ ...unchanged(g.existing, train.length, heldout.length), reason: 'too few labelled samples to split into train and held-out' });
      continue;
    }
    // a task still served by the fallback's model is gated like a new task (against the fallback)
    // a brand-new task's parent is chosen once the fallback is trained (round-plan.ts)
    out.candidates.push({ group: g, kind: g.existing && !shares ? 'update' : 'new', fallback: false, parent: g.existing ? g.existing.parent : null, train, heldout, fresh });
  }
  return out;
}

/**
 * Task relationship: the existing model that scores best on the new task's training data (ties:
 * nearest centroid). A parent no better than twice chance on the new data knows nothing useful
 * about it, and its weights (fitted to another region of the input space) can hold training
 * back: then the task starts fresh and has no parent.
 */
export async function chooseParent(ctx: PlanCtx, train: LoadedSample[]): Promise<{ parent: string | null; relation: NonNullable<Candidate['relation']> }> {
  const scores: Record<string, number> = {};
  let best: TaskRecord | null = null;
  let bestScore = -1;
  const rows = train.map((s) => s.raw);
  const truth = train.map((s) => s.rec.label!);
  for (const t of ctx.tasks) {
    if (sharesFallback(t)) continue; // its model is the fallback's, scored as the fallback
    try {
      const pred = await predictLabels(await ctx.modelOf(t), rows);
      const a = scoreLabels(truth, pred.labels).accuracy;
      scores[t.id] = Math.round(a * 1e4) / 1e4;
      const closer = best && a === bestScore && nearer(t, best, train.map(ctx.input), ctx.dim);
      if (a > bestScore || closer) (bestScore = a), (best = t);
    } catch {
      // a model that cannot score these samples (other input size) cannot be a parent
    }
  }
  const useful = best !== null && bestScore >= Math.min(0.9, 2 / Math.max(2, ctx.labels.length));
  return { parent: useful ? best!.id : null, relation: { by: useful ? 'score' : 'none', scores } };
}

export function sharesFallback(t: TaskRecord): boolean {
  return t.extra?.shares_fallback === true;
}

export function unchanged(t: TaskRecord, train: number, heldout: number): TaskOutcome {
  const m = t.metrics ?? {};
  const s = m.accuracy !== undefined ? { accuracy: m.accuracy, micro_precision: m.micro_precision ?? m.accuracy, macro_f1: m.macro_f1 ?? 0, n: m.heldout ?? heldout } : null;
  return { task: t.id, kind: 'unchanged', fallback: t.fallback, parent: t.parent, accepted: null, reason: 'no new labelled samples', before: s, after: s, samples: { train, heldout, new: 0 }, epochs: null, bestEpoch: null, trainMs: null, warmStart: null, model_sha: t.model_sha };
}

function nearer(a: TaskRecord, b: TaskRecord, xs: Float32Array[], dim: number): boolean {
  if (!a.centroid || a.centroid.length !== dim) return false;
  if (!b.centroid || b.centroid.length !== dim) return true;
  const X = stack(xs, dim);
  const c = new Float64Array(dim);
  for (let i = 0; i < xs.length; i++) for (let j = 0; j < dim; j++) c[j] += X[i * dim + j] / xs.length;
  return distancesTo(Float32Array.from(c), 1, dim, a.centroid)[0] < distancesTo(Float32Array.from(c), 1, dim, b.centroid)[0];
}
