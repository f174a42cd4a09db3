// Unseen-task detection: does this sample belong to a task the KB does not know yet?
// Methods (index `unseen.methods`), each answering true / false / null (does not apply):
//   attr        the sample's attribute key named no task (see allocate.ts)
//   confidence  max p < t
//   entropy     normalised entropy H(p) / ln K > t
//   distance    euclidean distance to the allocated task's centroid > that task's radius
//               (null when the task has no centroid or radius)
// combine "any": some method fired; "all": every applicable method fired (and at least one
// applied). A task's own thresholds (index tasks[].thresholds) override the index-wide ones.
import type { TaskEntry, UnseenConfig, UnseenMethod } from '../format/index-manifest.js';
import { normalisedEntropy, top2 } from './filters.js';
import { sqDistance } from './allocate.js';

export interface UnseenInput {
  unknownAttr: boolean;
  /** class probabilities (empty for detection outputs: confidence/entropy do not apply) */
  probs: ArrayLike<number>;
  /** the sample in the task's input space; needed only for "distance" */
  x: () => Float32Array;
}

export interface UnseenVerdict {
  unseen: boolean;
  /** the methods that fired, joined with "+" (e.g. "attr", "confidence+entropy") */
  reason: string | null;
}

const NOT_UNSEEN: UnseenVerdict = { unseen: false, reason: null };

export function methodFires(m: UnseenMethod, cfg: UnseenConfig, task: TaskEntry, s: UnseenInput): boolean | null {
  switch (m) {
    case 'attr':
      return s.unknownAttr;
    case 'confidence': {
      const t = task.thresholds?.confidence ?? cfg.confidence;
      if (t === undefined || s.probs.length === 0) return null;
      return top2(s.probs).p1 < t;
    }
    case 'entropy': {
      const t = task.thresholds?.entropy ?? cfg.entropy;
      if (t === undefined || s.probs.length === 0) return null;
      return normalisedEntropy(s.probs) > t;
    }
    case 'distance': {
      if (!task.centroid || task.radius === undefined) return null;
      return Math.sqrt(sqDistance(s.x(), task.centroid)) > task.radius;
    }
  }
}

export function detectUnseen(cfg: UnseenConfig, task: TaskEntry, s: UnseenInput): UnseenVerdict {
  const fired: string[] = [];
  let applied = 0;
  for (const m of cfg.methods) {
    const r = methodFires(m, cfg, task, s);
    if (r === null) continue;
    applied++;
    if (r) fired.push(m);
    else if (cfg.combine === 'all') return NOT_UNSEEN;
  }
  if (fired.length === 0 || applied === 0) return NOT_UNSEEN;
  return { unseen: true, reason: fired.join('+') };
}
