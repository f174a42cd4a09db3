// Does a model's declared input fit the images its preprocessing makes? An image preprocessing
// of width x height x channels feeds width*height*channels values per sample, as [N, C, H, W]
// (NCHW) or [N, H, W, C] (NHWC), or flat [N, W*H*C]. Used where a task is registered or
// published, so a mismatch is refused there (naming both shapes) instead of at every inference.
import type { Preprocessing } from './index-manifest.js';

export function imageShapeMismatch(p: Preprocessing, shape: readonly (number | string)[]): string | null {
  if (p.kind !== 'image' || !p.width || !p.height) return null;
  const c = p.channels ?? 3;
  const dims = shape.slice(1);
  const want = p.layout === 'NHWC' ? [p.height, p.width, c] : [c, p.height, p.width];
  const fixed = dims.every((d) => typeof d === 'number' && d > 0);
  const fits = fixed && (dims.length === 1 ? dims[0] === p.width * p.height * c : dims.length === 3 && dims.every((d, i) => d === want[i]));
  if (fits) return null;
  return `the model's input [${shape.join(',')}] does not take the images: preprocessing ${p.width}x${p.height}x${c} (${p.layout ?? 'NCHW'}) gives [N,${want.join(',')}]`;
}
