// The TaskRecord a round writes for a task: the model that serves it, that model's held-out
// scores, and the calibration the edge's unseen detection uses (centroid, radius, the methods'
// thresholds with the COMBINED flag at the target false-positive rate, feature statistics).
import type { TaskRecord } from '../kb/store.js';
import type { LoadedSample } from './dataset.js';
import type { Scores } from './metrics.js';
import type { ScoringModel } from './models.js';
import { calibratedFields, calibrateTask, DEFAULT_KB_UNSEEN } from './unseen-settings.js';
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
  // calibration of the unseen detectors for the settings in force (unseen-settings.ts), in the
  // input space of the model that serves the task (the edge measures there)
  const cal = await calibrateTask(r.served, r.train, r.heldout, ctx.o.unseenConfig ?? { ...DEFAULT_KB_UNSEEN, fpr: ctx.o.fpr });
  const prev = r.group.existing;
  const history = ((prev?.extra?.history as unknown[]) ?? []).concat(r.historyEntry ? [r.historyEntry] : []);
  const sc = r.servedScores;
  return {
    id: r.group.id,
    attrs: r.fallback ? {} : r.group.attrs,
    ...r.model,
    parent: r.parent,
    metrics: { accuracy: sc.accuracy, micro_precision: sc.micro_precision, macro_f1: sc.macro_f1, heldout: sc.n },
    ...calibratedFields(cal, r.fallback),
    samples: r.train.length + r.heldout.length,
    updated_round: r.updatedRound,
    fallback: r.fallback,
    created_at: prev?.created_at ?? ctx.now,
    updated_at: ctx.now,
    extra: { ...(prev?.extra ?? {}), history, ...(r.trainer ? { trainer: r.trainer } : {}), shares_fallback: r.shares },
  };
}
