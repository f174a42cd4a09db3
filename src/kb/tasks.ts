// Registering a task model in the KB (`kb task add`): the ONNX file goes into the blob store
// after onnx/ort.ts `inspectModel`, the admission check `task add` on the edge uses too, so a
// model an edge would refuse (not loadable, not float32, two inputs, dynamic feature dims) never
// gets into the KB. Its probe run also gives the class count and the output kind.
import { readFileSync } from 'node:fs';
import { normaliseAttrs } from '../format/attrs.js';
import { UsageError } from '../errors.js';
import type { Preprocessing } from '../format/index-manifest.js';
import { imageShapeMismatch } from '../format/image-model-shape.js';
import { inspectModel } from '../onnx/ort.js';
import type { CounterStore, ModelStore, TaskRecord } from './store.js';

export const TASK_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

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
export async function addTaskModel(store: ModelStore & CounterStore, o: AddTaskOptions): Promise<TaskRecord> {
  if (!TASK_ID_RE.test(o.id)) throw new UsageError(`--task "${o.id}": expected 1-128 characters of A-Z a-z 0-9 . _ : - (not starting with . _ : -)`);
  let bytes: Buffer;
  try {
    bytes = readFileSync(o.modelPath);
  } catch (e) {
    throw new UsageError(`${o.modelPath}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const io = await inspectModel(bytes, o.modelPath);
  const out = io.outputs[0];
  let labels = o.labels;
  if (labels && labels.length !== io.classes) {
    throw new UsageError(`--labels: ${labels.length} labels given but ${o.modelPath} output "${out.name}" has ${io.classes} classes`);
  }
  labels ??= Array.from({ length: io.classes }, (_, i) => String(i));
  const prev = await store.getTask(o.id);
  const preprocessing = o.preprocessing ?? prev?.preprocessing ?? { kind: 'vector' as const };
  const misfit = imageShapeMismatch(preprocessing, io.inputs[0].shape);
  if (misfit) throw new UsageError(`${o.modelPath}: ${misfit}`);
  const { sha256, size } = await store.blobs.put(bytes);
  const now = Date.now();
  const t: TaskRecord = {
    id: o.id,
    attrs: normaliseAttrs(o.attrs ?? prev?.attrs ?? {}),
    model_sha: sha256,
    model_size: size,
    inputs: io.inputs,
    outputs: io.outputs,
    labels,
    preprocessing,
    // what the probe run saw, not a guess from the output's name
    output_kind: o.outputKind ?? io.outputKind,
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
