// Turn a decoded sample into the float32 input of one task's model, per the model's
// `preprocessing` in the index: vectors get scale, then (x - mean) / std; images are decoded,
// checked against the model's width x height (refused when they differ, unless the edge's config
// says images.resize: then resized), reduced to 1 or 3 channels, scaled, normalised per channel
// and laid out NCHW or NHWC. Errors are BadRecordErrors with short reasons (the pipeline adds
// where/which task and skips the sample).
import { BadRecordError } from '../errors.js';
import type { TaskEntry } from '../format/index-manifest.js';
import { rgbaToInput } from '../onnx/image-input.js';
import { vectorInput } from '../onnx/vector-input.js';
import { decodeImage, type Rgba } from '../onnx/image.js';
import type { Sample } from './sample.js';

const keys = new WeakMap<TaskEntry, string>();
const decoded = new WeakMap<Sample, Rgba>();

function keyOf(t: TaskEntry): string {
  let k = keys.get(t);
  if (k === undefined) {
    k = JSON.stringify(t.model.preprocessing) + '|' + t.model.inputs[0].shape.join(',');
    keys.set(t, k);
  }
  return k;
}

/** The model input for this sample and task (length = features); throws a reason string. */
export function inputFor(s: Sample, task: TaskEntry, features: number): Float32Array {
  const key = keyOf(task);
  if (s.cacheKey === key) return s.cacheVal!;
  const p = task.model.preprocessing;
  let out: Float32Array;
  if (s.vec) {
    out = vectorInput(s.vec, task, features);
  } else {
    if (p.kind !== 'image' || !p.width || !p.height) throw new BadRecordError(`task "${task.id}" takes vectors, not images`);
    const ch = p.channels ?? 3;
    if (p.width * p.height * ch !== features) {
      throw new BadRecordError(`task "${task.id}": preprocessing ${p.width}x${p.height}x${ch} does not match the model input (${features} values)`);
    }
    const im = s.image!;
    // an image of another size than the model takes is refused, not silently resized: a model
    // trained on 28x28 crops fed a 640x480 frame squeezed to 28x28 answers confidently and wrongly.
    // Resizing is the explicit opt-in `config set images.resize true`.
    if (!im.resize && (im.header.width !== p.width || im.header.height !== p.height)) {
      throw new BadRecordError(`image is ${im.header.width}x${im.header.height}, task "${task.id}" takes ${p.width}x${p.height} (resize with: sedna-ll config set images.resize true)`);
    }
    let img = decoded.get(s);
    if (!img) {
      img = decodeImage(im.kind, im.bytes, im.maxPixels);
      decoded.set(s, img);
    }
    out = rgbaToInput(img, p);
  }
  s.cacheKey = key;
  s.cacheVal = out;
  return out;
}
