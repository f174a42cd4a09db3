// Offline bundle (USB stick rollout): a tar.gz holding exactly these entries.
export const BUNDLE_INDEX = 'index.json';
export const BUNDLE_SIG = 'index.json.sig';
export const BUNDLE_CANARY = 'canary.jsonl';
/**
 * The KB's signature over the canary, bound to the version's index (canaryMessage): canary.jsonl
 * is not part of the signed index.json, so without it a tampered canary passed install.
 */
export const BUNDLE_CANARY_SIG = 'canary.jsonl.sig';
export const BUNDLE_MODELS_DIR = 'models/';
/**
 * The KB's signing-key chain, {"transitions": [...]} as GET /v1/keys serves it (only in bundles of
 * a KB that rotated its key): an edge offline through a rotation adopts the new key from the
 * bundle, checked exactly as at sync (store/trusted-keys.ts offeredTrust). Written first.
 */
export const BUNDLE_KEYS = 'keys.json';

/** One canary line: an input and the output the version must reproduce. */
export interface CanaryRecord {
  task: string;
  x: number[];
  attrs?: Record<string, string>;
  /** expected probabilities (first model output) */
  expected: number[];
}
