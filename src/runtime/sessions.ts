// ONNX Runtime sessions, one per model file (keyed by sha256, so two tasks or two KB versions
// sharing a model share a session). onnxruntime-node is loaded on first use only: commands
// that never infer must not pay for its native library.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as Ort from 'onnxruntime-node';
import type { TaskEntry } from '../format/index-manifest.js';
import { ReportedError, VerificationError, NotFoundError } from '../errors.js';
import { loadOrt, ModelLoadError, openSession, type OrtModule } from '../onnx/ort.js';

/** A loaded model with what the pipeline needs to feed it. */
export interface ModelSession {
  ort: OrtModule;
  session: Ort.InferenceSession;
  inputName: string;
  outputName: string;
  /** input dims after the batch dim, e.g. [784] or [1, 28, 28] */
  sampleDims: number[];
  /** number of floats per sample */
  features: number;
}

/** Dims of one sample from a TensorSpec shape: every dim after the first must be fixed. */
export function sampleDimsOf(task: TaskEntry): number[] {
  const shape = task.model.inputs[0].shape;
  const dims = shape.slice(1).map((d) => (typeof d === 'number' && d > 0 ? d : NaN));
  if (dims.some((d) => Number.isNaN(d))) {
    throw new ReportedError(`task "${task.id}": model input shape [${shape.join(',')}] has a dynamic non-batch dimension`);
  }
  return dims;
}

/**
 * No spin-waiting in onnxruntime's thread pools: after each run its workers otherwise spin for
 * the next one, and on a 2-4 core gateway they steal the cores the main thread needs for what
 * runs between batches (parsing, filters, the outbox commit). Measured on 2 cores: the outbox
 * commits of a 20k-sample run took 2.7x the CPU with spinning, and inference got no faster.
 */
const SESSION_OPTIONS = {
  graphOptimizationLevel: 'all',
  extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
} as const;

export class SessionCache {
  private readonly sessions = new Map<string, Promise<ModelSession>>();

  /**
   * `intraOpThreads: 1` (serve): each run on the calling thread. A request's batch is a few
   * samples; waking onnxruntime's worker for it (no spinning: a futex wake and wait per run) costs
   * more than the run, and on 2 cores that worker competes with the main thread for a core.
   * Absent: onnxruntime's default (one thread per core), for infer's large windows.
   */
  constructor(
    private readonly modelsDir: string,
    private readonly opts: { intraOpThreads?: number } = {},
  ) {}

  /** The session for a task's model; a missing or corrupt file is a one-line ReportedError. */
  get(task: TaskEntry): Promise<ModelSession> {
    const sha = task.model.sha256;
    let p = this.sessions.get(sha);
    if (!p) {
      p = this.open(task);
      this.sessions.set(sha, p);
      // a failed load is not cached: the file may be restored (e.g. by sync) and retried
      p.catch(() => this.sessions.delete(sha));
    }
    return p;
  }

  has(sha: string): boolean {
    return this.sessions.has(sha);
  }

  private async open(task: TaskEntry): Promise<ModelSession> {
    const file = join(this.modelsDir, `${task.model.sha256}.onnx`);
    if (!existsSync(file)) throw new NotFoundError(`task "${task.id}": model file ${file} is missing`);
    // the bytes loaded are the bytes hashed: a file swapped for another model (same shape,
    // other weights) under this sha256 name is refused, not served
    const bytes = readFileSync(file);
    const got = createHash('sha256').update(bytes).digest('hex');
    if (got !== task.model.sha256) throw new VerificationError(`task "${task.id}": model file ${file} does not match its sha256 (content ${got.slice(0, 12)}…): swapped or corrupt; run "sedna-ll model verify"`);
    const ort = await loadOrt();
    let session: Ort.InferenceSession;
    try {
      session = await openSession(bytes, file, this.opts.intraOpThreads ? { ...SESSION_OPTIONS, intraOpNumThreads: this.opts.intraOpThreads } : SESSION_OPTIONS);
    } catch (e) {
      if (!(e instanceof ModelLoadError)) throw e;
      throw new ReportedError(`task "${task.id}": model file ${file} is not a loadable ONNX model: ${e.reason}`);
    }
    const inputName = task.model.inputs[0].name;
    const outputName = task.model.outputs[0].name;
    if (!session.inputNames.includes(inputName)) {
      throw new ReportedError(`task "${task.id}": model file ${file} has no input "${inputName}" (has ${session.inputNames.join(', ')})`);
    }
    if (!session.outputNames.includes(outputName)) {
      throw new ReportedError(`task "${task.id}": model file ${file} has no output "${outputName}" (has ${session.outputNames.join(', ')})`);
    }
    const sampleDims = sampleDimsOf(task);
    // the index must describe the model it names: a mismatch is a broken index, reported once
    // here instead of as an onnxruntime rank error on every batch
    const meta = session.inputMetadata.find((m) => m.name === inputName) as { isTensor: boolean; shape?: (number | string)[] } | undefined;
    if (meta?.isTensor && meta.shape) {
      const got = meta.shape.slice(1);
      const fixed = got.every((d) => typeof d === 'number');
      if (got.length !== sampleDims.length || (fixed && got.some((d, i) => d !== sampleDims[i]))) {
        throw new ReportedError(
          `task "${task.id}": model file ${file} takes input [${meta.shape.join(',')}] but the index says [${task.model.inputs[0].shape.join(',')}]`,
        );
      }
    }
    return { ort, session, inputName, outputName, sampleDims, features: sampleDims.reduce((a, b) => a * b, 1) };
  }

  async dispose(): Promise<void> {
    for (const p of this.sessions.values()) {
      try {
        await (await p).session.release();
      } catch {
        /* already failed or released */
      }
    }
    this.sessions.clear();
  }
}
