// Health check of a KB version before it serves: every model loads with onnxruntime-node and
// has the index's input/output, the canary records (canary.jsonl) reproduce their expected
// outputs within a tolerance, and one-sample latency is sane. Used by the trial (activation,
// `model activate --dry-run`). The loaded model (onnx/checked-model.ts) is the one the KB also
// uses when it computes canary outputs for a bundle.
//
// A canary record's x is what `infer` takes as a sample's x (before the task's preprocessing,
// which is applied exactly as the pipeline does); expected is the first output as
// probabilities (softmax applied when the model emits logits).
import { join } from 'node:path';
import type { CanaryRecord } from './bundle-layout.js';
import type { TaskIndex } from '../format/index-manifest.js';
import { CheckedModel, syntheticInputs } from '../onnx/checked-model.js';

export interface CheckPolicy {
  canary_tolerance: number;
  max_latency_ms: number;
}

export interface CheckReport {
  ok: boolean;
  /** first problem found, one line */
  reason?: string;
  models: { task: string; sha256: string; loaded: boolean; error?: string }[];
  canary: { records: number; max_diff: number; failed: number; tasks_without: string[] };
  /** mean one-sample latency over all timed runs, ms */
  latency_ms: number;
}

/**
 * Check a version whose model files are in modelsDir (models/<sha>.onnx). Never throws for a
 * bad model: the report says what failed.
 */
export async function checkVersion(modelsDir: string, index: TaskIndex, canary: CanaryRecord[], policy: CheckPolicy): Promise<CheckReport> {
  const report: CheckReport = { ok: true, models: [], canary: { records: 0, max_diff: 0, failed: 0, tasks_without: [] }, latency_ms: 0 };
  const fail = (why: string) => {
    if (report.ok) report.reason = why;
    report.ok = false;
  };
  let timedRuns = 0;
  let timedMs = 0;
  for (const task of index.tasks) {
    let m: CheckedModel;
    try {
      m = await CheckedModel.load(join(modelsDir, `${task.model.sha256}.onnx`), task);
      report.models.push({ task: task.id, sha256: task.model.sha256, loaded: true });
    } catch (e) {
      report.models.push({ task: task.id, sha256: task.model.sha256, loaded: false, error: (e as Error).message });
      fail((e as Error).message);
      continue;
    }
    try {
      const recs = canary.filter((r) => r.task === task.id);
      if (recs.length === 0) report.canary.tasks_without.push(task.id);
      const xs = recs.length ? recs.map((r) => r.x) : syntheticInputs(task, 4);
      await m.run([xs[0]]); // warm-up: first run pays for lazy allocations
      for (let i = 0; i < xs.length; i++) {
        const t0 = performance.now();
        const [got] = await m.run([xs[i]]);
        timedMs += performance.now() - t0;
        timedRuns++;
        if (!got.every((v) => Number.isFinite(v))) {
          fail(`task "${task.id}": model output is not finite`);
          break;
        }
        if (task.model.labels.length && got.length !== task.model.labels.length) {
          fail(`task "${task.id}": model outputs ${got.length} values for ${task.model.labels.length} labels`);
          break;
        }
        if (!recs.length) continue;
        report.canary.records++;
        const exp = recs[i].expected;
        if (exp.length !== got.length) {
          report.canary.failed++;
          fail(`task "${task.id}": canary record ${i + 1} expects ${exp.length} outputs, the model gives ${got.length}`);
          continue;
        }
        let d = 0;
        for (let j = 0; j < got.length; j++) d = Math.max(d, Math.abs(got[j] - exp[j]));
        report.canary.max_diff = Math.max(report.canary.max_diff, d);
        if (d > policy.canary_tolerance) {
          report.canary.failed++;
          fail(`task "${task.id}": canary mismatch (record ${i + 1}: max |diff| ${d.toExponential(2)} > tolerance ${policy.canary_tolerance})`);
        }
      }
    } catch (e) {
      fail(`task "${task.id}": ${(e as Error).message.split('\n')[0]}`);
    } finally {
      await m.release();
    }
  }
  report.latency_ms = timedRuns ? timedMs / timedRuns : 0;
  if (report.ok && report.latency_ms > policy.max_latency_ms) {
    fail(`mean one-sample latency ${report.latency_ms.toFixed(1)} ms exceeds max_latency_ms ${policy.max_latency_ms}`);
  }
  return report;
}
