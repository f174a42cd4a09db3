// A model loaded for checks and canary computation, and the synthetic inputs used when a task
// has no canary records. Both sides use it: the edge's health check before a version serves
// (rollout/canary.ts checkVersion, via the rollout trial) and the KB when it computes a bundle's
// expected canary outputs (kb/bundle.ts) — one code path, so the KB's expected outputs are what
// the edge will compute. It lives in src/onnx/ (below runtime and kb) because kb must not import
// runtime. onnxruntime-node is loaded lazily (ort.ts loadOrt) on the first load().
//
// run() takes a canary record's x as `infer` takes a sample's x (before the task's
// preprocessing, applied here exactly as the pipeline does, vector-input.ts) and returns the
// first output as probabilities (softmax applied when the model emits logits).
import type * as Ort from 'onnxruntime-node';
import type { TaskEntry } from '../format/index-manifest.js';
import { mulberry32 } from '../random.js';
import { firstLine, loadOrt, ModelLoadError, openSession, type OrtModule } from './ort.js';
import { vectorInput } from './vector-input.js';

function sampleDims(task: TaskEntry): number[] {
  const shape = task.model.inputs[0].shape;
  const dims = shape.slice(1).map((d) => (typeof d === 'number' && d > 0 ? d : NaN));
  if (dims.some((d) => Number.isNaN(d))) throw new Error(`task "${task.id}": input shape [${shape.join(',')}] has a dynamic non-batch dimension`);
  return dims;
}

/** The model input for a raw vector x: exactly the pipeline's preprocessing (runtime/preprocess.ts). */
function preprocessVector(x: ArrayLike<number>, task: TaskEntry, features: number): Float32Array {
  return vectorInput(Float32Array.from(x), task, features);
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
