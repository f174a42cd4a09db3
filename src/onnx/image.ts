// Image decoding and resizing for models whose preprocessing kind is "image".
// PNG via pngjs, JPEG via jpeg-js (pure JS, no native build; both installed, loaded lazily).
// Resizing is bilinear (pixel centres aligned, like PIL/torchvision's default BILINEAR without
// antialias): nearest neighbour would shift edges by up to half a source pixel and alias thin
// strokes, which moves predictions away from what a model trained on bilinear-resized images
// (the common default) saw; bilinear costs 4 taps per output pixel, nothing at these sizes.
import { createRequire } from 'node:module';
import { inflateSync } from 'node:zlib';
import { checkImage, DEFAULT_MAX_PIXELS } from '../format/image-header.js';

const require = createRequire(import.meta.url);

export interface Rgba {
  width: number;
  height: number;
  /** RGBA, 8 bits per channel, row-major */
  data: Uint8Array;
}

export function sniffImage(b: Buffer): 'png' | 'jpeg' | null {
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return 'png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  return null;
}

const PNG_CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/**
 * The PNG's image data must inflate to exactly what its header needs: pngjs reads data that is
 * not zlib at all (or is cut short) as a black image instead of failing.
 */
function checkPngData(b: Buffer): void {
  const width = b.readUInt32BE(16);
  const height = b.readUInt32BE(20);
  const depth = b[24];
  const channels = PNG_CHANNELS[b[25]];
  if (!channels || ![1, 2, 4, 8, 16].includes(depth)) throw new Error(`colour type ${b[25]} / bit depth ${depth} not valid`);
  const bits = channels * depth;
  const rowBytes = (w: number) => (w === 0 ? 0 : 1 + Math.ceil((w * bits) / 8));
  let need = 0;
  if (b[28] === 1) {
    // Adam7: seven sub-images, each row with its filter byte
    const passes = [
      [0, 0, 8, 8],
      [4, 0, 8, 8],
      [0, 4, 4, 8],
      [2, 0, 4, 4],
      [0, 2, 2, 4],
      [1, 0, 2, 2],
      [0, 1, 1, 2],
    ];
    for (const [x0, y0, dx, dy] of passes) {
      const w = Math.ceil((width - x0) / dx);
      const h = Math.ceil((height - y0) / dy);
      if (w > 0 && h > 0) need += h * rowBytes(w);
    }
  } else need = height * rowBytes(width);
  const idat: Buffer[] = [];
  let o = 8;
  while (o + 8 <= b.length) {
    const len = b.readUInt32BE(o);
    const type = b.toString('latin1', o + 4, o + 8);
    if (type === 'IDAT') idat.push(b.subarray(o + 8, Math.min(b.length, o + 8 + len)));
    if (type === 'IEND') break;
    o += 12 + len;
  }
  let got: number;
  try {
    got = inflateSync(Buffer.concat(idat), { maxOutputLength: need + 1 }).length;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // more data than the header needs: pngjs ignores the excess, and so do we
    if (code === 'ERR_BUFFER_TOO_LARGE') return;
    throw new Error(`image data is not valid zlib data (${code ?? (e as Error).message})`);
  }
  if (got < need) throw new Error(`image data ends after ${got} of ${need} bytes (truncated)`);
}

/**
 * Decode PNG/JPEG bytes; throws an Error with a short reason. The header is checked against the
 * pixel cap (format/image-header.ts) before any decoding: a few hundred KB of PNG can declare
 * 16000x16000 (1 GB decoded).
 */
export function decodeImage(kind: 'png' | 'jpeg', bytes: Buffer, maxPixels = DEFAULT_MAX_PIXELS): Rgba {
  const h = checkImage(bytes, maxPixels);
  if (typeof h === 'string') {
    // the bytes sniffed as `kind`: a header that cannot be read means a truncated or corrupt file
    if (/pixels/.test(h)) throw new Error(h);
    throw new Error(`undecodable ${kind.toUpperCase()}: ${h === 'not a PNG or JPEG' ? 'header cut short' : h}`);
  }
  if (h.kind !== kind) throw new Error(`undecodable ${kind.toUpperCase()}: the bytes are a ${h.kind.toUpperCase()}`);
  try {
    if (kind === 'png') {
      checkPngData(bytes);
      const { PNG } = require('pngjs') as typeof import('pngjs');
      const p = PNG.sync.read(bytes);
      return { width: p.width, height: p.height, data: p.data };
    }
    const jpeg = require('jpeg-js') as { decode: (b: Buffer, o: object) => { width: number; height: number; data: Uint8Array } };
    const j = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 256, maxResolutionInMP: maxPixels / 1e6 });
    return { width: j.width, height: j.height, data: j.data };
  } catch (e) {
    throw new Error(`undecodable ${kind.toUpperCase()}: ${((e as Error).message ?? String(e)).split('\n')[0]}`);
  }
}

/**
 * Bilinear resize + channel selection into float32 values in [0, 255], channels-last (HWC).
 * The colour rule is PIL's convert("RGB") / convert("L"), what a model trained with
 * torchvision saw: the decoder hands RGBA for every PNG colour type (gray copied to R, G and B,
 * a palette looked up, 16-bit samples scaled to 8 bits); a 3-channel model takes R, G, B; a
 * 1-channel model takes luma (ITU-R 601: 0.299 R + 0.587 G + 0.114 B, as convert("L")), which
 * is the gray value itself for a gray image. Alpha (and a palette's tRNS) is dropped, not
 * composited: models here take RGB or gray (test/edge-image-channels.test.ts).
 */
export function resizeToHwc(img: Rgba, W: number, H: number, channels: 1 | 3): Float32Array {
  const out = new Float32Array(W * H * channels);
  const sx = img.width / W;
  const sy = img.height / H;
  const d = img.data;
  const iw = img.width;
  for (let y = 0; y < H; y++) {
    let fy = (y + 0.5) * sy - 0.5;
    if (fy < 0) fy = 0;
    const y0 = Math.min(Math.floor(fy), img.height - 1);
    const y1 = Math.min(y0 + 1, img.height - 1);
    const wy = fy - y0;
    for (let x = 0; x < W; x++) {
      let fx = (x + 0.5) * sx - 0.5;
      if (fx < 0) fx = 0;
      const x0 = Math.min(Math.floor(fx), iw - 1);
      const x1 = Math.min(x0 + 1, iw - 1);
      const wx = fx - x0;
      const a = (y0 * iw + x0) * 4;
      const b = (y0 * iw + x1) * 4;
      const c = (y1 * iw + x0) * 4;
      const e = (y1 * iw + x1) * 4;
      const w00 = (1 - wx) * (1 - wy);
      const w01 = wx * (1 - wy);
      const w10 = (1 - wx) * wy;
      const w11 = wx * wy;
      const o = (y * W + x) * channels;
      const r = d[a] * w00 + d[b] * w01 + d[c] * w10 + d[e] * w11;
      const g = d[a + 1] * w00 + d[b + 1] * w01 + d[c + 1] * w10 + d[e + 1] * w11;
      const bl = d[a + 2] * w00 + d[b + 2] * w01 + d[c + 2] * w10 + d[e + 2] * w11;
      if (channels === 1) out[o] = 0.299 * r + 0.587 * g + 0.114 * bl;
      else {
        out[o] = r;
        out[o + 1] = g;
        out[o + 2] = bl;
      }
    }
  }
  return out;
}
