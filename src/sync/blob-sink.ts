// A downloading blob's way to disk: each received chunk is hashed once, as it is (no copy), and
// handed to the thread pool in groups of ~1 MiB (one writev each) while the next bytes arrive;
// every SYNC_EVERY bytes an fdatasync runs there too, beside the writes, so the caller's final
// fsync finds little left to flush. The event loop only receives and hashes: before, each 64 KiB
// chunk was one synchronous write on it, and the whole file was flushed at the end in one long
// fsync.
//
// Resume safety is unchanged: bytes land at their own offsets in order, and a failure (a cut
// connection, an oversized body) first writes what was received before it, so the .part file
// always holds a prefix of the blob that the next attempt continues from.
//
// GroupWriter is the write side alone (ordered writes, paced fdatasync); sinkHashed feeds it
// from any stream of chunks, blob-get.ts from its own read buffers.
import { fdatasync, writev } from 'node:fs';
import type { Hash } from 'node:crypto';

/** bytes gathered before one writev */
export const GROUP = 1 << 20;
/** bytes written between two background fdatasync calls */
const SYNC_EVERY = 16 << 20;

function writevAt(fd: number, bufs: Buffer[], pos: number): Promise<void> {
  return new Promise((resolve, reject) => {
    writev(fd, bufs, pos, (err, n) => {
      if (err) return reject(err);
      const total = bufs.reduce((a, b) => a + b.length, 0);
      if (n === total) return resolve();
      // a short write (rare on files): the rest, from where it stopped
      let skip = n;
      const rest: Buffer[] = [];
      for (const b of bufs) {
        if (skip >= b.length) skip -= b.length;
        else {
          rest.push(skip ? b.subarray(skip) : b);
          skip = 0;
        }
      }
      writevAt(fd, rest, pos + n).then(resolve, reject);
    });
  });
}

const datasync = (fd: number) => new Promise<void>((resolve, reject) => fdatasync(fd, (e) => (e ? reject(e) : resolve())));

/**
 * Ordered writes of a file from an offset, one writev at a time on the thread pool, with an
 * fdatasync every SYNC_EVERY bytes running beside them. The caller must not touch a buffer it
 * handed on before idle() resolves.
 */
export class GroupWriter {
  private writing: Promise<void> = Promise.resolve();
  // the background fdatasync (one at a time), and its failure, reported at the end. Not part of
  // `writing`: chained there, every 16 MiB the receive loop waited for a whole disk flush
  // before handing on the next group (measured: 5-7 % of a loopback download)
  private syncing: Promise<void> | null = null;
  private syncError: unknown = null;
  private sinceSync = 0;
  private pending = 0;

  // the first write failure went to onError (the ones queued behind it fail with it)
  private reported = false;

  constructor(
    private readonly fd: number,
    /** the file offset the next write goes to */
    public pos: number,
    /** a write failed: called once, as soon as it fails, whether or not anyone awaits idle() */
    private readonly onError: (e: unknown) => void = () => {},
  ) {}

  /** a write handed on is not finished yet */
  get busy(): boolean {
    return this.pending > 0;
  }

  /** Write bufs (n bytes in all) at pos, after every write handed on before. */
  write(bufs: Buffer[], n: number): void {
    if (!n) return;
    const at = this.pos;
    this.pos += n;
    this.pending++;
    this.writing = this.writing
      .then(async () => {
        await writevAt(this.fd, bufs, at);
        this.sinceSync += n;
        if (this.sinceSync >= SYNC_EVERY && !this.syncing) {
          this.sinceSync = 0;
          this.syncing = datasync(this.fd)
            .catch((e: unknown) => void (this.syncError ??= e))
            .finally(() => void (this.syncing = null));
        }
      })
      // a write queued behind a failed one never runs: it is not pending any more either
      .finally(() => void this.pending--);
    // A failure is handled here, at once: a reader waiting for the network awaits no write,
    // and a rejection no one listened to was an unhandledRejection (the CLI died with
    // `EBADF: bad file descriptor, write` / ENOSPC instead of ending the body with the error)
    this.writing.catch((e: unknown) => {
      if (this.reported) return;
      this.reported = true;
      this.onError(e);
    });
  }

  /** every write handed on so far is done (rejects with the first write error) */
  idle(): Promise<void> {
    return this.writing;
  }

