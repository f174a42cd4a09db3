// The last plan step (no writes): turn the gate's decisions into the task records the round will
// write. An accepted candidate serves its task with its new model; a rejected or kept update
// keeps the current model (numbers and calibration refreshed on the grown held-out set). A new
// task whose model is no significant gain still becomes a task (its attribute is known, so the
// edge stops flagging its samples unseen) and is served by the fallback's model (same sha256:
// nothing to download). Every site the fallback serves follows a new fallback unless that is
// significantly worse on the site's held-out set: then the site is pinned to the model that
// served it before (an entry of its own pointing at that model, no retraining).
import { createHash } from 'node:crypto';
import type { TaskRecord } from '../kb/store.js';
import type { Trained } from './candidates.js';
import { describePaired, type PairedResult } from './paired.js';
import { followTest, type GateResult } from './round-decide.js';
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
  /** models whose sha256 the KB did not hold before */
  changedModels: number;
  /** task entries that point at another model without a new one */
  changedEntries: number;
}

const pinReason = (t: PairedResult, from: string) => `pinned to the model that served it before (${from}): the new fallback is ${t.verdict === 'loss' ? 'significantly worse' : 'worse'} here (${describePaired(t)})`;

export async function resolveRecords(ctx: PlanCtx, g: GateResult, trained: Map<Candidate, Trained>, served: Repoint[]): Promise<Resolution> {
  const { round, modelOf } = ctx;
  const metric = ctx.o.gate.metric;
  const { servingGlobal } = g;
  const knownShas = new Set(ctx.tasks.map((t) => t.model_sha));
  const out: Resolution = { tasks: [], outcomes: [], rejects: [], changedModels: 0, changedEntries: 0 };
  const oldGlobal = ctx.currentGlobal;
  let globalRecord: TaskRecord | null = oldGlobal;
  const pinHistory = (from: TaskRecord, t: PairedResult, train: number, heldout: number) => ({ round, kind: 'pin', accepted: false, verdict: 'pinned', reason: pinReason(t, from.id), before: t.incumbent, after: t.candidate, metric: 'accuracy', parent: from.id, train, heldout, epochs: null, train_ms: 0, test: t });
  for (const c of g.order) {
    const tr = trained.get(c)!;
    const { d, before, after, current, follow, followTest: ft } = g.decisions.get(c)!;
    const outcome: TaskOutcome = {
      task: c.group.id,
      kind: c.kind,
      fallback: c.fallback,
      parent: c.parent,
      ...(c.relation ? { relation: c.relation } : {}),
      accepted: d.accepted,
      verdict: d.verdict,
      reason: d.reason,
      test: d.test,
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
    if (!d.accepted) out.rejects.push({ round, task: c.group.id, kind: c.kind, metric, verdict: d.verdict, candidate: d.candidate, baseline: d.baseline, against: d.against, reason: d.reason, test: d.test });
    const historyEntry = { round, kind: c.kind, accepted: d.accepted, verdict: d.verdict, reason: d.reason, before: before ? before[metric] : null, after: after[metric], metric, parent: c.parent, train: c.train.length, heldout: c.heldout.length, epochs: tr.epochs, train_ms: Math.round(tr.ms), test: d.test };
    const base = { group: c.group, fallback: c.fallback, train: c.train, heldout: c.heldout, historyEntry };
    let rec: TaskRecord;
    let bytes: Buffer | null = null;
    if (d.accepted) {
      const sha = createHash('sha256').update(tr.bytes).digest('hex');
      outcome.model_sha = sha;
      if (!knownShas.has(sha)) out.changedModels++;
      else if (c.group.existing?.model_sha !== sha) out.changedEntries++;
      knownShas.add(sha);
      bytes = tr.bytes;
      const model = { model_sha: sha, model_size: tr.bytes.length, ...tr.io, labels: ctx.labels, preprocessing: ctx.P, output_kind: tr.outputKind, arch: tr.arch };
      rec = await taskRecord(ctx, { ...base, served: tr.model, servedScores: after, model, parent: c.parent, shares: false, updatedRound: round, trainer: tr.trainer });
    } else if (c.kind === 'update' || c.fallback) {
      // the current model stays; its numbers and calibration are refreshed on the grown held-out set
      const prev = c.group.existing!;
      rec = await taskRecord(ctx, { ...base, served: await modelOf(prev), servedScores: before!, model: modelFields(prev), parent: prev.parent, shares: false, updatedRound: prev.updated_round, trainer: null });
    } else if (follow === false && ft && current) {
      // the new fallback is significantly worse here than what served the site before: pinned
      const prev = c.group.existing ?? oldGlobal!;
      outcome.pinned = { model_sha: prev.model_sha, from: prev.id, reason: pinReason(ft, prev.id), test: ft };
      outcome.reason += `; ${outcome.pinned.reason}`;
      outcome.model_sha = prev.model_sha;
      if (c.group.existing?.model_sha !== prev.model_sha) out.changedEntries++;
      rec = await taskRecord(ctx, { ...base, served: await modelOf(prev), servedScores: current, model: modelFields(prev), parent: prev.fallback ? prev.id : prev.parent, shares: false, updatedRound: c.group.existing?.updated_round ?? round, trainer: null });
      rec.extra = { ...rec.extra, pinned: { round, from: prev.id, test: ft } };
    } else if (globalRecord && servingGlobal) {
      outcome.reason += '; the task is served by the fallback model';
      outcome.model_sha = globalRecord.model_sha;
      if (!c.group.existing || c.group.existing.model_sha !== globalRecord.model_sha) out.changedEntries++;
      rec = await taskRecord(ctx, { ...base, served: servingGlobal, servedScores: before!, model: modelFields(globalRecord), parent: globalRecord.id, shares: true, updatedRound: round, trainer: null });
    } else continue;
    if (c.fallback) globalRecord = rec;
    // a model of its own, or the fallback's again: no longer pinned
    if ((d.accepted || rec.extra?.shares_fallback) && rec.extra) delete rec.extra.pinned;
    out.tasks.push({ record: rec, bytes });
  }
  // sites the fallback serves with nothing new of their own follow it when it changed, unless
  // it got significantly worse there
  const globalChanged = !!globalRecord && !!oldGlobal && globalRecord.model_sha !== oldGlobal.model_sha;
  for (const r of served) {
    const prev = r.group.existing;
    if (!globalChanged || !servingGlobal || (prev && globalRecord!.model_sha === prev.model_sha)) {
      if (prev) out.outcomes.push(unchanged(prev, r.train.length, r.heldout.length));
      continue;
    }
    if (!prev && r.heldout.length === 0) continue; // nothing to judge a site without an entry on
    const from = prev ?? oldGlobal!;
    const f = await followTest(ctx, await modelOf(from), servingGlobal, r.heldout, !!prev);
    const base = { group: r.group, fallback: false, train: r.train, heldout: r.heldout, trainer: null };
    if (!f.follow) {
      const reason = pinReason(f.test, from.id);
      const rec = await taskRecord(ctx, { ...base, served: await modelOf(from), servedScores: f.old.scores, model: modelFields(from), parent: from.fallback ? from.id : from.parent, shares: false, updatedRound: prev?.updated_round ?? round, historyEntry: pinHistory(from, f.test, r.train.length, r.heldout.length) });
      rec.extra = { ...rec.extra, pinned: { round, from: from.id, test: f.test } };
      out.tasks.push({ record: rec, bytes: null });
      if (!prev) out.changedEntries++;
      const o = prev ? unchanged(prev, r.train.length, r.heldout.length) : { ...unchanged(rec, r.train.length, r.heldout.length), parent: from.id };
      out.outcomes.push({ ...o, reason, after: f.now.scores, before: f.old.scores, test: f.test, model_sha: from.model_sha, pinned: { model_sha: from.model_sha, from: from.id, reason, test: f.test } });
      continue;
    }
    if (!prev) continue; // a site without an entry simply keeps being served by the fallback
    out.changedEntries++;
    out.tasks.push({ record: await taskRecord(ctx, { ...base, served: servingGlobal, servedScores: f.now.scores, model: modelFields(globalRecord!), parent: globalRecord!.id, shares: true, updatedRound: round, historyEntry: null }), bytes: null });
    out.outcomes.push({ ...unchanged(prev, r.train.length, r.heldout.length), reason: `served by the fallback model, which changed (${describePaired(f.test)})`, before: f.old.scores, after: f.now.scores, test: f.test, model_sha: globalRecord!.model_sha });
  }
  return out;
}
