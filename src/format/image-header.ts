// Size and channels of a PNG or JPEG from its header, without decoding: what lets a decoder
// refuse an image over a pixel cap (a decompression bomb declares its size up front) before any
// pixel memory is allocated. Pure and small so the edge's and the KB's decoders can share it.

export const DEFAULT_MAX_PIXELS = 16_777_216; // 16 megapixels (4096 x 4096)

export interface ImageHeader {
  kind: 'png' | 'jpeg';
  width: number;
  height: number;
  /** colour channels the image stores (1 gray, 3 colour; alpha not counted) */
  channels: 1 | 3;
}

/** The header of PNG/JPEG bytes, or a short reason why it cannot be read. */
export function readImageHeader(b: Buffer): ImageHeader | string {
  if (b.length >= 24 && b[0] === 0x89 && b.toString('latin1', 1, 4) === 'PNG') {
    if (b.toString('latin1', 12, 16) !== 'IHDR') return 'PNG without an IHDR header';
    const colorType = b[25];
    return { kind: 'png', width: b.readUInt32BE(16), height: b.readUInt32BE(20), channels: colorType === 0 || colorType === 4 ? 1 : 3 };
  }
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8) {
    // walk the markers up to the first start-of-frame (SOF0..SOF15 except DHT/JPG/DAC)
    let p = 2;
    while (p + 4 <= b.length) {
      if (b[p] !== 0xff) return 'JPEG with a broken marker sequence';
      const m = b[p + 1];
      if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) {
        p += 2;
        continue;
      }
      const len = b.readUInt16BE(p + 2);
      if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
        if (p + 10 > b.length) break;
        return { kind: 'jpeg', height: b.readUInt16BE(p + 5), width: b.readUInt16BE(p + 7), channels: b[p + 9] === 1 ? 1 : 3 };
      }
      p += 2 + len;
    }
    return 'JPEG without a frame header';
  }
  return 'not a PNG or JPEG';
}

/** The header when the image is within maxPixels and not empty, else the reason to refuse it. */
export function checkImage(b: Buffer, maxPixels = DEFAULT_MAX_PIXELS): ImageHeader | string {
  const h = readImageHeader(b);
  if (typeof h === 'string') return h;
  if (h.width < 1 || h.height < 1) return `${h.kind.toUpperCase()} of ${h.width}x${h.height} pixels`;
  if (h.width * h.height > maxPixels) return `${h.kind.toUpperCase()} of ${h.width}x${h.height} = ${h.width * h.height} pixels is over the cap of ${maxPixels}`;
  return h;
}
