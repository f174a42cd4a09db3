// Push body encoding per batch: gzip or identity (the KB accepts both, DESIGN.md protocol).
//
// Why not always gzip: on a 2-core gateway zlib level 1 runs at ~35 MB/s of JSON, far below a
// LAN or loopback link (hundreds of MB/s), so on a fast link gzip IS the push's bottleneck
// (bench:sync: gzip was ~60% of the CPU of a push, and the KB pays a gunzip per batch too).
// On a slow uplink (LTE, satellite) the halved wire bytes win instead.
//
// `auto` decides by measuring what it cares about: raw body bytes pushed per ms of the push
// loop (time between consecutive acks, so CPU contention, the link, and the KB's own work all
// count), per mode. It starts with gzip (the safe choice on an unknown, possibly slow link),
// tries EXPLORE batches uncompressed, then keeps the faster mode and re-tries the other one for
// EXPLORE batches after REEXPLORE batches (links change); while the same mode keeps winning the
// gap doubles up to MAX_REEXPLORE (a long push pays ~1 %, not 6 %), a flip resets it. Uncompressed must be MIN_GAIN faster
// to win: on a tie the smaller (maybe metered) transfer is kept. A body whose probed slice
// does not compress (ratio > MAX_RATIO: JPEG/PNG payloads) is sent as is without measuring.
// Estimated extra cost of the exploration: on a slow link ~EXPLORE/REEXPLORE batches at 1/ratio
// their gzip time (~3-4 %); on a fast link the gzip retries (~5 %).
import { gzipSync } from 'node:zlib';

export type CompressMode = 'auto' | 'gzip' | 'none';
export const COMPRESS_MODES: readonly CompressMode[] = ['auto', 'gzip', 'none'];

/** body bytes probed for compressibility (~1 ms at level 1) on the first batches */
const PROBE_BYTES = 32 * 1024;
const PROBES = 2;
/** gzip only pays when it shrinks a body below this fraction */
const MAX_RATIO = 0.9;
/** batches per exploration run, and a run of the other mode every REEXPLORE batches */
const EXPLORE = 4;
const REEXPLORE = 64;
const MAX_REEXPLORE = 512;
/** uncompressed must push this much faster to be chosen */
const MIN_GAIN = 1.1;
/** weight of a new measurement in the running averages */
const ALPHA = 0.3;

const ewma = (old: number, x: number) => (Number.isFinite(old) ? old + ALPHA * (x - old) : x);

export class CompressPolicy {
  /** raw body bytes per ms of push loop, per mode */
  private rate = { gzip: NaN, plain: NaN };
  private ratio = NaN;
  private probes = 0;
  /** batches decided so far */
  private n = 0;
  /** the next exploration run starts at batch nextExplore; gap until the one after */
  private nextExplore = 2 * EXPLORE + REEXPLORE;
  private gap = REEXPLORE;
  /** the winner when the last exploration run started */
  private bestAtExplore: boolean | null = null;
  private exploreUntil = -1;
  /** the mode tried by the running exploration run (fixed for the run) */
  private exploreGzip = false;

  constructor(
    readonly mode: CompressMode,
    private readonly level = 1,
  ) {}

  /** Should this body be sent gzipped? (called once per batch, in send order) */
  useGzip(body: Buffer): boolean {
    if (this.mode === 'gzip') return true;
    if (this.mode === 'none') return false;
    if (this.probes < PROBES) this.probe(body);
    if (this.ratio > MAX_RATIO) return false;
    const i = this.n++;
    // 0..EXPLORE-1 gzip, then EXPLORE..2*EXPLORE-1 uncompressed, then the faster one
    if (i < EXPLORE) return true;
    if (i < 2 * EXPLORE) return false;
    const best = this.bestIsGzip();
    if (i === this.nextExplore) {
      // the winner held since the last run: look less often; it flipped: look soon again
      this.gap = this.bestAtExplore === null || this.bestAtExplore === best ? Math.min(this.gap * 2, MAX_REEXPLORE) : REEXPLORE;
      this.bestAtExplore = best;
      this.exploreUntil = i + EXPLORE;
      this.exploreGzip = !best;
      this.nextExplore = i + this.gap;
    }
    // the mode in use is measured on every batch, so a link that gets worse for it flips the
    // choice at once; runs of the other mode find out whether that one got better
    return i < this.exploreUntil ? this.exploreGzip : best;
  }

  /**
   * A batch of `rawBytes` body bytes (before compression) was acked `ms` after the previous
   * ack (or the push start). The first batch of each run of a mode is skipped: its interval
   * still carries the other mode's batches in the read-ahead.
   */
  observeAck(gzip: boolean, rawBytes: number, ms: number, firstOfRun: boolean): void {
    if (this.mode !== 'auto' || firstOfRun || !(ms > 0)) return;
    const k = gzip ? 'gzip' : 'plain';
    this.rate[k] = ewma(this.rate[k], rawBytes / ms);
  }

  private bestIsGzip(): boolean {
    // a mode not measured yet is tried (again): with two batches in flight (push.ts) the first
    // batch after an exploration run is decided before that run's acks are all in
    if (!(this.rate.gzip > 0)) return true;
    if (!(this.rate.plain > 0)) return false;
    return this.rate.plain < this.rate.gzip * MIN_GAIN;
  }

  /** the estimates, for the --json summary */
  estimates(): { gzip_mb_s: number | null; plain_mb_s: number | null; ratio: number | null } {
    const r = (x: number, d: number) => (Number.isFinite(x) ? +x.toFixed(d) : null);
    return { gzip_mb_s: r(this.rate.gzip / 1000, 1), plain_mb_s: r(this.rate.plain / 1000, 1), ratio: r(this.ratio, 3) };
  }

  private probe(body: Buffer): void {
    const n = Math.min(PROBE_BYTES, body.length);
    if (n < 1024) return; // tiny bodies: nothing to decide on (gzip costs nothing either)
    this.probes++;
    // a slice from the middle: the head is the same JSON keys in every batch
    const off = Math.floor((body.length - n) / 2);
    const z = gzipSync(body.subarray(off, off + n), { level: this.level });
    this.ratio = ewma(this.ratio, z.length / n);
  }
}
