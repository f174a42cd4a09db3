// The eval gate: the rule that keeps lifelong learning free of forgetting. A candidate model
// replaces a task's model only if it is not worse on THAT task's own held-out set; a new
// task's model is accepted only if it beats the fallback (global) model on the new task's
// held-out set. Every decision carries its numbers, so rejections can be reported.
import type { MetricName } from './metrics.js';

export type GateOp = '>=' | '>';

export interface GateConfig {
  metric: MetricName;
  /** update of a known task: accept when candidate <op> current - tolerance */
  updateOp: GateOp;
  updateTolerance: number;
  /** new task: accept when candidate <op> fallback + margin */
  newOp: GateOp;
  newMargin: number;
}

/**
 * Defaults: an update may not lose anything on its own held-out set (>=, tolerance 0: equal is
 * fine, any drop is refused); a new task must be strictly better than the fallback.
 */
export const DEFAULT_GATE: GateConfig = { metric: 'accuracy', updateOp: '>=', updateTolerance: 0, newOp: '>', newMargin: 0 };

export interface GateDecision {
  accepted: boolean;
  metric: MetricName;
  candidate: number;
  /** what it was compared with: the current model (update) or the fallback (new task); null: nothing to compare */
  baseline: number | null;
  against: 'current' | 'fallback' | 'none';
  reason: string;
}

const cmp = (a: number, op: GateOp, b: number) => (op === '>=' ? a >= b - 1e-12 : a > b + 1e-12);
const fmt = (v: number) => v.toFixed(4);

export function gateUpdate(cfg: GateConfig, candidate: number, current: number): GateDecision {
  const bar = current - cfg.updateTolerance;
  const ok = cmp(candidate, cfg.updateOp, bar);
  return {
    accepted: ok,
    metric: cfg.metric,
    candidate,
    baseline: current,
    against: 'current',
    reason: `${cfg.metric} ${fmt(candidate)} ${ok ? '' : 'not '}${cfg.updateOp} ${fmt(current)}${cfg.updateTolerance ? ` - ${cfg.updateTolerance}` : ''} (current model)`,
  };
}

export function gateNew(cfg: GateConfig, candidate: number, fallback: number | null): GateDecision {
  if (fallback === null) {
    return { accepted: true, metric: cfg.metric, candidate, baseline: null, against: 'none', reason: 'no fallback model to compare with' };
  }
  const bar = fallback + cfg.newMargin;
  const ok = cmp(candidate, cfg.newOp, bar);
  return {
    accepted: ok,
    metric: cfg.metric,
    candidate,
    baseline: fallback,
    against: 'fallback',
    reason: `${cfg.metric} ${fmt(candidate)} ${ok ? '' : 'not '}${cfg.newOp} ${fmt(fallback)}${cfg.newMargin ? ` + ${cfg.newMargin}` : ''} (fallback model)`,
  };
}

export function parseGateOp(s: string): GateOp {
  const alias: Record<string, GateOp> = { '>=': '>=', ge: '>=', '>': '>', gt: '>' };
  const op = alias[s];
  if (!op) throw new Error(`gate operator "${s}": expected >= (ge) or > (gt)`);
  return op;
}
