// The one place that loads onnxruntime-node, opens sessions and inspects ONNX models, for
// every layer that runs or accepts a model: runtime (pipeline sessions, canary checks), store
// (`task add`), kb (`kb task add`), learn (scoring, plug-in models, `kb eval`).
//
// Why a folder of its own: those users sit on both sides of the arrows (runtime/kb/learn above,
// store below), so the module must be at the bottom, next to format. format stays pure (no
// native code); src/onnx/ is its sibling that may import onnxruntime-node (lazily, on first
// use only) and format, and nothing else of ours. Arrows: (runtime|kb|learn|store) -> onnx -> format.
//
// Why one module: the edge and the KB must accept the same models. `inspectModel` is the single
// admission check (float32 tensors, exactly one input with fixed non-batch dims, a probe run),
// so the KB can no longer take in a model that every edge would refuse.
import { createRequire } from 'node:module';
import type * as Ort from 'onnxruntime-node';
import { ReportedError } from '../errors.js';
import type { TensorSpec } from '../format/index-manifest.js';

export type OrtModule = typeof Ort;
export type OrtSession = Ort.InferenceSession;
let ort: OrtModule | null = null;
const require = createRequire(import.meta.url);

/**
 * onnxruntime-node, loaded on first use. require(), not import(): the package is CommonJS, and
 * import() of CommonJS runs cjs-module-lexer over its sources to find named exports, ~35 ms
 * of every `infer` start for nothing.
 */
export async function loadOrt(): Promise<OrtModule> {
  if (!ort) {
    disableOrtTelemetry();
    ort = require('onnxruntime-node') as OrtModule;
  }
  return ort;
}

/**
 * onnxruntime >= 1.30 on Linux starts Microsoft 1DS telemetry with its environment: per process
 * it creates /tmp/mat-debug-<pid>.log, writes (and fsyncs) an event cache in
 * ~/.cache/Microsoft/DeveloperTools/.onnxruntime/onnxruntime.db, reads /etc/machine-id, and
 * queues the events for upload to Microsoft. An edge gateway must not phone home, and it costs
 * ~10-30 ms of every `infer` start. ORT_DISABLE_TELEMETRY=1 turns all of it off when set before
 * onnxruntime initialises; an operator's explicit setting is kept.
 */
export function disableOrtTelemetry(): void {
  process.env.ORT_DISABLE_TELEMETRY ??= '1';
}

/** First line of an error message (onnxruntime's are multi-line stack dumps). */
export function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split('\n')[0];
}

/** A model file or buffer onnxruntime refused; `reason` is onnxruntime's own first line. */
export class ModelLoadError extends ReportedError {
  constructor(
    what: string,
    readonly reason: string,
  ) {
    super(`${what}: not a loadable ONNX model: ${reason}`);
  }
}

/** Open a session on a file path or model bytes; a refusal is a one-line ModelLoadError naming `what`. */
export async function openSession(src: string | Uint8Array, what: string, options?: Ort.InferenceSession.SessionOptions): Promise<OrtSession> {
  const o = await loadOrt();
  try {
    return typeof src === 'string' ? await o.InferenceSession.create(src, options) : await o.InferenceSession.create(src, options ?? {});
  } catch (e) {
    throw new ModelLoadError(what, firstLine(e));
  }
}

/**
 * session.run without its event-loop turn. onnxruntime-node's run is synchronous in the native
 * addon (on the calling thread), but its JS wrapper defers it with setImmediate: the caller
 * resumes only after a whole event-loop turn (timers, I/O poll, check phase). For serve that
 * turn splits a batch in two: the requests read in it miss the batch that is about to commit and
 * fsync, and wait for the next one (measured at 8 clients: 3.2 requests per batch, one commit
 * and one fdatasync each). Here the wrapper's setImmediate runs its callback at once, for the
 * duration of the synchronous part of session.run only (JS is single-threaded: nothing else can
 * see the swap), so the promise returned is already settled and awaiting it costs microtasks.
 * A future onnxruntime-node that does not defer with setImmediate just runs as before.
 */
export function runInTurn(session: OrtSession, feeds: Ort.InferenceSession.FeedsType, fetches?: string[]): Promise<Ort.InferenceSession.ReturnType> {
  const deferred = globalThis.setImmediate;
  if (!spentImmediate) {
    spentImmediate = deferred(() => {});
    clearImmediate(spentImmediate);
  }
  globalThis.setImmediate = runNowImmediate;
  try {
    return fetches ? session.run(feeds, fetches) : session.run(feeds);
  } finally {
    globalThis.setImmediate = deferred;
  }
}