  /** after a failure: whatever still runs on the fd has finished, errors ignored (the caller closes it next) */
  async settle(): Promise<void> {
    await this.writing.catch(() => {});
    await this.syncing;
  }

  /** the writes and the background fdatasync are done; throws their error */
  async finish(): Promise<void> {
    try {
      await this.writing;
    } finally {
      // a failed write still waits for the background fdatasync: the caller closes fd next
      await this.syncing;
    }
    if (this.syncError) throw this.syncError;
  }
}

export interface SinkOptions {
  /** the blob's size: a body going past it is refused (tooLarge's error is thrown) */
  size: number;
  tooLarge: () => Error;
  onBytes?: (n: number) => void;
}

/**
 * Write `body` into `fd` from byte `offset`, hashing every byte into `hash`; returns the
 * position after the last byte written. Errors of the body (or tooLarge) are rethrown after
 * everything received before them is on its way to disk (written, not yet fsynced). A failed
 * write ends it at once with the write's own error (the body is closed: nothing more is read).
 */
export async function sinkHashed(body: AsyncIterable<Buffer>, fd: number, offset: number, hash: Hash, o: SinkOptions): Promise<number> {
  // A failed write ends the wait for the next chunk at once: the loop below waits for the chunk
  // or for the failure. Before, the failure was seen only when the next 1 MiB group was full: on
  // a link slower than the disk (or stalled) the download went on into a file it could not
  // write, for as long as the body timeout allowed, and ended with the timeout's error instead
  // of ENOSPC. Each wait is its own promise, woken through `wake`: a Promise.race against one
  // long-lived failure promise left a reaction on it per chunk (~330 bytes each, held until the
  // download ended: +134 MB over 400k chunks).
  let failure: { e: unknown } | null = null;
  let wake: ((e: unknown) => void) | null = null;
  const w = new GroupWriter(fd, offset, (e) => {
    failure = { e };
    wake?.(e);
  });
  const chunks = body[Symbol.asyncIterator]();
  const nextChunk = (next: Promise<IteratorResult<Buffer>>) =>
    new Promise<IteratorResult<Buffer>>((resolve, reject) => {
      const f = failure as { e: unknown } | null;
      if (f) return reject(f.e);
      wake = reject;
      next.then(resolve, reject);
    }).finally(() => void (wake = null));
  let pos = offset; // bytes received
  let group: Buffer[] = [];
  let groupBytes = 0;
  const flush = () => {
    w.write(group, groupBytes);
    group = [];
    groupBytes = 0;
  };
  let reading: Promise<IteratorResult<Buffer>> | null = null;
  try {
    for (;;) {
      reading = chunks.next();
      const r = await nextChunk(reading);
      reading = null;
      if (r.done) break;
      const chunk = r.value;
      if (pos + chunk.length > o.size) throw o.tooLarge();
      hash.update(chunk);
      pos += chunk.length;
      group.push(chunk);
      groupBytes += chunk.length;
      o.onBytes?.(chunk.length);
      if (groupBytes >= GROUP) {
        // one write in flight at a time: the next group gathers while it runs
        await w.idle();
        flush();
      }
    }
  } catch (e) {
    stopReading(body, chunks, reading);
    // keep what arrived before the failure: the next attempt resumes after it (after a failed
    // write, the writer runs nothing more)
    await w.settle();
    flush();
    await w.settle(); // the caller closes fd next: nothing may still run on it
    throw e;
  }
  try {
    await w.idle();
    flush();
    await w.finish();
  } catch (e) {
    await w.settle(); // a failed write: the background fdatasync may still run on fd
    throw e;
  }
  return pos;
}

/**
 * Close the body after a failure, as `for await` did on a throw (iterator.return()). A stream
 * (node:http's answer, undici's body) is destroyed first: its iterator is an async generator,
 * whose return() would wait behind a next() still pending on a stalled link.
 */
function stopReading(body: AsyncIterable<Buffer>, chunks: AsyncIterator<Buffer>, reading: Promise<IteratorResult<Buffer>> | null): void {
  reading?.catch(() => {}); // a next() left pending rejects when the stream is destroyed
  const stream = body as { destroy?: (e?: Error) => void };
  if (typeof stream.destroy === 'function') stream.destroy();
  chunks.return?.().catch(() => {});
}
