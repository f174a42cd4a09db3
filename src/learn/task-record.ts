// The TaskRecord a round writes for a task: the model that serves it, that model's held-out
// scores, and the calibration the edge's unseen detection uses (centroid, radius,
// confidence/entropy thresholds at the target false-positive rate).
import type { TaskRecord } from '../kb/store.js';
import { calibrate } from './calibrate.js';
import { preprocess, type LoadedSample } from './dataset.js';
import type { Scores } from './metrics.js';
import { stack, type ScoringModel } from './models.js';
import type { Group, PlanCtx } from './round-types.js';

export type ModelFields = Pick<TaskRecord, 'model_sha' | 'model_size' | 'inputs' | 'outputs' | 'labels' | 'preprocessing' | 'output_kind' | 'arch'>;

export const modelFields = (t: TaskRecord): ModelFields => ({ model_sha: t.model_sha, model_size: t.model_size, inputs: t.inputs, outputs: t.outputs, labels: t.labels, preprocessing: t.preprocessing, output_kind: t.output_kind, arch: t.arch });

export interface RecordSpec {
  group: Group;
  fallback: boolean;
  train: LoadedSample[];
  heldout: LoadedSample[];
  /** the model that serves the task after this round, and its held-out scores */
  served: ScoringModel;
  servedScores: Scores;
  model: ModelFields;
  parent: string | null;
  /** the task's entry points at the fallback's model */
  shares: boolean;
  updatedRound: number;
  historyEntry: Record<string, unknown> | null;
  trainer: Record<string, unknown> | null;
}

export async function taskRecord(ctx: PlanCtx, r: RecordSpec): Promise<TaskRecord> {
  const { P, dim, input } = ctx;
  const probs = await r.served.predict(r.heldout.map((s) => s.raw));
  // centroid and radius live in the input space of the model that serves the task (the edge
  // measures distances after that task's preprocessing)
  const same = JSON.stringify(r.served.preprocessing) === JSON.stringify(P);
  const inSpace = (s: LoadedSample) => (same ? input(s) : preprocess(s.raw, r.served.preprocessing));
  const trainX = stack(r.train.map(inSpace), dim);
  const heldX = stack(r.heldout.map(inSpace), dim);
  // calibration of the unseen detectors (calibrate.ts)
  const cal = calibrate(trainX, r.train.length, heldX, r.heldout.length, probs, r.served.labels.length, dim, ctx.o.fpr);
  const prev = r.group.existing;
  const history = ((prev?.extra?.history as unknown[]) ?? []).concat(r.historyEntry ? [r.historyEntry] : []);
  const sc = r.servedScores;
  return {
    id: r.group.id,
    attrs: r.fallback ? {} : r.group.attrs,
    ...r.model,
    parent: r.parent,
    metrics: { accuracy: sc.accuracy, micro_precision: sc.micro_precision, macro_f1: sc.macro_f1, heldout: sc.n },
    // the fallback has no centroid: it must never win nearest-centroid allocation
    centroid: r.fallback ? null : cal.centroid,
    radius: r.fallback ? null : cal.radius,
    thresholds: { confidence: cal.confidence, entropy: cal.entropy },
    samples: r.train.length + r.heldout.length,
    updated_round: r.updatedRound,
    fallback: r.fallback,
    created_at: prev?.created_at ?? ctx.now,
    updated_at: ctx.now,
    extra: { ...(prev?.extra ?? {}), history, ...(r.trainer ? { trainer: r.trainer } : {}), shares_fallback: r.shares },
  };
}
