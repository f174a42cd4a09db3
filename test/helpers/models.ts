// Tiny ONNX models built on the fly for tests (never committed).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeDenseOnnx, type DenseLayer } from '../../src/onnx/writer.js';
import { mulberry32 } from '../../src/random.js';

export function randomLayer(inDim: number, outDim: number, rand: () => number, scale = 1): DenseLayer {
  return {
    inDim,
    outDim,
    W: Float32Array.from({ length: inDim * outDim }, () => (rand() - 0.5) * scale),
    b: Float32Array.from({ length: outDim }, () => (rand() - 0.5) * scale * 0.1),
  };
}

/** A random MLP dims[0] -> ... -> dims[n] with softmax output; returns the file path. */
export function writeRandomMlp(dir: string, name: string, dims: number[], seed = 1, opts: { softmax?: boolean } = {}): string {
  const rand = mulberry32(seed);
  const layers: DenseLayer[] = [];
  for (let i = 0; i + 1 < dims.length; i++) layers.push(randomLayer(dims[i], dims[i + 1], rand));
  const p = join(dir, `${name}.onnx`);
  writeFileSync(p, writeDenseOnnx({ layers, softmax: opts.softmax }));
  return p;
}

/**
 * A linear classifier whose class k wins when feature k is largest: logits = x (identity W).
 * Predictions are then hand-computable: softmax(x) over the first K features.
 */
export function writeIdentityModel(dir: string, name: string, k: number, opts: { softmax?: boolean; scale?: number } = {}): string {
  const W = new Float32Array(k * k);
  for (let i = 0; i < k; i++) W[i * k + i] = opts.scale ?? 1;
  const p = join(dir, `${name}.onnx`);
  writeFileSync(p, writeDenseOnnx({ layers: [{ inDim: k, outDim: k, W, b: new Float32Array(k) }], softmax: opts.softmax }));
  return p;
}
