// Per-filter rate caps (per minute / hour / day), counted in the edge DB table filter_counts so
// that a restart (or a second process: infer next to serve) does not reset them.
// Used inside the transaction that logs the window's samples: begin() reads the current
// buckets, admit() decides sample by sample, flush() writes the increments; the counts and
// the samples they admitted commit together.
import type { DB } from '../store/db.js';
import type { HardFilterConfig, RateCaps } from '../format/index-manifest.js';

const WINDOWS = [
  { key: 'per_minute', prefix: 'm', ms: 60_000 },
  { key: 'per_hour', prefix: 'h', ms: 3_600_000 },
  { key: 'per_day', prefix: 'd', ms: 86_400_000 },
] as const;

interface Slot {
  filter: string;
  bucket: string;
  cap: number;
  n: number;
  added: number;
}

export class RateCapCounter {
  private slots: Slot[][] = [];
  private readonly get;
  private readonly add;
  private readonly prune;

  /** names[i] is the filter_counts name of filters[i] (filterNames()). */
  constructor(
    db: DB,
    private readonly filters: readonly HardFilterConfig[],
    private readonly names: readonly string[],
  ) {
    this.get = db.prepare('SELECT n FROM filter_counts WHERE filter = ? AND bucket = ?').pluck();
    this.add = db.prepare('INSERT INTO filter_counts (filter, bucket, n) VALUES (?, ?, ?) ON CONFLICT(filter, bucket) DO UPDATE SET n = n + excluded.n');
    this.prune = db.prepare("DELETE FROM filter_counts WHERE filter = ? AND substr(bucket, 1, 1) = ? AND CAST(substr(bucket, 3) AS INTEGER) < ?");
  }

  /** Does any filter have a cap? When not, the pipeline skips the counter entirely. */
  static needed(filters: readonly HardFilterConfig[]): boolean {
    return filters.some((f) => f.caps && WINDOWS.some((w) => f.caps![w.key as keyof RateCaps] !== undefined));
  }

  /** Load the current buckets of every capped filter (call inside the logging transaction). */
  begin(now: number): void {
    this.slots = this.filters.map((f, i) => {
      const out: Slot[] = [];
      if (!f.caps) return out;
      for (const w of WINDOWS) {
        const cap = f.caps[w.key as keyof RateCaps];
        if (cap === undefined) continue;
        const b = Math.floor(now / w.ms);
        const bucket = `${w.prefix}:${b}`;
        out.push({ filter: this.names[i], bucket, cap, n: (this.get.get(this.names[i], bucket) as number | undefined) ?? 0, added: 0 });
      }
      return out;
    });
  }

  /** May filter i log one more sample? Counts it when yes. */
  admit(i: number): boolean {
    const s = this.slots[i];
    if (!s || s.length === 0) return true;
    for (const x of s) if (x.n + x.added >= x.cap) return false;
    for (const x of s) x.added++;
    return true;
  }

  /** Write the increments and drop buckets of closed windows (still inside the transaction). */
  flush(): void {
    for (const s of this.slots) {
      for (const x of s) {
        if (x.added > 0) this.add.run(x.filter, x.bucket, x.added);
        const [p, b] = x.bucket.split(':');
        this.prune.run(x.filter, p, Number(b));
        x.n += x.added;
        x.added = 0;
      }
    }
  }
}
