import { createRequire } from 'node:module';
import { decodeImage } from '../src/runtime/image.js';
const jpeg = createRequire(import.meta.url)('jpeg-js');
const data = Buffer.alloc(12 * 12 * 4, 77);
const base = Buffer.from(jpeg.encode({ width: 12, height: 12, data }, 80).data);
for (const [w, h] of [[0, 0], [0, 5], [7000, 7000], [16000, 16000], [65535, 65535], [1, 65535], [40, 30], [6000, 6000]]) {
  const b = Buffer.from(base);
  const at = b.indexOf(Buffer.from([0xff, 0xc0]));
  b.writeUInt16BE(h, at + 5); b.writeUInt16BE(w, at + 7);
  const t = performance.now();
  let r = '';
  try { const i = decodeImage('jpeg', b); r = `${i.width}x${i.height}`; } catch (e) { r = (e as Error).message; }
  console.log(w, h, (performance.now() - t).toFixed(0), 'ms', r);
}
