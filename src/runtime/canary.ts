// Health check of a KB version before it serves: every model loads with onnxruntime-node and
// has the index's input/output, the canary records (canary.jsonl) reproduce their expected
// outputs within a tolerance, and one-sample latency is sane. Used by the trial (activation,
// `model activate --dry-run`) and by the KB when it computes canary outputs for a bundle.
//
// A canary record's x is what `infer` takes as a sample's x (before the task's preprocessing,
// which is applied here exactly as the pipeline does); expected is the first output as
// probabilities (softmax applied when the model emits logits).
import { join } from 'node:path';
import type * as Ort from 'onnxruntime-node';
import type { CanaryRecord } from '../format/bundle-layout.js';
import type { TaskEntry, TaskIndex } from '../format/index-manifest.js';
import { mulberry32 } from '../format/onnx-writer.js';
import { inputFor } from './preprocess.js';
import { firstLine, loadOrt, ModelLoadError, openSession, type OrtModule } from '../onnx/ort.js';
import type { Sample } from './sample.js';

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

function sampleDims(task: TaskEntry): number[] {
  const shape = task.model.inputs[0].shape;
  const dims = shape.slice(1).map((d) => (typeof d === 'number' && d > 0 ? d : NaN));
  if (dims.some((d) => Number.isNaN(d))) throw new Error(`task "${task.id}": input shape [${shape.join(',')}] has a dynamic non-batch dimension`);
  return dims;
}

/** The model input for a raw vector x: exactly the pipeline's preprocessing (preprocess.ts). */
export function preprocessVector(x: ArrayLike<number>, task: TaskEntry, features: number): Float32Array {
  const vec = Float32Array.from(x);
  const s: Sample = { where: 'canary', id: 0, attrs: {}, task: task.id, vec, image: null, payloadKind: 'f32', payload: () => Buffer.from(vec.buffer) };
  return inputFor(s, task, features);
}

function softmaxRow(v: Float32Array | number[]): number[] {
  let max = -Infinity;
  for (const x of v) if (x > max) max = x;
  const e = Array.from(v, (x) => Math.exp(x - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

/** A loaded model for checks and canary computation; release() when done. */
export class CheckedModel {
  private constructor(
    readonly task: TaskEntry,
    private readonly o: OrtModule,
    private readonly session: Ort.InferenceSession,
    readonly dims: number[],
  ) {}

  static async load(file: string, task: TaskEntry): Promise<CheckedModel> {
    const o = await loadOrt();
    let session: Ort.InferenceSession;
    try {
      session = await openSession(file, file);
    } catch (e) {
      throw new Error(`task "${task.id}": model ${task.model.sha256.slice(0, 12)}… does not load: ${e instanceof ModelLoadError ? e.reason : firstLine(e)}`);
    }
    const inName = task.model.inputs[0].name;
    const outName = task.model.outputs[0].name;
    if (!session.inputNames.includes(inName) || !session.outputNames.includes(outName)) {
      await session.release().catch(() => {});
      throw new Error(`task "${task.id}": model has inputs [${session.inputNames}] / outputs [${session.outputNames}], index.json names "${inName}" / "${outName}"`);
    }
    return new CheckedModel(task, o, session, sampleDims(task));
  }

  get features(): number {
    return this.dims.reduce((a, b) => a * b, 1);
  }

  /** Run raw inputs (before preprocessing); returns the first output per row as probabilities. */
  async run(xs: ArrayLike<number>[]): Promise<number[][]> {
    const f = this.features;
    const data = new Float32Array(xs.length * f);
    xs.forEach((x, i) => {
      if (x.length !== f) throw new Error(`task "${this.task.id}": canary x has ${x.length} values, the model takes ${f}`);
      data.set(preprocessVector(x, this.task, f), i * f);
    });
    const feeds = { [this.task.model.inputs[0].name]: new this.o.Tensor('float32', data, [xs.length, ...this.dims]) };
    const res = await this.session.run(feeds);
    const out = res[this.task.model.outputs[0].name];
    const vals = out.data as Float32Array;
    const per = vals.length / xs.length;
    const rows: number[][] = [];
    for (let i = 0; i < xs.length; i++) {
      const row = vals.subarray(i * per, (i + 1) * per);
      rows.push(this.task.model.output_kind === 'logits' ? softmaxRow(row) : Array.from(row));
    }
    return rows;
  }

  async release(): Promise<void> {
    await this.session.release().catch(() => {});
  }
}

/** Deterministic inputs of the task's shape (when a task has no canary records). */
export function syntheticInputs(task: TaskEntry, n: number, seed = 7): number[][] {
  const f = sampleDims(task).reduce((a, b) => a * b, 1);
  const rand = mulberry32(seed);
  return Array.from({ length: n }, () => Array.from({ length: f }, () => rand()));
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
