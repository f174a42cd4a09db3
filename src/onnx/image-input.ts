// PNG/JPEG -> the float32 input of a model with an image preprocessing: resize (bilinear) to
// width x height, 1 or 3 channels, scale, normalise per channel, NCHW or NHWC. The edge's
// pipeline (runtime/preprocess.ts) and the KB's trainer (learn/dataset.ts) both use this, so a
// model is trained on exactly the tensors the edge will feed it.
import type { Preprocessing } from '../format/index-manifest.js';
import { checkImage, DEFAULT_MAX_PIXELS } from '../format/image-header.js';
import { decodeImage, resizeToHwc, type Rgba } from './image.js';
import { normalise } from './vector-input.js';

/** The model input of a decoded image under preprocessing p (kind image, width and height set). */
export function rgbaToInput(img: Rgba, p: Preprocessing): Float32Array {
  const ch = p.channels ?? 3;
  const hwc = normalise(resizeToHwc(img, p.width!, p.height!, ch), p, ch, true, true);
  if (p.layout !== 'NCHW' || ch === 1) return hwc;
  const out = new Float32Array(hwc.length);
  const plane = p.width! * p.height!;
  for (let i = 0; i < plane; i++) for (let c = 0; c < ch; c++) out[c * plane + i] = hwc[i * ch + c];
  return out;
}

/** Image bytes -> model input; throws a short reason (not an image, over the pixel cap, undecodable). */
export function imageBytesToInput(bytes: Buffer, p: Preprocessing, maxPixels = DEFAULT_MAX_PIXELS): Float32Array {
  const h = checkImage(bytes, maxPixels);
  if (typeof h === 'string') throw new Error(h);
  return rgbaToInput(decodeImage(h.kind, bytes, maxPixels), p);
}

/** 'png' | 'jpeg' when the bytes are an image within the cap that decodes, else the reason. */
export function validateImage(bytes: Buffer, maxPixels = DEFAULT_MAX_PIXELS): 'png' | 'jpeg' | string {
  const h = checkImage(bytes, maxPixels);
  if (typeof h === 'string') return h;
  try {
    decodeImage(h.kind, bytes, maxPixels);
  } catch (e) {
    return (e as Error).message;
  }
  return h.kind;
}
