// Which architecture the built-in trainer uses for a round's tasks: the dense nets (softmax, mlp)
// for feature vectors, the CNN for images. `auto` (the default) picks the CNN when the inputs are
// images: the KB's input space is an image preprocessing, or a task's model declares an input of
// [N, C, H, W] whose size matches the samples. --arch cnn needs a [C, H, W] shape from one of
// those, from --input-shape, or a square single-channel vector (784 -> [1, 28, 28]).
import type { Preprocessing } from '../format/index-manifest.js';
import type { TaskRecord } from '../kb/store.js';
import type { Arch } from './dense.js';

export type ArchRequest = Arch | 'cnn' | 'auto';
export type ImageShape = [number, number, number];

export interface ArchChoice {
  arch: Arch | 'cnn';
  /** [C, H, W] of one sample (cnn only) */
  shape: ImageShape | null;
  /** why this architecture and shape (for the round report) */
  why: string;
}

/** Parse "C,H,W" (or "HxW" for one channel); throws a one-line reason. */
export function parseShape(text: string): ImageShape {
  const parts = text.split(/[,x]/).map((s) => Number(s.trim()));
  const s = parts.length === 2 ? [1, ...parts] : parts;
  if (s.length !== 3 || s.some((v) => !Number.isInteger(v) || v < 1)) throw new Error(`input shape "${text}": expected C,H,W (e.g. 1,28,28) or HxW`);
  return s as ImageShape;
}

/** The [C, H, W] the samples of dimension `dim` have, from the strongest evidence available. */
export function imageShape(dim: number, P: Preprocessing, tasks: readonly TaskRecord[], given: ImageShape | null): { shape: ImageShape; from: string } | null {
  const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
  if (given) {
    if (size(given) !== dim) throw new Error(`input shape [${given.join(',')}] holds ${size(given)} values, the samples have ${dim}`);
    return { shape: given, from: '--input-shape' };
  }
  // NHWC with 3 channels is not the CNN's [C, H, W]; one channel is the same either way
  if (P.kind === 'image' && P.width && P.height && (P.layout !== 'NHWC' || (P.channels ?? 3) === 1)) {
    const s: ImageShape = [P.channels ?? 3, P.height, P.width];
    if (size(s) === dim) return { shape: s, from: 'image preprocessing' };
  }
  for (const t of tasks) {
    const d = t.inputs[0]?.shape ?? [];
    if (d.length === 4 && d.slice(1).every((x) => typeof x === 'number' && x > 0)) {
      const s = d.slice(1) as ImageShape;
      if (size(s) === dim) return { shape: s, from: `task ${t.id}'s model input [${d.join(',')}]` };
    }
  }
  return null;
}

export function chooseArch(req: ArchRequest, dim: number, P: Preprocessing, tasks: readonly TaskRecord[], given: ImageShape | null): ArchChoice {
  if (req === 'softmax' || req === 'mlp') return { arch: req, shape: null, why: `--arch ${req}` };
  const found = imageShape(dim, P, tasks, given);
  if (req === 'auto') return found ? { arch: 'cnn', shape: found.shape, why: `images (${found.from})` } : { arch: 'mlp', shape: null, why: 'feature vectors' };
  if (found) return { arch: 'cnn', shape: found.shape, why: `--arch cnn, shape from ${found.from}` };
  const side = Math.round(Math.sqrt(dim));
  if (side * side === dim && side >= 4) return { arch: 'cnn', shape: [1, side, side], why: `--arch cnn on ${dim} values read as one ${side}x${side} channel` };
  throw new Error(`--arch cnn: the samples have ${dim} values and no [C,H,W] shape is known (give --input-shape C,H,W)`);
}

/**
 * How a CNN trains on n samples: with a parent's conv weights, tiny sets (< 200) keep every conv
 * layer frozen (only the head learns: too few images to move the features without overfitting)
 * and small ones (< 1000) freeze the first layer (edge detectors transfer best); sets under 500
 * images see random shifts of up to one pixel (a cheap way to more distinct training images).
 */
export function cnnRegime(n: number, warm: boolean, convLayers: number): { freezeConvs: number; shift: number } {
  const freezeConvs = !warm ? 0 : n < 200 ? convLayers : n < 1000 ? 1 : 0;
  return { freezeConvs, shift: n < 500 ? 1 : 0 };
}
