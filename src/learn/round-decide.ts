// The gate step of a round's plan (no writes): every candidate against the model that serves
// its task now, on the task's own held-out set, by a paired test (gate.ts). The fallback goes
// first, so a new task is compared with the fallback model that will serve it after this round,
// unless that new fallback is significantly worse there than the model that served the site
// before (then that one stays: the site is pinned to it).
import type { TaskRecord } from '../kb/store.js';
import type { Trained } from './candidates.js';
import type { LoadedSample } from './dataset.js';
import { gateDecide, type GateConfig, type GateDecision, type Graded } from './gate.js';
import { roundScores, scoreLabels, type Scores } from './metrics.js';
import { predictLabels, type ScoringModel } from './models.js';
import { pairedCompare, type PairedResult } from './paired.js';
import type { Candidate, PlanCtx } from './round-types.js';

export interface Decision {
  d: GateDecision;
  /** the incumbent the candidate was compared with, on the held-out set */
  before: Scores | null;
  after: Scores;
  /** a site that had a model before this round (its entry, else the old fallback): that model's scores */
  current?: Scores;
  /** rejected: the site follows the new fallback (true) or stays on the model that served it (false) */
  follow?: boolean;
  /** old vs new fallback on the site's held-out set */
  followTest?: PairedResult;
}

export interface GateResult {
  /** candidates in decision order (fallback first) */
  order: Candidate[];
  decisions: Map<Candidate, Decision>;
  /** the fallback model that serves after this round (the accepted candidate, else the current one) */
  servingGlobal: ScoringModel | null;
}

export interface GradedScores extends Graded {
  scores: Scores;
}

/** A model's per-sample results on a held-out set; a model that cannot score it counts as all wrong. */
export async function grade(m: ScoringModel, set: LoadedSample[], metric: GateConfig['metric'], log?: (msg: string) => void): Promise<GradedScores> {
  const truth = set.map((s) => s.rec.label!);
  let pred: string[];
  try {
    pred = (await predictLabels(m, set.map((s) => s.raw))).labels;
  } catch (e) {
    // e.g. a registered model for another input size: it cannot serve these samples at all
    log?.(`a model cannot score ${set.length} held-out samples (${(e as Error).message}); counted as wrong`);
    pred = truth.map(() => '\u0000');
  }
  const scores = roundScores(scoreLabels(truth, pred));
  return { scores, right: truth.map((t, i) => t === pred[i]), metric: scores[metric] };
}

/**
 * Does a site served by oldModel follow newModel? Not when newModel is significantly worse on
 * the site's held-out set. A site with a task entry (strict) also stays when newModel scores
 * lower there at all: its entry already points at oldModel (staying costs nothing, the edge has
 * it), and small drops taken round after round add up to forgetting. A site without an entry is
 * pinned (given one) only on a significant loss.
 */
export async function followTest(ctx: PlanCtx, oldModel: ScoringModel, newModel: ScoringModel, heldout: LoadedSample[], strict: boolean): Promise<{ follow: boolean; test: PairedResult; old: GradedScores; now: GradedScores }> {
  const metric = ctx.o.gate.metric;
  const old = await grade(oldModel, heldout, metric);
  const now = await grade(newModel, heldout, metric);
  const test = pairedCompare(old.right, now.right, ctx.o.gate.alpha);
  const follow = test.verdict !== 'loss' && (!strict || test.candidate >= test.incumbent);
  return { follow, test, old, now };
}

/** servingGlobal: the fallback decided by an earlier gate of this round (default: the current one) */
export async function gateCandidates(ctx: PlanCtx, candidates: Candidate[], trained: Map<Candidate, Trained>, servingGlobal0?: ScoringModel | null): Promise<GateResult> {
  const { o, modelOf } = ctx;
  const metric = o.gate.metric;
  const decisions = new Map<Candidate, Decision>();
  const order = [...candidates].sort((a, b) => Number(b.fallback) - Number(a.fallback));
  const oldGlobal: ScoringModel | null = ctx.currentGlobal ? await modelOf(ctx.currentGlobal) : null;
  let servingGlobal = servingGlobal0 === undefined ? oldGlobal : servingGlobal0;
  for (const c of order) {
    const tr = trained.get(c)!;
    const cand = await grade(tr.model, c.heldout, metric);
    let dec: Decision;
    if (c.kind === 'update') {
      const inc = await grade(await modelOf(c.group.existing!), c.heldout, metric, (m) => ctx.log(`task ${c.group.id}: current model: ${m}`));
      dec = { d: gateDecide(o.gate, cand, inc, 'current'), before: inc.scores, after: cand.scores };
    } else if (c.fallback) {
      dec = { d: gateDecide(o.gate, cand, null, 'fallback'), before: null, after: cand.scores };
    } else {
      // what served the site before this round: its own entry's model, else the old fallback
      const prevModel = c.group.existing ? await modelOf(c.group.existing) : oldGlobal;
      if (!servingGlobal) {
        dec = { d: gateDecide(o.gate, cand, null, 'fallback'), before: null, after: cand.scores };
      } else if (!prevModel || prevModel === servingGlobal) {
        const inc = await grade(servingGlobal, c.heldout, metric);
        dec = { d: gateDecide(o.gate, cand, inc, 'fallback'), before: inc.scores, after: cand.scores, follow: true };
      } else {
        const f = await followTest(ctx, prevModel, servingGlobal, c.heldout, !!c.group.existing);
        const inc = f.follow ? f.now : f.old;
        dec = { d: gateDecide(o.gate, cand, inc, f.follow ? 'fallback' : 'current'), before: inc.scores, after: cand.scores, current: f.old.scores, follow: f.follow, followTest: f.test };
      }
    }
    if (c.fallback && dec.d.accepted) servingGlobal = tr.model;
    decisions.set(c, dec);
  }
  return { order, decisions, servingGlobal };
}

/** The record that served a site before this round: its own entry, else the fallback's. */
export function previousServer(ctx: PlanCtx, existing: TaskRecord | null): TaskRecord | null {
  return existing ?? ctx.currentGlobal;
}
