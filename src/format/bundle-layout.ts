// Offline bundle (USB stick rollout): a tar.gz holding exactly these entries.
export const BUNDLE_INDEX = 'index.json';
export const BUNDLE_SIG = 'index.json.sig';
export const BUNDLE_CANARY = 'canary.jsonl';
export const BUNDLE_MODELS_DIR = 'models/';

/** One canary line: an input and the output the version must reproduce. */
export interface CanaryRecord {
  task: string;
  x: number[];
  attrs?: Record<string, string>;
  /** expected probabilities (first model output) */
  expected: number[];
}
