// A task's current model as the learner uses it: scored on raw samples (its own preprocessing
// applied) by our forward pass when the ONNX is a dense chain, else by onnxruntime-node (lazily
// loaded through onnx/ort.ts), e.g. for models a --trainer-cmd plug-in or `kb task add` brought in.
import type { ModelStore, TaskRecord } from '../kb/store.js';
import type { Preprocessing } from '../format/index-manifest.js';
import { forwardRows, predictProba } from './dense.js';
import { cnnPredict } from './cnn.js';
import { readCnnOnnx, type ReadCnn } from './cnn-onnx.js';
import { preprocess } from './dataset.js';
import { readDenseOnnx, type ReadModel } from '../onnx/reader.js';
import { openSession, runRows, type OrtSession } from '../onnx/ort.js';

export interface ScoringModel {
  labels: string[];
  preprocessing: Preprocessing;
  dense: ReadModel | null;
  /** the model as the built-in CNN, when it is one (scored and transferred without onnxruntime) */
  cnn: ReadCnn | null;
  bytes: Buffer;
  /** class probabilities for rows of raw features (n x labels.length) */
  predict(raw: Float32Array[]): Promise<Float32Array>;
  /**
   * the model's "features" output (last hidden layer) for raw rows, n x dim; null when the
   * model declares no such output (external graphs, softmax regression, older exports)
   */
  features(raw: Float32Array[]): { output: string; dim: number; F: Float32Array } | null;
}

export async function readBlob(store: Pick<ModelStore, 'blobs'>, sha: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await store.blobs.get(sha)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export function stack(rows: Float32Array[], d: number): Float32Array {
  const X = new Float32Array(rows.length * d);
  rows.forEach((r, i) => X.set(r.subarray(0, d), i * d));
  return X;
}

export function modelFromBytes(bytes: Buffer, meta: { labels: string[]; preprocessing: Preprocessing; output_kind: 'probabilities' | 'logits'; inputName?: string; outputName?: string }): ScoringModel {
  const dense = readDenseOnnx(bytes);
  const cnn = dense ? null : readCnnOnnx(bytes);
  const k = meta.labels.length;
  let session: Promise<OrtSession> | null = null;
  return {
    labels: meta.labels,
    preprocessing: meta.preprocessing,
    dense,
    cnn,
    bytes,
    async predict(raw: Float32Array[]): Promise<Float32Array> {
      const rows = raw.map((r) => preprocess(r, meta.preprocessing));
      const n = rows.length;
      if (n === 0) return new Float32Array(0);
      if (dense) {
        const d = dense.net.layers[0].inDim;
        for (const r of rows) if (r.length !== d) throw new Error(`model expects ${d} features, a sample has ${r.length}`);
        const P = predictProba(dense.net, stack(rows, d), n);
        return P;
      }
      if (cnn) {
        const [c, h, w] = cnn.net.shape;
        for (const r of rows) if (r.length !== c * h * w) throw new Error(`model expects ${c}x${h}x${w} = ${c * h * w} values, a sample has ${r.length}`);
        return cnnPredict(cnn.net, stack(rows, c * h * w), n);
      }
      session ??= openSession(bytes, 'model');
      const s = await session;
      const d = rows[0].length;
      const inName = meta.inputName ?? s.inputNames[0];
      const outName = meta.outputName ?? s.outputNames[0];
      const P = await runRows(s, inName, outName, stack(rows, d), [n, ...sampleDims(s, inName, d)]);
      if (P.length !== n * k) throw new Error(`model output has ${P.length / n} values per sample, labels say ${k}`);
      if (meta.output_kind === 'logits') {
        for (let i = 0; i < n; i++) {
          let mx = -Infinity;
          for (let j = 0; j < k; j++) mx = Math.max(mx, P[i * k + j]);
          let s2 = 0;
          for (let j = 0; j < k; j++) s2 += P[i * k + j] = Math.exp(P[i * k + j] - mx);
          for (let j = 0; j < k; j++) P[i * k + j] /= s2;
        }
      }
      return P;
    },
    features(raw: Float32Array[]) {
      if (!dense?.featuresOutput) return null;
      const net = dense.net;
      const d = net.layers[0].inDim;
      const rows = raw.map((r) => preprocess(r, meta.preprocessing));
      for (const r of rows) if (r.length !== d) throw new Error(`model expects ${d} features, a sample has ${r.length}`);
      const F = forwardRows(net, stack(rows, d), rows.length).features!;
      return { output: dense.featuresOutput, dim: net.layers[net.layers.length - 2].outDim, F };
    },
  };
}

/** The fixed per-sample dims of a session's input when they hold d values (e.g. [1, 28, 28]), else [d]. */
function sampleDims(s: OrtSession, name: string, d: number): number[] {
  const meta = (s.inputMetadata as unknown as { name: string; isTensor: boolean; shape?: (number | string)[] }[]).find((m) => m.name === name);
  const dims = meta?.isTensor && meta.shape ? meta.shape.slice(1) : [];
  if (dims.length > 1 && dims.every((x) => typeof x === 'number' && x > 0) && (dims as number[]).reduce((a, b) => a * b, 1) === d) return dims as number[];
  return [d];
}

export async function loadTaskModel(store: Pick<ModelStore, 'blobs'>, t: TaskRecord): Promise<ScoringModel> {
  const bytes = await readBlob(store, t.model_sha);
  return modelFromBytes(bytes, { labels: t.labels, preprocessing: t.preprocessing, output_kind: t.output_kind, inputName: t.inputs[0]?.name, outputName: t.outputs[0]?.name });
}

/** Predicted label names of a model for raw rows. */
export async function predictLabels(m: ScoringModel, raw: Float32Array[]): Promise<{ labels: string[]; probs: Float32Array }> {
  const P = await m.predict(raw);
  const k = m.labels.length;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i++) {
    let b = 0;
    for (let j = 1; j < k; j++) if (P[i * k + j] > P[i * k + b]) b = j;
    out.push(m.labels[b]);
  }
  return { labels: out, probs: P };
}