/**
 * What the stand-in returns: a real Immediate, cleared when made (its callback never runs), made
 * once and shared. A caller may treat the result as the handle it asked for: unref()/ref() on a
 * cleared Immediate change nothing (it no longer counts towards keeping the loop alive),
 * hasRef() is false, clearImmediate() and [Symbol.dispose]() return at once. Returning
 * undefined would throw in serve's model run the day an onnxruntime-node allowed by ^1.30 calls
 * .unref() on it. Shared rather than one per run: this is on every batch's path, and a cleared
 * Immediate holds no state a second caller could disturb.
 */
let spentImmediate: NodeJS.Immediate | null = null;

const runNowImmediate = ((fn: (...a: unknown[]) => void, ...args: unknown[]) => {
  fn(...args);
  return spentImmediate;
}) as unknown as typeof setImmediate;

/** A session's output `name` for rows of features (n x d), as a copy. */
export async function runRows(session: OrtSession, inputName: string, outputName: string, X: Float32Array, dims: number[]): Promise<Float32Array> {
  const o = await loadOrt();
  const out = await session.run({ [inputName]: new o.Tensor('float32', X, dims) });
  return Float32Array.from(out[outputName].data as Float32Array);
}

export interface InspectedModel {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** values of the first output for one sample (= label count) */
  classes: number;
  /** what the probe run saw in the first output: rows >= 0 summing to 1, or anything else */
  outputKind: 'probabilities' | 'logits';
}

type IoMeta = { name: string; isTensor: boolean; type?: string; shape?: ReadonlyArray<number | string> };

/** TensorSpec of one input/output; only float32 tensors are accepted. Dynamic dims: their symbol, or -1. */
function specOf(m: IoMeta, what: string): TensorSpec {
  if (!m.isTensor) throw new ReportedError(`${what}: ${m.name} is not a tensor; sedna-ll models take and give float32 tensors`);
  if (m.type !== 'float32') throw new ReportedError(`${what}: ${m.name} has type ${m.type}; sedna-ll models take and give float32 tensors`);
  return { name: m.name, shape: (m.shape ?? []).map((d) => (typeof d === 'number' && d > 0 ? d : typeof d === 'string' && d ? d : -1)), dtype: 'float32' };
}

/** Most float32 values one sample may have (2^25: 128 MiB, e.g. a 3x2160x3840 frame fits). */
export const MAX_INPUT_VALUES = 2 ** 25;

/**
 * The admission check of a model, edge and KB alike: loads it, reads its I/O (float32 tensors
 * only), requires exactly one input shaped [batch, fixed dims...] (the pipeline feeds one
 * tensor), runs it once on a deterministic input and reports what its first output holds.
 * Every refusal is a one-line ReportedError naming `what`.
 */
export async function inspectModel(bytes: Uint8Array, what: string): Promise<InspectedModel> {
  const session = await openSession(bytes, what);
  try {
    const inputs = session.inputMetadata.map((m) => specOf(m as IoMeta, what));
    const outputs = session.outputMetadata.map((m) => specOf(m as IoMeta, what));
    if (inputs.length !== 1) throw new ReportedError(`${what}: the model has ${inputs.length} inputs; sedna-ll feeds exactly one`);
    if (outputs.length < 1) throw new ReportedError(`${what}: the model has no outputs`);
    const inShape = inputs[0].shape;
    if (inShape.length < 2 || inShape.slice(1).some((d) => typeof d !== 'number' || d <= 0)) {
      throw new ReportedError(`${what}: input "${inputs[0].name}" shape [${inShape.join(',')}]: expected [batch, fixed dims...]`);
    }
    const dims = [1, ...(inShape.slice(1) as number[])];
    const n = dims.reduce((a, b) => a * b, 1);
    // checked before the probe input is allocated: a few hundred bytes of model can declare
    // [N,65536,65536] (16 GiB per sample)
    if (n > MAX_INPUT_VALUES) {
      throw new ReportedError(`${what}: input "${inputs[0].name}" shape [${inShape.join(',')}] is ${n} values per sample, over the cap of ${MAX_INPUT_VALUES} (${(MAX_INPUT_VALUES * 4) / (1024 * 1024)} MiB)`);
    }
    // a deterministic pseudo-random input: rows of probabilities are >= 0 and sum to 1
    const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + 1) * 2);
    let y: Float32Array;
    try {
      y = await runRows(session, inputs[0].name, outputs[0].name, x, dims);
    } catch (e) {
      throw new ReportedError(`${what}: the model fails on an input of shape [${dims.join(',')}]: ${firstLine(e)}`);
    }
    const classes = y.length;
    if (classes < 1) throw new ReportedError(`${what}: output "${outputs[0].name}" is empty`);
    let sum = 0;
    let inRange = true;
    for (const v of y) {
      sum += v;
      if (!(v >= 0 && v <= 1)) inRange = false;
    }
    const outputKind = inRange && Math.abs(sum - 1) < 1e-3 ? 'probabilities' : 'logits';
    return { inputs, outputs, classes, outputKind };
  } finally {
    await session.release().catch(() => {});
  }
}
