// WebAssembly SIMD kernels for the trainer's hot loops, hand-assembled (a few hundred bytes, no
// toolchain, no dependency):
//   gaxpy(out, n, idx, val, cnt, base):  out[0..n) += sum_t val[t] * M[idx[t] .. idx[t]+n)
// and one Adam step (adam), with every pointer a byte offset into one shared WebAssembly.Memory, M = base, and n a
// multiple of 4 (f32x4 lanes). It is both halves of a dense layer's training step: the forward
// product (a row of X times W, summed over the row's non-zeros) and the weight gradient (a column
// of X^T times dZ). Buffers that live in the arena's memory take this path; everything else
// (and n % 4 != 0) stays on the JavaScript kernels in dense.ts. f32x4 arithmetic rounds each
// step to float32, so results differ from the JS path in the last bits, but are just as
// deterministic for a given path.

const BODY = [
  // locals: 4 x i32 (t=6, j=7, src=8, spare=9), 1 x v128 (a=10)
  0x02, 0x04, 0x7f, 0x01, 0x7b,
  0x02, 0x40, // block $done
  0x03, 0x40, //  loop $t
  0x20, 0x06, 0x20, 0x04, 0x4f, 0x0d, 0x01, // t >= cnt -> done
  0x20, 0x03, 0x20, 0x06, 0x41, 0x02, 0x74, 0x6a, 0x2a, 0x02, 0x00, 0xfd, 0x13, 0x21, 0x0a, // a = splat(val[t])
  0x20, 0x05, 0x20, 0x02, 0x20, 0x06, 0x41, 0x02, 0x74, 0x6a, 0x28, 0x02, 0x00, 0x41, 0x02, 0x74, 0x6a, 0x21, 0x08, // src = base + idx[t]*4
  0x41, 0x00, 0x21, 0x07, // j = 0
  0x02, 0x40, //  block $jd
  0x03, 0x40, //   loop $j
  0x20, 0x07, 0x20, 0x01, 0x4f, 0x0d, 0x01, // j >= n -> jd
  0x20, 0x00, 0x20, 0x07, 0x41, 0x02, 0x74, 0x6a, // &out[j]
  0x20, 0x00, 0x20, 0x07, 0x41, 0x02, 0x74, 0x6a, 0xfd, 0x00, 0x02, 0x00, // out[j..j+4)
  0x20, 0x08, 0x20, 0x07, 0x41, 0x02, 0x74, 0x6a, 0xfd, 0x00, 0x02, 0x00, // src[j..j+4)
  0x20, 0x0a, 0xfd, 0xe6, 0x01, 0xfd, 0xe4, 0x01, // out + src * a
  0xfd, 0x0b, 0x02, 0x00, // store
  0x20, 0x07, 0x41, 0x04, 0x6a, 0x21, 0x07, // j += 4
  0x0c, 0x00, //   br $j
  0x0b, //   end loop
  0x0b, //  end block
  0x20, 0x06, 0x41, 0x01, 0x6a, 0x21, 0x06, // t++
  0x0c, 0x00, //  br $t
  0x0b, // end loop
  0x0b, // end block
  0x0b, // end func
];

// adam(w, g, m, v, len, lrc1, c2, l2, b1, ob1, b2, ob2, eps), len a multiple of 4:
//   gi = g + l2 w;  m = b1 m + (1-b1) gi;  v = b2 v + (1-b2) gi^2;  w -= lrc1 m / (sqrt(c2 v) + eps)
const ADAM = [
  0x02, 0x02, 0x7f, 0x03, 0x7b, // locals: i=13, off=14 (i32); gi=15, mi=16, vi=17 (v128)
  0x02, 0x40,
  0x03, 0x40,
  0x20, 0x0d, 0x20, 0x04, 0x4f, 0x0d, 0x01, // i >= len -> done
  0x20, 0x0d, 0x41, 0x02, 0x74, 0x21, 0x0e, // off = i * 4
  0x20, 0x01, 0x20, 0x0e, 0x6a, 0xfd, 0x00, 0x02, 0x00, // g
  0x20, 0x00, 0x20, 0x0e, 0x6a, 0xfd, 0x00, 0x02, 0x00, 0x20, 0x07, 0xfd, 0x13, 0xfd, 0xe6, 0x01, // w * l2
  0xfd, 0xe4, 0x01, 0x21, 0x0f, // gi
  0x20, 0x02, 0x20, 0x0e, 0x6a, 0xfd, 0x00, 0x02, 0x00, 0x20, 0x08, 0xfd, 0x13, 0xfd, 0xe6, 0x01, // m * b1
  0x20, 0x0f, 0x20, 0x09, 0xfd, 0x13, 0xfd, 0xe6, 0x01, 0xfd, 0xe4, 0x01, 0x21, 0x10, // mi = + gi * ob1
  0x20, 0x03, 0x20, 0x0e, 0x6a, 0xfd, 0x00, 0x02, 0x00, 0x20, 0x0a, 0xfd, 0x13, 0xfd, 0xe6, 0x01, // v * b2
  0x20, 0x0f, 0x20, 0x0f, 0xfd, 0xe6, 0x01, 0x20, 0x0b, 0xfd, 0x13, 0xfd, 0xe6, 0x01, 0xfd, 0xe4, 0x01, 0x21, 0x11, // vi = + gi^2 * ob2
  0x20, 0x02, 0x20, 0x0e, 0x6a, 0x20, 0x10, 0xfd, 0x0b, 0x02, 0x00, // store m
  0x20, 0x03, 0x20, 0x0e, 0x6a, 0x20, 0x11, 0xfd, 0x0b, 0x02, 0x00, // store v
  0x20, 0x00, 0x20, 0x0e, 0x6a, // &w
  0x20, 0x00, 0x20, 0x0e, 0x6a, 0xfd, 0x00, 0x02, 0x00, // w
  0x20, 0x10, 0x20, 0x05, 0xfd, 0x13, 0xfd, 0xe6, 0x01, // mi * lrc1
  0x20, 0x11, 0x20, 0x06, 0xfd, 0x13, 0xfd, 0xe6, 0x01, 0xfd, 0xe3, 0x01, // sqrt(vi * c2)
  0x20, 0x0c, 0xfd, 0x13, 0xfd, 0xe4, 0x01, // + eps
  0xfd, 0xe7, 0x01, 0xfd, 0xe5, 0x01, // w - num / den
  0xfd, 0x0b, 0x02, 0x00, // store w
  0x20, 0x0d, 0x41, 0x04, 0x6a, 0x21, 0x0d, // i += 4
  0x0c, 0x00,
  0x0b,
  0x0b,
  0x0b,
];

