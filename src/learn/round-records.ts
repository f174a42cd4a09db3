// The last plan step (no writes): turn the gate's decisions into the task records the round will
// write. An accepted candidate serves its task with its new model; a rejected update keeps the
// current model (numbers and calibration refreshed on the grown held-out set). A new task whose
// model does not beat the fallback still becomes a task (its attribute is known, so the edge
// stops flagging its samples unseen) but is served by the fallback's model (same sha256: nothing
// to download) until one of its own models beats the fallback. It follows later fallback models
// only when they are strictly better on its held-out set.
import { createHash } from 'node:crypto';
import type { TaskRecord } from '../kb/store.js';
import type { Trained } from './candidates.js';
import { evalOn, type GateResult } from './round-decide.js';
import { unchanged } from './round-select.js';
import type { Candidate, PlanCtx, Repoint, TaskOutcome } from './round-types.js';
import { modelFields, taskRecord } from './task-record.js';

export interface PlannedTask {
  record: TaskRecord;
  /** bytes of a new model the record points at (stored before the records are written) */
  bytes: Buffer | null;
}

export interface Resolution {
  tasks: PlannedTask[];
  outcomes: TaskOutcome[];
  /** learn.reject events */
  rejects: Record<string, unknown>[];
  changedModels: number;
  /** task entries that point at another model without a new one */
  changedEntries: number;
}

export async function resolveRecords(ctx: PlanCtx, g: GateResult, trained: Map<Candidate, Trained>, repoint: Repoint[]): Promise<Resolution> {
  const { round, modelOf } = ctx;
  const metric = ctx.o.gate.metric;
  const { servingGlobal } = g;
  const out: Resolution = { tasks: [], outcomes: [], rejects: [], changedModels: 0, changedEntries: 0 };
  let globalRecord: TaskRecord | null = ctx.currentGlobal;
  for (const c of g.order) {
    const tr = trained.get(c)!;
    const { d, before, after, current } = g.decisions.get(c)!;
    const outcome: TaskOutcome = {
      task: c.group.id,
      kind: c.kind,
      fallback: c.fallback,
      parent: c.parent,
      ...(c.relation ? { relation: c.relation } : {}),
      accepted: d.accepted,
      reason: d.reason,
      before,
      after,
      samples: { train: c.train.length, heldout: c.heldout.length, new: c.fresh },
      epochs: tr.epochs,
      bestEpoch: tr.bestEpoch,
      trainMs: Math.round(tr.ms),
      warmStart: tr.warmStart,
      model_sha: null,
    };
    out.outcomes.push(outcome);
    if (!d.accepted) out.rejects.push({ round, task: c.group.id, kind: c.kind, metric, candidate: d.candidate, baseline: d.baseline, against: d.against, reason: d.reason });
    const historyEntry = { round, kind: c.kind, accepted: d.accepted, reason: d.reason, before: before ? before[metric] : null, after: after[metric], metric, parent: c.parent, train: c.train.length, heldout: c.heldout.length, epochs: tr.epochs, train_ms: Math.round(tr.ms) };
    const base = { group: c.group, fallback: c.fallback, train: c.train, heldout: c.heldout, historyEntry };
    let rec: TaskRecord;
    let bytes: Buffer | null = null;
    if (d.accepted) {
      const sha = createHash('sha256').update(tr.bytes).digest('hex');
      outcome.model_sha = sha;
      out.changedModels++;
      bytes = tr.bytes;
      const model = { model_sha: sha, model_size: tr.bytes.length, ...tr.io, labels: ctx.labels, preprocessing: ctx.P, output_kind: tr.outputKind, arch: tr.arch };
      rec = await taskRecord(ctx, { ...base, served: tr.model, servedScores: after, model, parent: c.parent, shares: false, updatedRound: round, trainer: tr.trainer });
    } else if (c.kind === 'update' || c.fallback) {
      // the current model stays; its numbers and calibration are refreshed on the grown held-out set
      const prev = c.group.existing!;
      rec = await taskRecord(ctx, { ...base, served: await modelOf(prev), servedScores: before!, model: modelFields(prev), parent: prev.parent, shares: false, updatedRound: prev.updated_round, trainer: null });
    } else if (c.group.existing && current && (!globalRecord || !servingGlobal || !before || before[metric] <= current[metric])) {
      // an earlier fallback model serves this task better than today's fallback: keep it (frozen)
      const prev = c.group.existing;
      outcome.reason += '; keeps its current model (better here than the fallback)';
      rec = await taskRecord(ctx, { ...base, served: await modelOf(prev), servedScores: current, model: modelFields(prev), parent: prev.parent, shares: false, updatedRound: prev.updated_round, trainer: null });
    } else if (globalRecord && servingGlobal) {
      outcome.reason += '; the task is served by the fallback model';
      outcome.model_sha = globalRecord.model_sha;
      if (!c.group.existing || c.group.existing.model_sha !== globalRecord.model_sha) out.changedEntries++;
      rec = await taskRecord(ctx, { ...base, served: servingGlobal, servedScores: before!, model: modelFields(globalRecord), parent: globalRecord.id, shares: true, updatedRound: round, trainer: null });
    } else continue;
    if (c.fallback) globalRecord = rec;
    out.tasks.push({ record: rec, bytes });
  }
  // tasks served by the fallback's model follow it when it changed this round
  for (const r of repoint) {
    const prev = r.group.existing!;
    if (!globalRecord || !servingGlobal || globalRecord.model_sha === prev.model_sha) {
      out.outcomes.push(unchanged(prev, r.train.length, r.heldout.length));
      continue;
    }
    const held = await evalOn(servingGlobal, r.heldout);
    const cur = await evalOn(await modelOf(prev), r.heldout);
    const base = { group: r.group, fallback: false, train: r.train, heldout: r.heldout, historyEntry: null, trainer: null };
    if (held[metric] <= cur[metric]) {
      // the new fallback is not better on this task: it keeps the earlier one. Strictly better
      // is required because a switch that only ties on the held-out set is a coin toss on
      // unseen data, and repeated coin tosses add up to forgetting.
      out.tasks.push({ record: await taskRecord(ctx, { ...base, served: await modelOf(prev), servedScores: cur, model: modelFields(prev), parent: prev.parent, shares: false, updatedRound: prev.updated_round }), bytes: null });
      out.outcomes.push({ ...unchanged(prev, r.train.length, r.heldout.length), reason: `keeps its model: the new fallback scores ${metric} ${held[metric].toFixed(4)} <= ${cur[metric].toFixed(4)} here` });
      continue;
    }
    out.changedEntries++;
    out.tasks.push({ record: await taskRecord(ctx, { ...base, served: servingGlobal, servedScores: held, model: modelFields(globalRecord), parent: globalRecord.id, shares: true, updatedRound: round }), bytes: null });
    out.outcomes.push({ ...unchanged(prev, r.train.length, r.heldout.length), reason: 'served by the fallback model, which changed', after: held, model_sha: globalRecord.model_sha });
  }
  return out;
}
