// UUIDv7 (RFC 9562 §5.7): 48-bit Unix ms timestamp, version 7, 12-bit rand_a, variant 10,
// 62-bit rand_b. Within one millisecond rand_a is used as a counter (RFC 9562 §6.2 method 1),
// so ids made by one process sort in creation order; ids of different processes stay unique
// through the 62 random bits.
import { randomFillSync } from 'node:crypto';

const CHUNK = 10; // random bytes per id: 2 for the counter start, 1 for the variant byte, 7 for rand_b
const pool = Buffer.alloc(CHUNK * 256);
let poolPos = pool.length;
let lastMs = -1;
let counter = 0;

function randomChunk(): Buffer {
  if (poolPos + CHUNK > pool.length) {
    randomFillSync(pool);
    poolPos = 0;
  }
  const b = pool.subarray(poolPos, poolPos + CHUNK);
  poolPos += CHUNK;
  return b;
}

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function uuidv7(now = Date.now()): string {
  const r = randomChunk();
  let ms = now;
  if (ms <= lastMs) {
    // same (or a backwards-stepped) ms: keep the last timestamp and count up
    ms = lastMs;
    counter++;
    if (counter > 0xfff) {
      // 4096 ids in one ms: borrow the next ms rather than lose ordering
      ms = ++lastMs;
      counter = r[0] & 0x7f;
    }
  } else {
    lastMs = ms;
    counter = ((r[0] << 4) | (r[1] >> 4)) & 0x7ff; // random start, top bit 0 leaves room to count
  }
  const b = Buffer.allocUnsafe(16);
  b.writeUIntBE(ms, 0, 6);
  b[6] = 0x70 | (counter >> 8);
  b[7] = counter & 0xff;
  b[8] = 0x80 | (r[2] & 0x3f);
  for (let i = 9; i < 16; i++) b[i] = r[i - 6]; // r[3..9]
  let s = '';
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) s += '-';
    s += HEX[b[i]];
  }
  return s;
}

/** The ms timestamp embedded in a UUIDv7. */
export function uuidv7Time(id: string): number {
  return parseInt(id.replace(/-/g, '').slice(0, 12), 16);
}
