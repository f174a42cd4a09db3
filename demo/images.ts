// `npm run demo -- --images`: the demo's digits as PNG files (one 28x28 gray PNG per digit), the
// way a camera gateway sees them: directories of images for `infer DIR`, and a labels.csv
// (file,label,site) for `kb samples import DIR --labels`.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { DIM, LABELS, SIDE, type Samples } from '../bench/lib/mnist.js';

/** One 8-bit gray PNG of digit i of s (pixels in 0..1). */
export function digitPng(s: Samples, i: number): Buffer {
  const png = new PNG({ width: SIDE, height: SIDE });
  for (let p = 0; p < DIM; p++) {
    const v = Math.round(Math.min(1, Math.max(0, s.x[i * DIM + p])) * 255);
    png.data.set([v, v, v, 255], p * 4);
  }
  return PNG.sync.write(png, { colorType: 0 });
}

/** Write digits as DIR/<prefix>-<i>.png; returns the file names in order. */
export function writeDigitDir(dir: string, s: Samples, prefix: string): string[] {
  mkdirSync(dir, { recursive: true });
  const names: string[] = [];
  for (let i = 0; i < s.n; i++) {
    const name = `${prefix}-${String(i).padStart(5, '0')}.png`;
    writeFileSync(join(dir, name), digitPng(s, i));
    names.push(name);
  }
  return names;
}

/** labels.csv for `kb samples import DIR --labels`: file,label,site. */
export function writeLabelsCsv(file: string, names: string[], s: Samples, site: string): void {
  writeFileSync(file, ['file,label,site', ...names.map((n, i) => `${n},${LABELS[s.y[i]]},${site}`)].join('\n') + '\n');
}
