// Unseen-task detection: does this sample belong to a task the KB does not know yet?
// Methods (index `unseen.methods`), each scoring the sample and answering fires / does not
// fire / does not apply:
//   attr        the sample's attribute key named no task (see allocate.ts)
//   confidence  max p < t
//   entropy     normalised entropy H(p) / ln K > t
//   distance    euclidean distance to the task's centroid > t (thresholds.distance, else its
//               radius); a sample that nearest-centroid allocation refused (farther than every
//               centroid's extent) fires with the distance to the nearest centroid
//   features    Mahalanobis distance of the model's penultimate features to the task's class
//               means (format/feature-distance.ts) > thresholds.features; needs the task's
//               feature statistics and the model's "features" output
// combine "any": some method fired; "all": every applicable method fired (and at least one
// applied). A task's own thresholds (index tasks[].thresholds) override the index-wide ones.
// The verdict carries every applicable method's score (`unseen_scores` of infer's lines), so an
// operator can see why a sample was, or was not, flagged.
import { FeatureDistance } from '../format/feature-distance.js';
import type { TaskEntry, UnseenConfig, UnseenMethod } from '../format/index-manifest.js';
import { normalisedEntropy, top2 } from './filters.js';
import { sqDistance } from '../format/allocate.js';

export interface UnseenInput {
  unknownAttr: boolean;
  /** class probabilities (empty for detection outputs: confidence/entropy do not apply) */
  probs: ArrayLike<number>;
  /** the sample in the task's input space; needed only for "distance" */
  x: () => Float32Array;
  /** allocation refused the nearest centroid's task: the distance to it */
  farDistance?: number | null;
  /** the model's "features" output for this sample (null: not fetched / not declared) */
  features?: ArrayLike<number> | null;
}

/** score per applied method: attr as true when it fired, the others as numbers */
export type UnseenScores = Partial<Record<UnseenMethod, number | boolean>>;

export interface UnseenVerdict {
  unseen: boolean;
  /** the methods that fired, joined with "+" (e.g. "attr", "confidence+entropy") */
  reason: string | null;
  /** what each applicable method measured (null: none applied) */
  scores: UnseenScores | null;
}

interface MethodResult {
  score: number | boolean;
  fires: boolean;
}

const distances = new WeakMap<TaskEntry, FeatureDistance | null>();

/** The task's feature metric, decoded once per index entry (null: the task has no statistics). */
export function featureDistanceOf(task: TaskEntry): FeatureDistance | null {
  let fd = distances.get(task);
  if (fd === undefined) distances.set(task, (fd = task.features ? new FeatureDistance(task.features) : null));
  return fd;
}

/** Does the "features" method need the model's features output for this task? */
export function wantsFeatures(cfg: UnseenConfig, task: TaskEntry): boolean {
  return cfg.methods.includes('features') && !!task.features && task.thresholds?.features !== undefined;
}

export function methodScore(m: UnseenMethod, cfg: UnseenConfig, task: TaskEntry, s: UnseenInput): MethodResult | null {
  switch (m) {
    case 'attr':
      return { score: s.unknownAttr, fires: s.unknownAttr };
    case 'confidence': {
      const t = task.thresholds?.confidence ?? cfg.confidence;
      if (t === undefined || s.probs.length === 0) return null;
      const p1 = top2(s.probs).p1;
      return { score: p1, fires: p1 < t };
    }
    case 'entropy': {
      const t = task.thresholds?.entropy ?? cfg.entropy;
      if (t === undefined || s.probs.length === 0) return null;
      const h = normalisedEntropy(s.probs);
      return { score: h, fires: h > t };
    }
    case 'distance': {
      if (s.farDistance !== undefined && s.farDistance !== null) return { score: s.farDistance, fires: true };
      const t = task.thresholds?.distance ?? task.radius;
      if (!task.centroid || t === undefined) return null;
      const d = Math.sqrt(sqDistance(s.x(), task.centroid));
      return { score: d, fires: d > t };
    }
    case 'features': {
      const t = task.thresholds?.features;
      const fd = featureDistanceOf(task);
      if (t === undefined || !fd || !s.features) return null;
      const d = fd.score(s.features);
      return { score: d, fires: d > t };
    }
  }
}

/** Kept for callers that only need the yes/no of one method. */
export function methodFires(m: UnseenMethod, cfg: UnseenConfig, task: TaskEntry, s: UnseenInput): boolean | null {
  const r = methodScore(m, cfg, task, s);
  return r === null ? null : r.fires;
}

export function detectUnseen(cfg: UnseenConfig, task: TaskEntry, s: UnseenInput): UnseenVerdict {
  const fired: string[] = [];
  let applied = 0;
  let missed = false;
  let scores: UnseenScores | null = null;
  for (const m of cfg.methods) {
    const r = methodScore(m, cfg, task, s);
    if (r === null) continue;
    applied++;
    // attr is a fact, not a measurement: shown only when it fired
    if (m !== 'attr' || r.fires) (scores ??= {})[m] = typeof r.score === 'number' ? Math.round(r.score * 1e6) / 1e6 : r.score;
    if (r.fires) fired.push(m);
    else missed = true;
  }
  const unseen = applied > 0 && fired.length > 0 && !(cfg.combine === 'all' && missed);
  return { unseen, reason: unseen ? fired.join('+') : null, scores };
}
