// Content-addressed blobs of the KB (model files, large sample payloads): the small interface an
// S3-compatible backend implements too, and the embedded one over DATA/blobs/<sha256>.
// A blob is written to a temp file, hashed on the way, fsynced, and renamed into place, so a
// blob that exists under its name is always complete and its name is its sha256.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, readdirSync, renameSync, utimesSync, rmSync, statSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fsyncDir } from '../store/home.js';

const SHA_RE = /^[0-9a-f]{64}$/;

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

export function isSha256(s: string): boolean {
  return SHA_RE.test(s);
}

export class FsBlobStore implements BlobStore {
  constructor(
    readonly dir: string,
    private readonly tmpDir: string,
  ) {
    mkdirSync(dir, { recursive: true });
    mkdirSync(tmpDir, { recursive: true });
  }

  path(sha: string): string {
    if (!isSha256(sha)) throw new Error(`blob "${sha}": not a sha256`);
    return join(this.dir, sha);
  }

  async put(src: Readable | Buffer, expectSha?: string): Promise<{ sha256: string; size: number }> {
    const tmp = join(this.tmpDir, `blob-${process.pid}-${randomBytes(6).toString('hex')}`);
    const h = createHash('sha256');
    let size = 0;
    const input = Buffer.isBuffer(src) ? Readable.from([src]) : src;
    try {
      await pipeline(
        input,
        async function* (chunks: AsyncIterable<Buffer>) {
          for await (const c of chunks) {
            h.update(c);
            size += c.length;
            yield c;
          }
        },
        createWriteStream(tmp),
      );
      const sha256 = h.digest('hex');
      if (expectSha && sha256 !== expectSha) throw new Error(`blob content has sha256 ${sha256}, expected ${expectSha}`);
      const fd = openSync(tmp, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      const dest = this.path(sha256);
      if (existsSync(dest)) {
        rmSync(tmp, { force: true });
        // fresh mtime: kb gc's grace period must not remove it before the caller references it
        const now = new Date();
        utimesSync(dest, now, now);
      }
      else {
        renameSync(tmp, dest);
        fsyncDir(this.dir);
      }
      return { sha256, size };
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
  }

  async get(sha: string, range?: { start: number; end: number }): Promise<Readable> {
    const p = this.path(sha);
    if (!existsSync(p)) throw new Error(`blob ${sha}: not found`);
    return createReadStream(p, range ? { start: range.start, end: range.end } : {});
  }

  async has(sha: string): Promise<boolean> {
    return isSha256(sha) && existsSync(this.path(sha));
  }

  async size(sha: string): Promise<number | null> {
    if (!isSha256(sha)) return null;
    try {
      return statSync(this.path(sha)).size;
    } catch {
      return null;
    }
  }

  async delete(sha: string): Promise<void> {
    rmSync(this.path(sha), { force: true });
  }

  async *list(): AsyncIterable<BlobInfo> {
    for (const name of readdirSync(this.dir)) {
      if (!isSha256(name)) continue;
      try {
        const st = statSync(join(this.dir, name));
        yield { sha256: name, size: st.size, mtimeMs: st.mtimeMs };
      } catch {
        // removed meanwhile
      }
    }
  }
}
