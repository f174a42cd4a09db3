// The trainer plug-in contract (--trainer-cmd CMD), for models the built-in trainer cannot make.
// For each task the learner writes a dataset directory and runs CMD through /bin/sh with
//   env  SEDNA_LL_TASK_DIR  dataset dir: train.jsonl, heldout.jsonl ({"x":[...],"label":"..."}
//                           per line, x already in model input space) and meta.json (task, kind,
//                           labels, dim, input_shape [C,H,W] or null, preprocessing, seed, parent)
//        SEDNA_LL_OUT_DIR   where CMD must write model.onnx and metrics.json
//        SEDNA_LL_PARENT_MODEL  the parent task's model.onnx (empty: no parent)
//        SEDNA_LL_TASK      the task id
//   args $1 = task dir, $2 = out dir, $3 = parent model path (or "")
// The model takes [N, dim] (or [N, C, H, W] when input_shape is given) float32 and outputs
// [N, labels.length] probabilities or logits (metrics.json may say {"output_kind":"logits"}). The
// learner scores it itself on the held-out set; the plug-in's own metrics are only recorded.
// CMD runs at most timeoutMs (then its process group is killed and the round fails: nothing is
// published, as for a non-zero exit or a missing / unloadable model).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Preprocessing } from '../format/index-manifest.js';

export interface PluginTask {
  task: string;
  kind: 'new' | 'update' | 'global';
  labels: string[];
  dim: number;
  /** [C, H, W] of a sample when the inputs are images */
  inputShape: number[] | null;
  preprocessing: Preprocessing;
  seed: number;
  parent: string | null;
  train: { x: Float32Array; label: string }[];
  heldout: { x: Float32Array; label: string }[];
  parentModel: Buffer | null;
}

export interface PluginResult {
  model: Buffer;
  metrics: Record<string, unknown>;
  ms: number;
}

const lines = (rows: { x: Float32Array; label: string }[]) => rows.map((r) => JSON.stringify({ x: Array.from(r.x), label: r.label })).join('\n') + (rows.length ? '\n' : '');

export const DEFAULT_PLUGIN_TIMEOUT_MS = 3_600_000;

export async function runPlugin(cmd: string, workDir: string, t: PluginTask, timeoutMs = DEFAULT_PLUGIN_TIMEOUT_MS): Promise<PluginResult> {
  const dir = join(workDir, t.task, 'data');
  const out = join(workDir, t.task, 'out');
  mkdirSync(dir, { recursive: true });
  mkdirSync(out, { recursive: true });
  writeFileSync(join(dir, 'train.jsonl'), lines(t.train));
  writeFileSync(join(dir, 'heldout.jsonl'), lines(t.heldout));
  writeFileSync(join(dir, 'meta.json'), JSON.stringify({ task: t.task, kind: t.kind, labels: t.labels, dim: t.dim, input_shape: t.inputShape, preprocessing: t.preprocessing, seed: t.seed, parent: t.parent }, null, 2));
  let parentPath = '';
  if (t.parentModel) {
    parentPath = join(workDir, t.task, 'parent.onnx');
    writeFileSync(parentPath, t.parentModel);
  }
  const t0 = performance.now();
  const stderr: Buffer[] = [];
  let timedOut = false;
  const code = await new Promise<number>((resolve, reject) => {
    // its own process group, so a time-out kills the trainer's children too
    const p = spawn('/bin/sh', ['-c', `${cmd} "$@"`, 'sedna-ll-trainer', dir, out, parentPath], {
      env: { ...process.env, SEDNA_LL_TASK_DIR: dir, SEDNA_LL_OUT_DIR: out, SEDNA_LL_PARENT_MODEL: parentPath, SEDNA_LL_TASK: t.task },
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    });
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-p.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }, timeoutMs);
    p.stderr.on('data', (c: Buffer) => stderr.push(c));
    p.on('error', (e) => (clearTimeout(timer), reject(e)));
    p.on('close', (c, sig) => (clearTimeout(timer), resolve(c ?? (sig ? 128 : 1))));
  });
  const ms = performance.now() - t0;
  const errLine = Buffer.concat(stderr).toString('utf8').trim().split('\n').pop() ?? '';
  if (timedOut) throw new Error(`--trainer-cmd for task ${t.task} ran over its time limit of ${Math.round(timeoutMs / 1000)} s and was killed`);
  if (code !== 0) throw new Error(`--trainer-cmd failed for task ${t.task} (exit ${code})${errLine ? `: ${errLine}` : ''}`);
  const modelPath = join(out, 'model.onnx');
  if (!existsSync(modelPath)) throw new Error(`--trainer-cmd wrote no model.onnx for task ${t.task} (in ${out})`);
  let metrics: Record<string, unknown> = {};
  const mp = join(out, 'metrics.json');
  if (!existsSync(mp)) throw new Error(`--trainer-cmd wrote no metrics.json for task ${t.task} (in ${out})`);
  try {
    metrics = JSON.parse(readFileSync(mp, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`--trainer-cmd: ${mp}: not valid JSON: ${(e as Error).message}`);
  }
  return { model: readFileSync(modelPath), metrics, ms };
}
