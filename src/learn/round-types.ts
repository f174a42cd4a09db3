// Types shared by the learning round (round.ts) and the training of its candidates
// (candidates.ts): the round's options, the groups task definition makes, and the candidate
// models a round trains.
import { createHash } from 'node:crypto';
import type { Preprocessing } from '../format/index-manifest.js';
import type { TaskRecord } from '../kb/store.js';
import type { ArchRequest, ImageShape } from './arch-choice.js';
import type { LoadedSample } from './dataset.js';
import type { GateConfig } from './gate.js';
import type { Scores } from './metrics.js';
import type { ScoringModel } from './models.js';
import type { PairedResult } from './paired.js';
import type { Split } from './round-split.js';

/** id of the shared fallback task a round creates */
export const GLOBAL_TASK = 'global';
import type { UnseenRequest } from './unseen-settings.js';
import type { UnseenConfig } from '../format/index-manifest.js';

export interface RoundOptions {
  /** a group becomes a task at >= this many labelled samples (Sedna MIN_TRAIN_SAMPLE) */
  minSamples: number;
  /** auto: cnn for images ([C,H,W] inputs), else mlp (arch-choice.ts) */
  arch: ArchRequest;
  hidden: number[];
  /** [C, H, W] of a sample for the cnn (default: from the preprocessing or a task's model) */
  inputShape?: ImageShape | null;
  /** output channels of the cnn's conv blocks (default [8, 16]) */
  filters?: number[];
  epochs: number;
  seed: number;
  optimizer?: 'adam' | 'sgd';
  lr?: number;
  batchSize?: number;
  patience?: number;
  l2?: number;
  gate: GateConfig;
  /** share of each task's labelled samples held out for the gate and calibration */
  heldoutFraction: number;
  /** target false-positive rate of the calibrated radius and thresholds */
  fpr: number;
  trainerCmd?: string | null;
  /** images over this many pixels are skipped before decoding (default 16 M) */
  maxPixels?: number;
  /** resize image samples of another size than the KB's image preprocessing (default: skip them) */
  resizeImages?: boolean;
  /** time limit of one --trainer-cmd run (default 1 h) */
  trainerTimeoutMs?: number;
  threads?: number;
  /** largest k tried when clustering samples without attributes */
  kMax: number;
  /** channel the new version goes to (null: publish without moving a channel) */
  channel: string | null;
  /** attribute keys that define tasks (default: the last version's, else ["site"]) */
  attrKeys?: string[];
  /** unseen-detection settings asked for this round (kept in the KB for later rounds) */
  unseen?: UnseenRequest;
  /** the settings in force (resolved by runRound from the request, the KB and the last index); tasks are calibrated for them */
  unseenConfig?: UnseenConfig;
  /** progress lines (stderr on a TTY) */
  log?: (msg: string) => void;
}

/** Stable pseudo-random rank of a string (task seeds). */
export function idRank(seed: number | string, id: string): number {
  return createHash('sha256').update(`${seed}:${id}`).digest().readUInt32BE(0);
}

/**
 * Stable pseudo-random rank of a sample from its content (payload sha256) and its site: the
 * held-out and validation splits. Not from its id: edge ids are time-based (UUIDv7), and the
 * same data must give the same splits on a rerun.
 */
export function contentRank(seed: number | string, s: LoadedSample, site: string): number {
  return idRank(seed, `${site}:${s.rec.payload_sha}`);
}

export interface Group {
  id: string;
  attrs: Record<string, string>;
  members: LoadedSample[];
  existing: TaskRecord | null;
}

export interface Candidate {
  group: Group;
  kind: 'new' | 'update';
  fallback: boolean;
  parent: string | null;
  relation?: { by: 'score' | 'centroid' | 'none'; scores: Record<string, number> };
  train: LoadedSample[];
  heldout: LoadedSample[];
  fresh: number;
}

export interface ClusterReport {
  pool: number;
  k: number;
  silhouettes: Record<number, number>;
  /** why k was chosen */
  why: string;
}

/**
 * A site the fallback serves and nothing trains this round: a task whose entry points at the
 * fallback's model (group.existing), or a group too small to be a task (group.existing null).
 * It follows a new fallback unless that is significantly worse on its held-out set.
 */
export interface Repoint {
  group: Group;
  train: LoadedSample[];
  heldout: LoadedSample[];
}

/** What every step of a round's plan reads (nothing in it writes to the store). */
export interface PlanCtx {
  o: RoundOptions;
  round: number;
  /** the KB's label set (sorted), the input dimension and preprocessing of this round's models */
  labels: string[];
  dim: number;
  P: Preprocessing;
  input: (s: LoadedSample) => Float32Array;
  tasks: TaskRecord[];
  taskById: Map<string, TaskRecord>;
  currentGlobal: TaskRecord | null;
  split: Map<LoadedSample, Split>;
  /** a task's current model, loaded once per round */
  modelOf: (t: TaskRecord) => Promise<ScoringModel>;
  log: (msg: string) => void;
  now: number;
}

export interface TaskOutcome {
  task: string;
  /** new: first model of an unseen group; update: seen task with new samples; unchanged: not trained */
  kind: 'new' | 'update' | 'unchanged';
  fallback: boolean;
  parent: string | null;
  /** how the parent was chosen, with the candidates' accuracy on the new task's training samples */
  relation?: { by: 'score' | 'centroid' | 'none'; scores: Record<string, number> };
  accepted: boolean | null;
  reason: string;
  /** held-out scores before (current model; for a new task: the fallback) and of the candidate */
  before: Scores | null;
  after: Scores | null;
  samples: { train: number; heldout: number; new: number };
  epochs: number | null;
  bestEpoch: number | null;
  trainMs: number | null;
  warmStart: boolean | null;
  model_sha: string | null;
  /** accept: significant gain; keep: within noise, the incumbent stays; reject: significant loss */
  verdict?: 'accept' | 'keep' | 'reject';
  /** the paired test of the decision (n, both accuracies, p-value) */
  test?: PairedResult | null;
  /** the site stays on the model that served it before: the new fallback is significantly worse there */
  pinned?: { model_sha: string; from: string; reason: string; test: PairedResult };
}
