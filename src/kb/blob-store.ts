// Content-addressed blobs of the KB (model files, large sample payloads): the small interface an
// S3-compatible backend implements too, and the embedded one over DATA/blobs/<sha256> (a
// durable/content-dir: a blob that exists under its name is complete and its name is its sha256).
import type { Readable } from 'node:stream';
import { ContentDir, isSha256 } from '../durable/content-dir.js';

export { isSha256 };

export interface BlobStore {
  /** store bytes; resolves with their sha256 and size once durable. expectSha: refuse other content */
  put(src: Readable | Buffer, expectSha?: string): Promise<{ sha256: string; size: number }>;
  /** bytes [start, end] inclusive (whole blob when range is absent); throws when missing */
  get(sha: string, range?: { start: number; end: number }): Promise<Readable>;
  has(sha: string): Promise<boolean>;
  /** size in bytes, or null when missing */
  size(sha: string): Promise<number | null>;
  /** remove a blob (kb gc); no error when it is already gone */
  delete(sha: string): Promise<void>;
  /** every stored blob, in no particular order (kb gc) */
  list(): AsyncIterable<BlobInfo>;
  /** a URL that serves the blob without our token for expiresSec (object stores only) */
  presignGet?(sha: string, expiresSec: number): string;
  /** release connections (object stores) */
  close?(): void;
}

export interface BlobInfo {
  sha256: string;
  size: number;
  /** when it was written: kb gc leaves young blobs alone (a publish may be referencing them) */
  mtimeMs: number;
}

/**
 * Read size of a blob served from disk (GET /v1/blobs, bundles): 512 KiB instead of fs's 64 KiB.
 * Each chunk costs the KB one read, one socket write and their stream bookkeeping, so the chunk
 * size sets its CPU per pulled MB, the fleet's bill (bench:sync, `kb serve` serving a 51.5 MB
 * model to curl on loopback, medians of 7: 2.13 ms/MB at 64 KiB, 1.36 at 256 KiB, 0.97 at
 * 512 KiB, 0.78 at 1 MiB; curl 156 -> 124 ms). Not larger: a download in flight holds about one
 * chunk read ahead plus one in the socket's queue, for as long as a slow link takes to drain it,
 * so a KB serving a thousand slow edges holds ~1 GB at 512 KiB, ~2 GB at 1 MiB.
 */
const READ_CHUNK = 512 << 10;

export class FsBlobStore implements BlobStore {
  private readonly files: ContentDir;

  constructor(dir: string, tmpDir: string) {
    this.files = new ContentDir(dir, tmpDir);
    this.files.sweepTemps(); // leftovers of uploads killed mid-write
  }

  get dir(): string {
    return this.files.dir;
  }

  path(sha: string): string {
    return this.files.path(sha);
  }

  /** a put of content already stored renews its mtime (kb gc's grace period) */
  async put(src: Readable | Buffer, expectSha?: string): Promise<{ sha256: string; size: number }> {
    const { sha256, size } = await this.files.putStream(src, expectSha);
    return { sha256, size };
  }

  async get(sha: string, range?: { start: number; end: number }): Promise<Readable> {
    return this.files.openRead(sha, range, READ_CHUNK);
  }

  async has(sha: string): Promise<boolean> {
    return this.files.has(sha);
  }

  async size(sha: string): Promise<number | null> {
    return this.files.size(sha);
  }

  async delete(sha: string): Promise<void> {
    this.files.remove(sha);
  }

  async *list(): AsyncIterable<BlobInfo> {
    yield* this.files.list();
  }
}
