// How PNG colour types reach a model (src/onnx/image.ts + src/onnx/image-input.ts), with real
// PNG bytes (pngjs, and a hand-made palette PNG): the rule is PIL's convert("RGB") / convert("L"),
// what a model trained with torchvision saw. Alpha is dropped (not composited), gray is copied to
// R, G and B for a 3-channel model, colour is reduced to luma (0.299 R + 0.587 G + 0.114 B) for a
// 1-channel model, a palette is looked up first, 16-bit samples are scaled to 8 bits.
// And the KB's decoder skips an image of another size than its image input unless asked to resize.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import type { Preprocessing } from '../src/format/index-manifest.js';
import { readImageHeader } from '../src/format/image-header.js';
import { imageBytesToInput } from '../src/onnx/image-input.js';
import { ImageDecoder } from '../src/learn/image-samples.js';

const P = (channels: 1 | 3, width = 2, height = 1): Preprocessing => ({ kind: 'image', width, height, channels, layout: 'NCHW' });
const luma = (r: number, g: number, b: number) => 0.299 * r + 0.587 * g + 0.114 * b;
const near = (got: Float32Array, want: number[], tol = 1e-3) => {
  assert.equal(got.length, want.length);
  got.forEach((v, i) => assert.ok(Math.abs(v - want[i]) <= tol, `[${i}] ${v} vs ${want[i]} (${Array.from(got).join(',')})`));
};

/** PNG bytes of a 2x1 image in the given colour type, from raw samples per pixel. */
function pngOf(colorType: 0 | 2 | 4 | 6, bitDepth: 8 | 16, samples: number[]): Buffer {
  const ch = { 0: 1, 2: 3, 4: 2, 6: 4 }[colorType];
  const p = new PNG({ width: 2, height: 1, colorType, bitDepth, inputColorType: colorType, inputHasAlpha: colorType >= 4 } as never);
  (p as unknown as { data: Buffer }).data = bitDepth === 16 ? Buffer.from(new Uint16Array(samples).buffer) : Buffer.from(samples);
  assert.equal(samples.length, 2 * ch);
  return PNG.sync.write(p, { colorType, bitDepth, inputColorType: colorType, inputHasAlpha: colorType >= 4 } as never);
}

function crc32(b: Buffer): number {
  let c = ~0;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}
function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
/** A 2x1 palette PNG (colour type 3), optionally with a tRNS chunk. */
function palettePng(palette: number[][], indices: number[], trns?: number[]): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(2, 0);
  ihdr.writeUInt32BE(1, 4);
  ihdr[8] = 8;
  ihdr[9] = 3;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('PLTE', Buffer.from(palette.flat())),
    ...(trns ? [chunk('tRNS', Buffer.from(trns))] : []),
    chunk('IDAT', deflateSync(Buffer.from([0, ...indices]))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

test('RGBA: alpha is dropped (PIL convert), RGB kept for 3 channels, luma for 1', () => {
  const b = pngOf(6, 8, [10, 20, 30, 0, 200, 100, 50, 128]);
  assert.deepEqual(readImageHeader(b), { kind: 'png', width: 2, height: 1, channels: 3 });
  near(imageBytesToInput(b, P(3)), [10, 200, 20, 100, 30, 50]); // NCHW: R plane, G plane, B plane
  near(imageBytesToInput(b, P(1)), [luma(10, 20, 30), luma(200, 100, 50)]);
});

test('gray and gray+alpha: the value itself for 1 channel, copied to R, G, B for 3; 16-bit scaled to 8', () => {
  const g = pngOf(0, 8, [0, 255]);
  assert.equal((readImageHeader(g) as { channels: number }).channels, 1);
  near(imageBytesToInput(g, P(1)), [0, 255]);
  near(imageBytesToInput(g, P(3)), [0, 255, 0, 255, 0, 255]);
  const ga = pngOf(4, 8, [77, 0, 140, 255]);
  assert.equal((readImageHeader(ga) as { channels: number }).channels, 1);
  near(imageBytesToInput(ga, P(1)), [77, 140]);
  near(imageBytesToInput(ga, P(3)), [77, 140, 77, 140, 77, 140]);
  const g16 = pngOf(0, 16, [0x0000, 0xffff]);
  near(imageBytesToInput(g16, P(1)), [0, 255]);
});

test('palette (with tRNS): looked up, transparency dropped like alpha', () => {
  const b = palettePng(
    [
      [255, 0, 0],
      [0, 0, 255],
    ],
    [1, 0],
    [0, 255],
  );
  assert.equal((readImageHeader(b) as { channels: number }).channels, 3);
  near(imageBytesToInput(b, P(3)), [0, 255, 0, 0, 255, 0]);
  near(imageBytesToInput(b, P(1)), [luma(0, 0, 255), luma(255, 0, 0)]);
});

test('the KB decoder skips an image of another size (reason names both sizes) unless asked to resize', () => {
  const small = pngOf(0, 8, [0, 255]);
  const big = PNG.sync.write(Object.assign(new PNG({ width: 4, height: 2 }), {}));
  const strict = new ImageDecoder(P(1), undefined, false);
  assert.ok(strict.decode(small) instanceof Float32Array);
  assert.equal(strict.decode(big), "image: 4x2, the KB's image models take 2x1 (kb train --resize-images to resize)");
  const resizing = new ImageDecoder(P(1), undefined, true);
  assert.equal((resizing.decode(big) as Float32Array).length, 2);
  // without a known preprocessing the first image fixes it (its size, channels from the header)
  const first = new ImageDecoder(null);
  assert.ok(first.decode(big) instanceof Float32Array);
  assert.deepEqual(first.preprocessing, { kind: 'image', width: 4, height: 2, channels: 3, scale: 1 / 255, layout: 'NCHW' });
  assert.match(first.decode(small) as string, /^image: 2x1, the KB's image models take 4x2/);
});

test('with nothing decided, the KB decodes with the preprocessing the edge logged for the sample', () => {
  const big = PNG.sync.write(new PNG({ width: 4, height: 2 }));
  const d = new ImageDecoder(null);
  const logged: Preprocessing = { kind: 'image', width: 4, height: 2, channels: 1, layout: 'NCHW', scale: 1 / 255, mean: [0.5], std: [0.25] };
  const x = d.decode(big, logged) as Float32Array;
  assert.deepEqual(d.preprocessing, logged);
  // pngjs's new image is all zeros: (0 * 1/255 - 0.5) / 0.25
  near(x, new Array(8).fill(-2));
});
