// Types shared by the learning round (round.ts) and the training of its candidates
// (candidates.ts): the round's options, the groups task definition makes, and the candidate
// models a round trains.
import { createHash } from 'node:crypto';
import type { TaskRecord } from '../kb/store.js';
import type { ArchRequest, ImageShape } from './arch-choice.js';
import type { LoadedSample } from './dataset.js';
import type { GateConfig } from './gate.js';

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
  /** time limit of one --trainer-cmd run (default 1 h) */
  trainerTimeoutMs?: number;
  threads?: number;
  /** largest k tried when clustering samples without attributes */
  kMax: number;
  /** channel the new version goes to (null: publish without moving a channel) */
  channel: string | null;
  /** attribute keys that define tasks (default: the last version's, else ["site"]) */
  attrKeys?: string[];
  /** progress lines (stderr on a TTY) */
  log?: (msg: string) => void;
}

/** Stable pseudo-random rank of a sample id (held-out split, validation split). */
export function idRank(seed: number | string, id: string): number {
  return createHash('sha256').update(`${seed}:${id}`).digest().readUInt32BE(0);
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
