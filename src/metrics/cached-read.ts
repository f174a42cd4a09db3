// A value that is expensive to read (a count(*) over a big table), read again only when older
// than maxAgeMs. Metrics scrapes use it so that scraping every few seconds costs one read per
// maxAgeMs, whatever the scrape rate; concurrent callers share one read.
export class CachedRead<T> {
  private value: T | null = null;
  private readAt = 0;
  private reading: Promise<T> | null = null;

  constructor(
    private readonly read: () => T | Promise<T>,
    readonly maxAgeMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get(): Promise<T> {
    if (this.value !== null && this.now() - this.readAt < this.maxAgeMs) return Promise.resolve(this.value);
    this.reading ??= Promise.resolve()
      .then(this.read)
      .then((v) => {
        this.value = v;
        this.readAt = this.now();
        return v;
      })
      .finally(() => (this.reading = null));
    return this.reading;
  }

  /** Apply a change this process made (e.g. n rows inserted) to the cached value, if any. */
  update(fn: (v: T) => void): void {
    if (this.value !== null) fn(this.value);
  }
}
