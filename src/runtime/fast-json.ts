// A fast path for the common JSONL record {"id":..,"x":[numbers],"attrs":{..},"task":".."}
// that parses straight from the input bytes: "x" goes digit by digit into a Float32Array, so a
// 784-feature record costs no 784-element JS array and no 784 heap numbers (JSON.parse of such
// lines was most of infer's time, and its garbage most of the rest). The other values are
// short and go through JSON.parse on their own bytes.
//
// It accepts exactly what JSON.parse accepts or gives up: anything unusual (escapes in keys,
// duplicate keys, a non-number in x, an invalid token, exponents it cannot do exactly) returns
// null and the caller parses the line with JSON.parse, which also words the error message.
//
// Numbers: up to 15 significant digits and 22 decimals, mantissa / 10^k is exact-then-rounded
// once (Clinger's fast path), i.e. the same double JSON.parse yields; it is then rounded to
// float32 exactly as Float32Array.from(JSON.parse(..).x) would. Longer numbers and exponents go
// through Number() on their text.

const POW10 = Array.from({ length: 23 }, (_, i) => 10 ** i);

export interface FastRecord {
  x: Float32Array;
  /** raw JSON text of the other known keys (undefined when absent) */
  id?: string;
  attrs?: string;
  task?: string;
}

const isWs = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/** Skip one JSON value starting at i (no validation beyond bracket/string structure); -1 on failure. */
function skipValue(b: Uint8Array, i: number, end: number): number {
  let depth = 0;
  for (; i < end; i++) {
    const c = b[i];
    if (c === 0x22) {
      // string
      for (i++; i < end; i++) {
        const d = b[i];
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
      if (i >= end) return -1;
      if (depth === 0) return i + 1;
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) {
      if (depth === 0) return i; // end of the enclosing container: scalar ended
      depth--;
      if (depth === 0) return i + 1;
    } else if (depth === 0 && (c === 0x2c || isWs(c))) return i;
  }
  return depth === 0 ? i : -1;
}

let scratch = new Float32Array(1024);

/** The text of an ASCII span (a number token). */
const ascii = (b: Uint8Array, s: number, e: number) => Buffer.from(b.buffer, b.byteOffset + s, e - s).toString('latin1');

/** Parse the x array at b[i] === '['; returns the index after ']' or -1 (caller falls back). */
function parseX(b: Uint8Array, i: number, end: number, out: { x: Float32Array | null }): number {
  i++;
  let n = 0;
  while (i < end && isWs(b[i])) i++;
  if (b[i] === 0x5d) {
    out.x = new Float32Array(0);
    return i + 1;
  }
  for (;;) {
    while (i < end && isWs(b[i])) i++;
    const start = i;
    let neg = false;
    if (b[i] === 0x2d) {
      neg = true;
      i++;
    }
    let c = b[i];
    let mant = 0;
    let nd = 0;
    let scale = 0;
    if (c === 0x30) {
      i++;
    } else if (c >= 0x31 && c <= 0x39) {
      while (i < end && (c = b[i]) >= 0x30 && c <= 0x39) {
        mant = mant * 10 + (c - 0x30);
        nd++;
        i++;
      }
    } else return -1;
    if (b[i] === 0x2e) {
      i++;
      const f0 = i;
      while (i < end && (c = b[i]) >= 0x30 && c <= 0x39) {
        mant = mant * 10 + (c - 0x30);
        nd++;
        scale++;
        i++;
      }
      if (i === f0) return -1; // "1." is not JSON
    }
    let v: number;
    c = b[i];
    if (c === 0x65 || c === 0x45) {
      i++;
      if (b[i] === 0x2b || b[i] === 0x2d) i++;
      const e0 = i;
      while (i < end && b[i] >= 0x30 && b[i] <= 0x39) i++;
      if (i === e0) return -1;
      v = Number(ascii(b, start, i));
      if (Number.isNaN(v)) return -1;
    } else if (nd > 15 || scale > 22) {
      v = Number(ascii(b, start, i));
      if (Number.isNaN(v)) return -1;
    } else {
      v = scale === 0 ? mant : mant / POW10[scale];
      if (neg) v = -v;
    }
    if (n === scratch.length) {
      const s = new Float32Array(scratch.length * 2);
      s.set(scratch);
      scratch = s;
    }
    scratch[n] = v;
    if (!Number.isFinite(scratch[n])) return -1; // overflow / Infinity: the slow path words the error
    n++;
    while (i < end && isWs(b[i])) i++;
    c = b[i];
    if (c === 0x2c) {
      i++;
      continue;
    }
    if (c === 0x5d) {
      out.x = scratch.slice(0, n);
      return i + 1;
    }
    return -1;
  }
}

/**
 * Parse one line (bytes [start, end) of buf). Returns null when the line is not a plain record
 * object this fast path handles; the caller then uses JSON.parse on the text.
 */
export function fastRecord(buf: Uint8Array, start: number, end: number): FastRecord | null {
  let i = start;
  while (i < end && isWs(buf[i])) i++;
  if (buf[i] !== 0x7b) return null;
  i++;
  const rec: FastRecord = { x: null as unknown as Float32Array };
  const xo: { x: Float32Array | null } = { x: null };
  let seen = 0; // bit set of keys seen: x 1, id 2, attrs 4, task 8
  for (;;) {
    while (i < end && isWs(buf[i])) i++;
    // key
    if (buf[i] !== 0x22) return null;
    const k0 = i + 1;
    i = k0;
    while (i < end && buf[i] !== 0x22) {
      if (buf[i] === 0x5c) return null; // escaped key: let JSON.parse handle it
      i++;
    }
    if (i >= end) return null;
    const klen = i - k0;
    let key = 0;
    if (klen === 1 && buf[k0] === 0x78) key = 1;
    else if (klen === 2 && buf[k0] === 0x69 && buf[k0 + 1] === 0x64) key = 2;
    else if (klen === 5 && buf[k0] === 0x61 && buf[k0 + 1] === 0x74 && buf[k0 + 2] === 0x74 && buf[k0 + 3] === 0x72 && buf[k0 + 4] === 0x73) key = 4;
    else if (klen === 4 && buf[k0] === 0x74 && buf[k0 + 1] === 0x61 && buf[k0 + 2] === 0x73 && buf[k0 + 3] === 0x6b) key = 8;
    else return null; // other keys: rare, let JSON.parse judge them
    if (seen & key) return null; // duplicate key: JSON.parse semantics (last wins) via the fallback
    seen |= key;
    i++;
    while (i < end && isWs(buf[i])) i++;
    if (buf[i] !== 0x3a) return null;
    i++;
    while (i < end && isWs(buf[i])) i++;
    if (key === 1) {
      if (buf[i] !== 0x5b) return null;
      i = parseX(buf, i, end, xo);
      if (i < 0) return null;
    } else {
      const v0 = i;
      i = skipValue(buf, i, end);
      if (i < 0 || i === v0) return null;
      const raw = Buffer.from(buf.buffer, buf.byteOffset + v0, i - v0).toString('utf8');
      if (key === 2) rec.id = raw;
      else if (key === 4) rec.attrs = raw;
      else rec.task = raw;
    }
    while (i < end && isWs(buf[i])) i++;
    if (buf[i] === 0x2c) {
      i++;
      continue;
    }
    if (buf[i] === 0x7d) {
      i++;
      break;
    }
    return null;
  }
  while (i < end && isWs(buf[i])) i++;
  if (i !== end || !xo.x) return null;
  rec.x = xo.x;
  return rec;
}
