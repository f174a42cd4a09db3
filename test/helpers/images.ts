// Tiny synthetic image classes for CNN tests: a horizontal bar, a vertical bar, a hollow square
// and a diagonal, at random positions with pixel noise, gray [1, size, size] in CHW order. A
// shape's identity does not depend on its position, which is what convolutions are for.
import { PNG } from 'pngjs';
import { mulberry32 } from '../../src/random.js';

export interface ImageSet {
  X: Float32Array;
  y: Int32Array;
  n: number;
  d: number;
}

export function shapeImages(n: number, seed: number, size = 12, classes = 4, noise = 0.15): ImageSet {
  const r = mulberry32(seed);
  const d = size * size;
  const X = new Float32Array(n * d);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % classes;
    y[i] = c;
    const o = i * d;
    const len = 4 + Math.floor(r() * (size / 2 - 3));
    const y0 = Math.floor(r() * (size - len));
    const x0 = Math.floor(r() * (size - len));
    const set = (yy: number, xx: number) => (X[o + yy * size + xx] = 1);
    for (let t = 0; t < len; t++) {
      if (c === 0) set(y0 + (len >> 1), x0 + t);
      else if (c === 1) set(y0 + t, x0 + (len >> 1));
      else if (c === 2) set(y0, x0 + t), set(y0 + len - 1, x0 + t), set(y0 + t, x0), set(y0 + t, x0 + len - 1);
      else set(y0 + t, x0 + t);
    }
    for (let p = 0; p < d; p++) X[o + p] = Math.min(1, Math.max(0, X[o + p] + (r() - 0.5) * 2 * noise));
  }
  return { X, y, n, d };
}

/** One image (values in [0, 1], size x size) as an 8-bit grayscale PNG file's bytes. */
export function png(x: Float32Array, size: number): Buffer {
  const p = new PNG({ width: size, height: size, colorType: 0, inputColorType: 0, bitDepth: 8, inputHasAlpha: false } as never);
  const gray = Buffer.alloc(size * size);
  for (let i = 0; i < size * size; i++) gray[i] = Math.round(x[i] * 255);
  (p as unknown as { data: Buffer }).data = gray;
  return PNG.sync.write(p, { colorType: 0, inputColorType: 0, inputHasAlpha: false } as never);
}
