// Image samples (PNG/JPEG payloads) as training data: which image preprocessing the KB decodes
// them with, and the decode itself (the same code the edge runs, onnx/image-input.ts). The
// preprocessing comes from the KB's pinned input space, else from a task model that takes images
// (the index's preprocessing the edge used), else from the preprocessing the first image sample
// was logged with by the edge, else from the first image (its size and channels, scale 1/255, NCHW).
import type { Preprocessing } from '../format/index-manifest.js';
import { checkImage, DEFAULT_MAX_PIXELS, type ImageHeader } from '../format/image-header.js';
import type { TaskRecord } from '../kb/store.js';
import { imageBytesToInput } from '../onnx/image-input.js';

export const isImageKind = (kind: string): boolean => kind === 'png' || kind === 'jpeg';

/** The image preprocessing already decided for this KB, or null (decide from the first image). */
export function knownImagePreprocessing(pinned: Preprocessing | null, tasks: readonly TaskRecord[]): Preprocessing | null {
  if (pinned) return pinned.kind === 'image' ? pinned : null;
  const imageTasks = tasks.filter((t) => t.preprocessing.kind === 'image' && t.preprocessing.width && t.preprocessing.height);
  return (imageTasks.find((t) => t.fallback) ?? imageTasks[0])?.preprocessing ?? null;
}

export function preprocessingFromHeader(h: ImageHeader): Preprocessing {
  return { kind: 'image', width: h.width, height: h.height, channels: h.channels, scale: 1 / 255, layout: 'NCHW' };
}

/** Values per sample an image preprocessing makes. */
export const imageSize = (p: Preprocessing): number => (p.width ?? 0) * (p.height ?? 0) * (p.channels ?? 3);

/**
 * Decode image payloads one by one with a preprocessing fixed by the first usable image when
 * none is known. Each result is the model input (already scaled and normalised) or a reason.
 * An image of another width x height than the preprocessing's is skipped with its size in the
 * reason (the edge refuses it the same way), unless `resize` (kb train --resize-images, the
 * edge's config images.resize) asks for the bilinear resize the edge would then apply too.
 */
export class ImageDecoder {
  constructor(
    public preprocessing: Preprocessing | null,
    private readonly maxPixels = DEFAULT_MAX_PIXELS,
    private readonly resize = false,
  ) {}

  /** `logged`: the preprocessing the edge's model used for this sample (uploaded with it), if any */
  decode(buf: Buffer, logged?: Preprocessing | null): Float32Array | string {
    const h = checkImage(buf, this.maxPixels);
    if (typeof h === 'string') return `image: ${h}`;
    // nothing decided yet: what the edge fed its model (size, channels, normalisation) wins
    // over a guess from the header, so the KB's first image model takes the tensors the edge's did
    if (!this.preprocessing) this.preprocessing = logged && logged.kind === 'image' && logged.width && logged.height ? { ...logged } : preprocessingFromHeader(h);
    const p = this.preprocessing;
    if (!this.resize && (h.width !== p.width || h.height !== p.height)) return `image: ${h.width}x${h.height}, the KB's image models take ${p.width}x${p.height} (kb train --resize-images to resize)`;
    try {
      return imageBytesToInput(buf, p, this.maxPixels);
    } catch (e) {
      return `image: ${(e as Error).message}`;
    }
  }
}
