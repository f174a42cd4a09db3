// Registering a task model in the KB (`kb task add`): the ONNX file goes into the blob store,
// its input/output names and shapes come from an onnxruntime-node session (loaded lazily), so a
// model the runtime cannot load never gets into the KB.
import { readFileSync } from 'node:fs';
import { normaliseAttrs } from '../format/attrs.js';
import { CliError, EXIT } from '../format/exit-codes.js';
import type { Preprocessing, TensorSpec } from '../format/index-manifest.js';
import type { KbStore, TaskRecord } from './store.js';

export const TASK_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export interface ModelIo {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

/** Input/output names and shapes of an ONNX model, read by onnxruntime-node. */
export async function readModelIo(bytes: Buffer, what: string): Promise<ModelIo> {
  const ort = (await import('onnxruntime-node')).default;
  let s;
  try {
    s = await ort.InferenceSession.create(bytes);
  } catch (e) {
    throw new CliError(`${what}: not a loadable ONNX model: ${(e as Error).message.split('\n')[0]}`, EXIT.FAILURE);
  }
  try {
    const spec = (m: (typeof s.inputMetadata)[number]): TensorSpec => {
      if (!m.isTensor) throw new CliError(`${what}: ${m.name} is not a tensor`, EXIT.FAILURE);
      if (m.type !== 'float32') throw new CliError(`${what}: ${m.name} has type ${m.type}; only float32 tensors are supported`, EXIT.FAILURE);
      return { name: m.name, shape: m.shape.map((d) => (typeof d === 'number' && d < 0 ? -1 : d)), dtype: 'float32' };
    };
    return { inputs: s.inputMetadata.map(spec), outputs: s.outputMetadata.map(spec) };
  } finally {
    await s.release();
  }
}

export interface AddTaskOptions {
  modelPath: string;
  id: string;
  attrs?: Record<string, string>;
  labels?: string[];
  fallback?: boolean;
  outputKind?: 'probabilities' | 'logits';
  preprocessing?: Preprocessing;
  arch?: string;
}

/** Register (or replace the model of) a task. */
export async function addTaskModel(store: KbStore, o: AddTaskOptions): Promise<TaskRecord> {
  if (!TASK_ID_RE.test(o.id)) throw new CliError(`--task "${o.id}": expected 1-128 characters of A-Z a-z 0-9 . _ : - (not starting with . _ : -)`, EXIT.USAGE);
  let bytes: Buffer;
  try {
    bytes = readFileSync(o.modelPath);
  } catch (e) {
    throw new CliError(`${o.modelPath}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, EXIT.FAILURE);
  }
  const io = await readModelIo(bytes, o.modelPath);
  const out = io.outputs[0];
  const k = out.shape.length ? out.shape[out.shape.length - 1] : undefined;
  let labels = o.labels;
  if (labels && typeof k === 'number' && k > 0 && labels.length !== k) {
    throw new CliError(`--labels: ${labels.length} labels given but ${o.modelPath} output "${out.name}" has ${k} classes`, EXIT.USAGE);
  }
  if (!labels) {
    if (typeof k !== 'number' || k <= 0) throw new CliError(`${o.modelPath}: output "${out.name}" has no fixed class count; pass --labels a,b,c`, EXIT.USAGE);
    labels = Array.from({ length: k }, (_, i) => String(i));
  }
  const { sha256, size } = await store.blobs.put(bytes);
  const now = Date.now();
  const prev = await store.getTask(o.id);
  const t: TaskRecord = {
    id: o.id,
    attrs: normaliseAttrs(o.attrs ?? prev?.attrs ?? {}),
    model_sha: sha256,
    model_size: size,
    inputs: io.inputs,
    outputs: io.outputs,
    labels,
    preprocessing: o.preprocessing ?? prev?.preprocessing ?? { kind: 'vector' },
    output_kind: o.outputKind ?? (out.name.toLowerCase().includes('logit') ? 'logits' : 'probabilities'),
    ...(o.arch ? { arch: o.arch } : {}),
    parent: prev?.parent ?? null,
    metrics: {},
    centroid: prev?.centroid ?? null,
    radius: prev?.radius ?? null,
    thresholds: prev?.thresholds ?? null,
    samples: prev?.samples ?? 0,
    updated_round: prev?.updated_round ?? 0,
    fallback: o.fallback ?? prev?.fallback ?? false,
    created_at: prev?.created_at ?? now,
    updated_at: now,
  };
  // one fallback task at most
  if (t.fallback) {
    for (const other of await store.listTasks({ includeRetired: true })) {
      if (other.id !== t.id && other.fallback) await store.putTask({ ...other, fallback: false, updated_at: now });
    }
  }
  await store.putTask(t);
  await store.logEvent('task_add', { id: t.id, sha: sha256, fallback: t.fallback });
  return t;
}
