// The eval gate: the rule that keeps lifelong learning free of forgetting and of churn. A
// candidate is compared with the incumbent (the model that serves the task now: its current
// model, or the fallback) on the SAME held-out samples of that task, by a paired test
// (paired.ts): a significant gain is accepted, a significant loss rejected, and a difference
// within noise keeps the incumbent (no new model, nothing to download). Every decision carries
// n, both accuracies, the test and its p-value, so it can be reported.
import type { MetricName } from './metrics.js';
import { describePaired, pairedCompare, type PairedResult } from './paired.js';

export interface GateConfig {
  /** reported next to the test; a gain must not lower it either */
  metric: MetricName;
  /** significance level of the paired test (two-sided) */
  alpha: number;
}

export const DEFAULT_GATE: GateConfig = { metric: 'accuracy', alpha: 0.05 };

/** accept: significant gain; keep: no significant difference (the incumbent stays); reject: significant loss */
export type GateVerdict = 'accept' | 'keep' | 'reject';

export interface GateDecision {
  accepted: boolean;
  verdict: GateVerdict;
  metric: MetricName;
  candidate: number;
  /** the incumbent's value of the metric; null: nothing to compare with */
  baseline: number | null;
  against: 'current' | 'fallback' | 'none';
  test: PairedResult | null;
  reason: string;
}

/** Per-sample results of one model on a held-out set. */
export interface Graded {
  right: boolean[];
  metric: number;
}

const AGAINST = { current: 'current model', fallback: 'fallback model' } as const;

export function gateDecide(cfg: GateConfig, candidate: Graded, incumbent: Graded | null, against: 'current' | 'fallback'): GateDecision {
  if (!incumbent) {
    return { accepted: true, verdict: 'accept', metric: cfg.metric, candidate: candidate.metric, baseline: null, against: 'none', test: null, reason: 'no model to compare with' };
  }
  const test = pairedCompare(incumbent.right, candidate.right, cfg.alpha);
  let verdict: GateVerdict = test.verdict === 'gain' ? 'accept' : test.verdict === 'loss' ? 'reject' : 'keep';
  let why = describePaired(test);
  // a gain in accuracy that lowers the configured metric (e.g. macro F1 on a minority class) is no gain
  if (verdict === 'accept' && cfg.metric !== 'accuracy' && candidate.metric < incumbent.metric - 1e-12) {
    verdict = 'keep';
    why += `; but ${cfg.metric} ${candidate.metric.toFixed(4)} < ${incumbent.metric.toFixed(4)}`;
  }
  const m = AGAINST[against];
  const what = { accept: `significant gain over the ${m}`, keep: `within noise of the ${m}, which stays`, reject: `significant loss against the ${m}` }[verdict];
  return { accepted: verdict === 'accept', verdict, metric: cfg.metric, candidate: candidate.metric, baseline: incumbent.metric, against, test, reason: `${what}: ${why}` };
}

export function parseAlpha(s: string): number {
  const v = Number(s);
  if (!(v > 0 && v < 0.5)) throw new Error(`--gate-alpha "${s}": expected a significance level between 0 and 0.5, e.g. 0.05`);
  return v;
}