function section(id: number, content: number[]): number[] {
  return [id, ...leb(content.length), ...content];
}

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

const str = (s: string) => [s.length, ...Buffer.from(s, 'latin1')];

function moduleBytes(): Uint8Array<ArrayBuffer> {
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [0x02, 0x60, 0x06, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x00, 0x60, 0x0d, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7d, 0x7d, 0x7d, 0x7d, 0x7d, 0x7d, 0x7d, 0x7d, 0x00]),
    ...section(2, [0x01, ...str('env'), ...str('mem'), 0x02, 0x00, 0x01]),
    ...section(3, [0x02, 0x00, 0x01]),
    ...section(7, [0x02, ...str('gaxpy'), 0x00, 0x00, ...str('adam'), 0x00, 0x01]),
    ...section(10, [0x02, ...leb(BODY.length), ...BODY, ...leb(ADAM.length), ...ADAM]),
  ]);
}

let compiled: WebAssembly.Module | null | undefined;

function wasmModule(): WebAssembly.Module | null {
  if (compiled === undefined) {
    try {
      const bytes = moduleBytes();
      compiled = process.env.SEDNA_LL_NO_SIMD || !WebAssembly.validate(bytes) ? null : new WebAssembly.Module(bytes);
    } catch {
      compiled = null;
    }
  }
  return compiled;
}

/** Float32 buffers in one WebAssembly memory, plus the kernel that works on them. */
export class Arena {
  readonly memory: WebAssembly.Memory;
  private readonly fn: (out: number, n: number, idx: number, val: number, cnt: number, base: number) => void;
  private readonly adamFn: (w: number, g: number, m: number, v: number, len: number, lrc1: number, c2: number, l2: number, b1: number, ob1: number, b2: number, ob2: number, eps: number) => void;
  private top = 0;

  private constructor(mod: WebAssembly.Module, bytes: number) {
    this.memory = new WebAssembly.Memory({ initial: Math.max(1, Math.ceil(bytes / 65536)) });
    const inst = new WebAssembly.Instance(mod, { env: { mem: this.memory } });
    this.fn = inst.exports.gaxpy as Arena['fn'];
    this.adamFn = inst.exports.adam as Arena['adamFn'];
  }

  /** An arena of `floats` float32s (plus alignment slack), or null where SIMD is unavailable. */
  static create(floats: number): Arena | null {
    const mod = wasmModule();
    return mod ? new Arena(mod, floats * 4 + 64 * 64) : null;
  }

  /** A zeroed Float32Array of n values inside the memory (16-byte aligned). */
  f32(n: number): Float32Array {
    const off = (this.top + 15) & ~15;
    if (off + n * 4 > this.memory.buffer.byteLength) throw new Error('arena: out of memory (sizing bug)');
    this.top = off + n * 4;
    return new Float32Array(this.memory.buffer, off, n);
  }

  i32(n: number): Int32Array {
    const off = (this.top + 15) & ~15;
    if (off + n * 4 > this.memory.buffer.byteLength) throw new Error('arena: out of memory (sizing bug)');
    this.top = off + n * 4;
    return new Int32Array(this.memory.buffer, off, n);
  }

  owns(a: Float32Array | Int32Array): boolean {
    return a.buffer === this.memory.buffer;
  }

  /** One Adam step over the first len - len % 4 values (the caller does the rest); all in this arena. */
  adam(w: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, lrc1: number, c2: number, l2: number, b1: number, b2: number, eps: number): number {
    const len = w.length & ~3;
    this.adamFn(w.byteOffset, g.byteOffset, m.byteOffset, v.byteOffset, len, lrc1, c2, l2, b1, 1 - b1, b2, 1 - b2, eps);
    return len;
  }

  /**
   * out[o..o+n) += sum over t < cnt of val[v+t] * base[b + idx[i+t] .. + n): element offsets into
   * arrays that live in this arena (idx entries are element offsets relative to base[b]).
   */
  gaxpy(out: Float32Array, o: number, n: number, idx: Int32Array, i: number, val: Float32Array, v: number, cnt: number, base: Float32Array, b: number): void {
    this.fn(out.byteOffset + o * 4, n, idx.byteOffset + i * 4, val.byteOffset + v * 4, cnt, base.byteOffset + b * 4);
  }
}
