// The gate step of a round's plan (no writes): every candidate against what serves its task now,
// on the task's own held-out set (gate.ts). The fallback goes first, so a new task is compared
// with the fallback model that will serve it after this round.
import type { Trained } from './candidates.js';
import type { LoadedSample } from './dataset.js';
import { gateNew, gateUpdate, type GateDecision } from './gate.js';
import { roundScores, scoreLabels, type Scores } from './metrics.js';
import { predictLabels, type ScoringModel } from './models.js';
import type { Candidate, PlanCtx } from './round-types.js';

export interface Decision {
  d: GateDecision;
  /** the current model (update) or the serving fallback (new task) on the held-out set */
  before: Scores | null;
  after: Scores;
  /** a task served by an earlier fallback model so far: that model's scores */
  current?: Scores;
}

export interface GateResult {
  /** candidates in decision order (fallback first) */
  order: Candidate[];
  decisions: Map<Candidate, Decision>;
  /** the fallback model that serves after this round (the accepted candidate, else the current one) */
  servingGlobal: ScoringModel | null;
}

export async function evalOn(m: ScoringModel, set: LoadedSample[]): Promise<Scores> {
  return roundScores(scoreLabels(set.map((s) => s.rec.label!), (await predictLabels(m, set.map((s) => s.raw))).labels));
}

export async function gateCandidates(ctx: PlanCtx, candidates: Candidate[], trained: Map<Candidate, Trained>): Promise<GateResult> {
  const { o, modelOf } = ctx;
  const metric = o.gate.metric;
  const decisions = new Map<Candidate, Decision>();
  const order = [...candidates].sort((a, b) => Number(b.fallback) - Number(a.fallback));
  let servingGlobal: ScoringModel | null = ctx.currentGlobal ? await modelOf(ctx.currentGlobal) : null;
  for (const c of order) {
    const tr = trained.get(c)!;
    const after = await evalOn(tr.model, c.heldout);
    let before: Scores | null = null;
    let d: GateDecision;
    if (c.kind === 'update') {
      try {
        before = await evalOn(await modelOf(c.group.existing!), c.heldout);
      } catch (e) {
        // e.g. a registered model for another input size: it cannot serve these samples at all
        ctx.log(`task ${c.group.id}: current model cannot score its held-out set (${(e as Error).message}); counted as 0`);
        before = { accuracy: 0, micro_precision: 0, macro_f1: 0, n: c.heldout.length };
      }
      d = gateUpdate(o.gate, after[metric], before[metric]);
    } else if (c.fallback) {
      d = gateNew(o.gate, after[metric], null);
    } else {
      before = servingGlobal ? await evalOn(servingGlobal, c.heldout) : null;
      d = gateNew(o.gate, after[metric], before ? before[metric] : null);
      if (c.group.existing) {
        // served by an earlier fallback model so far: the candidate must also not lose against that
        const cur = await evalOn(await modelOf(c.group.existing), c.heldout);
        const u = gateUpdate(o.gate, after[metric], cur[metric]);
        if (d.accepted && !u.accepted) d = u;
        decisions.set(c, { d, before, after, current: cur });
        continue;
      }
    }
    if (c.fallback && d.accepted) servingGlobal = tr.model;
    decisions.set(c, { d, before, after });
  }
  return { order, decisions, servingGlobal };
}
