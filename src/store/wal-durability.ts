// Group commit for a long-running writer (serve's outbox): a commit that does not block the event
// loop on its fsync, and one fsync shared by every commit made while the previous one ran.
//
// With synchronous=FULL (db.ts), SQLite fsyncs the WAL inside every COMMIT: the whole process
// waits for the disk, and every unrelated request with it. Here the connection runs with
// synchronous=NORMAL instead: a COMMIT only write()s its WAL frames (atomic, and durable
// against a kill -9 at once: the frames are in the kernel's page cache), and the caller then
// awaits durable(), an fdatasync of the WAL file on libuv's thread pool. When that resolves,
// every frame committed before the call is on stable storage, which is what FULL gave at COMMIT
// time: a power cut can no longer take the transaction back (WAL recovery replays every
// checksummed frame up to the last commit frame; header and frames are in the same file, so
// one fdatasync covers both). An answer that reports a sample logged is sent only after that.
// Commits whose fsync has not finished yet may be lost to a power cut, never half-applied (WAL
// + NORMAL is always consistent), and nobody was told they were durable.
// Checkpoints keep their own fsyncs under NORMAL (WAL before, database after).
//
// The WAL file keeps its inode while any connection is open (SQLite deletes it only when the last
// one closes; ours stays open for the server's life). Its identity is still checked every
// IDENTITY_EVERY fsyncs (a stat; not each time: under load a syscall on the event loop costs
// tens of us) and the descriptor reopened if it changed.
//
// Inline fsyncs (opt-in, `inlineMaxMs`: serve): on a disk whose fdatasync takes a fraction of a
// millisecond, the thread-pool hand-off costs more than the fsync itself - two cross-thread
// wake-ups per batch (submit, completion), each a chance to lose the core on a busy 2-core
// gateway. When nothing is in flight and the recent fsyncs were fast (FsyncPace: a moving
// average under inlineMaxMs), durable() fdatasyncs on the calling thread instead, and the event
// loop blocks for that fraction of a millisecond. A disk that turns slow (an SD card, a busy
// eMMC: tens of ms) is seen by its own inline fsync and sends the next ones back to the thread
// pool, so the loop is never held for long twice in a row; they come back inline once the
// average fell again. Either way the answer waits for the same fdatasync: same promise.
import { closeSync, fdatasync, fdatasyncSync, fstatSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { fsyncDir } from '../durable/atomic-write.js';
import type { DB } from './db.js';

/** fsyncs between two checks that the open WAL descriptor is still the file at its path */
export const IDENTITY_EVERY = 64;

/**
 * Whether fdatasyncs are fast enough to run on the event loop: a moving average of the inline
 * ones' durations (weight 1/4 for the newest) against a limit. An fsync on the thread pool cannot
 * be timed without its hand-off (which on a busy machine alone takes milliseconds), so each one
 * decays the average by 1/4 instead: after a slow inline fsync, a few go to the thread pool, then
 * one inline probes the disk again. On a disk at 20 ms per fsync that is about 1 in 7 inline
 * (the loop blocked 20 ms); on a fast one, all of them.
 */
export class FsyncPace {
  private avg = 0;
  constructor(private readonly limitMs: number) {}
  /** an inline fdatasync took `ms` */
  took(ms: number): void {
    this.avg += (ms - this.avg) / 4;
  }
  /** an fdatasync ran on the thread pool */
  offloaded(): void {
    this.avg *= 0.75;
  }
  get inline(): boolean {
    return this.avg < this.limitMs;
  }
}

interface Waiter {
  promise: Promise<void>;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class WalDurability {
  private fd = -1;
  private ino = -1;
  private sinceCheck = 0;
  /** the fdatasync running now (covers commits made before it started) */
  private running: Promise<void> | null = null;
  /** callers since `running` started: served by the next fdatasync */
  private waiting: Waiter | null = null;
  /** fsyncs done and callers served (tests, the bench: how much grouping happened) */
  syncs = 0;
  calls = 0;
  /** WAL descriptors opened (1 unless the file was replaced) */
  reopens = 0;
  /** of the syncs, those run on the calling thread (inlineMaxMs) */
  inlineSyncs = 0;
  private readonly pace: FsyncPace | null;

  /**
   * `normal: false`: leave the connection's synchronous setting alone (the KB switches to
   * NORMAL only around the commits it then makes durable with durable(); its other writes keep FULL).
   * `inlineMaxMs`: fdatasync on the calling thread while the recent ones averaged under this
   * many ms and none is in flight (see the file's head); absent: always on the thread pool.
   */
  constructor(
    db: DB,
    private readonly dbPath: string,
    opts: { normal?: boolean; inlineMaxMs?: number } = {},
  ) {
    if (opts.normal !== false) db.pragma('synchronous = NORMAL');
    this.pace = opts.inlineMaxMs !== undefined && opts.inlineMaxMs > 0 ? new FsyncPace(opts.inlineMaxMs) : null;
  }

  /** Resolves once everything this process committed before the call is on stable storage. */
  durable(): Promise<void> {
    this.calls++;
    if (this.waiting) return this.waiting.promise;
    if (!this.running && this.pace?.inline) return this.inlineSync();
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<void>((a, b) => {
      resolve = a;
      reject = b;
    });
    this.waiting = { promise, resolve, reject };
    if (!this.running) this.start();
    return promise;
  }

  /** fdatasync now, on this thread (nothing in flight: it covers every commit made so far) */
  private inlineSync(): Promise<void> {
    try {
      const fd = this.walFd();
      const t0 = performance.now();
      fdatasyncSync(fd);
      this.pace!.took(performance.now() - t0);
    } catch (e) {
      this.syncs++;
      const err = e as NodeJS.ErrnoException;
      return Promise.reject(err.syscall === 'fdatasync' ? new Error(`${this.dbPath}-wal: fdatasync failed: ${err.code ?? err.message}`) : err);
    }
    this.syncs++;
    this.inlineSyncs++;
    return Promise.resolve();
  }

  private start(): void {
    const w = this.waiting!;
    this.waiting = null;
    this.running = new Promise<void>((done) => {
      let fd: number;
      try {
        fd = this.walFd();
      } catch (e) {
        w.reject(e as Error);
        return done();
      }
      fdatasync(fd, (err) => {
        this.syncs++;
        this.pace?.offloaded();
        if (err) w.reject(new Error(`${this.dbPath}-wal: fdatasync failed: ${err.code ?? err.message}`));
        else w.resolve();
        done();
      });
    }).then(() => {
      this.running = null;
      if (this.waiting) this.start();
    });
  }

  private walFd(): number {
    const path = `${this.dbPath}-wal`;
    if (this.fd >= 0 && (++this.sinceCheck < IDENTITY_EVERY || statSync(path).ino === this.ino)) {
      if (this.sinceCheck >= IDENTITY_EVERY) this.sinceCheck = 0;
      return this.fd;
    }
    this.sinceCheck = 0;
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = openSync(path, 'r');
    this.reopens++;
    this.ino = fstatSync(this.fd).ino;
    // a WAL file created since the database was opened: its directory entry must be durable too
    fsyncDir(dirname(path));
    return this.fd;
  }

  /** Wait for the fsync in flight (if any) and release the descriptor. */
  async close(): Promise<void> {
    while (this.running) await this.running;
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
