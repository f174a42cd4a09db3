// The one random-number generator of sedna-ll: seeded, so training runs, synthetic canary inputs
// and test models are reproducible (Math.random is not seedable).

/** Deterministic small-integer PRNG (mulberry32) for reproducible weights in tests and training. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
