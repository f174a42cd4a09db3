// A content-addressed directory: each file is named by the sha256 of its bytes (the KB's blobs,
// the edge outbox's large payloads). A file is written to a temp name in tmpDir (same
// filesystem), hashed on the way, checked against the expected sha256, fsynced and renamed into
// place: a name that exists always holds exactly the bytes it names, never half of them.
// Temp names carry the writer's pid (blob-<pid>-<hex>.tmp) so sweepTemps can remove the
// leftovers of writers killed mid-write.
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants, createReadStream, createWriteStream, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, unlinkSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fsyncDir, fsyncFile, writeSynced } from './atomic-write.js';
import { pidAlive } from './process.js';

const SHA_RE = /^[0-9a-f]{64}$/;

export function isSha256(s: string): boolean {
  return SHA_RE.test(s);
}

export const sha256Of = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** Write a stream (or buffer) to `path`, hashing it on the way: one pass, no copy in memory. */
export async function spoolHashed(src: Readable | Buffer, path: string): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  await pipeline(
    Buffer.isBuffer(src) ? Readable.from([src]) : src,
    async function* (chunks: AsyncIterable<Buffer>) {
      for await (const c of chunks) {
        h.update(c);
        size += c.length;
        yield c;
      }
    },
    createWriteStream(path),
  );
  return { sha256: h.digest('hex'), size };
}

/** Temp files of this module, and the names older versions used (edge outbox, KB blob store). */
const TEMP_RE = /^blob-(?:(\d+)-[0-9a-f]+\.tmp|[0-9a-f]{64}-(\d+)\.tmp|(\d+)-[0-9a-f]{12})$/;

export interface PutResult {
  sha256: string;
  size: number;
  /** false when the content was there already (nothing written) */
  created: boolean;
}

/**
 * The whole file at path, which must be a regular file; else throws with code ENOTREG. A FIFO
 * put in a blob's place blocked the open forever and a device such as /dev/zero never ended (a
 * sync or an export hung on either), so the open does not block and the file type is checked
 * before anything is read.
 */
export function readRegularFile(path: string): Buffer {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    if (!fstatSync(fd).isFile()) throw Object.assign(new Error(`${path}: not a regular file`), { code: 'ENOTREG' });
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

export class ContentDir {
  constructor(
    readonly dir: string,
    readonly tmpDir: string,
  ) {
    mkdirSync(dir, { recursive: true });
    mkdirSync(tmpDir, { recursive: true });
  }

  path(sha: string): string {
    if (!isSha256(sha)) throw new Error(`blob "${sha}": not a sha256`);
    return join(this.dir, sha);
  }

  has(sha: string): boolean {
    return isSha256(sha) && existsSync(join(this.dir, sha));
  }

  /** size in bytes, or null when missing */
  size(sha: string): number | null {
    if (!isSha256(sha)) return null;
    try {
      return statSync(join(this.dir, sha)).size;
    } catch {
      return null;
    }
  }

  /** The whole blob (readRegularFile: a FIFO or device in its place throws ENOTREG). */
  read(sha: string): Buffer {
    return readRegularFile(this.path(sha));
  }

  /**
   * bytes [start, end] inclusive (whole file when range is absent); throws when missing.
   * chunkBytes: the size of each read (and of each chunk handed on); default fs's 64 KiB.
   */
  openRead(sha: string, range?: { start: number; end: number }, chunkBytes?: number): Readable {
    const p = this.path(sha);
    if (!existsSync(p)) throw new Error(`blob ${sha}: not found`);
    return createReadStream(p, { ...(range ? { start: range.start, end: range.end } : {}), ...(chunkBytes ? { highWaterMark: chunkBytes } : {}) });
  }

  private tempPath(): string {
    return join(this.tmpDir, `blob-${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
  }

  /** Move a finished temp file into place (or drop it when the content is there already). */
  private place(tmp: string, sha: string, syncDir: boolean): boolean {
    const dest = this.path(sha);
    if (existsSync(dest)) {
      rmSync(tmp, { force: true });
      // fresh mtime: a gc's grace period (kb gc) must not remove it before the caller references it
      const now = new Date();
      utimesSync(dest, now, now);
      return false;
    }
    renameSync(tmp, dest);
    if (syncDir) fsyncDir(this.dir);
    return true;
  }

  /**
   * Store bytes (synchronously: usable inside a SQLite transaction). `sha`, when given, must be
   * the caller's sha256 of exactly these bytes (it hashed them already); else they are hashed
   * here. syncDir false: the caller fsyncs the directory once for a batch (created tells when).
   */
  putBytes(bytes: Buffer, opts: { sha?: string; syncDir?: boolean } = {}): PutResult {
    const sha = opts.sha ?? sha256Of(bytes);
    if (this.has(sha)) return { sha256: sha, size: bytes.length, created: false };
    const tmp = this.tempPath();
    try {
      writeSynced(tmp, bytes);
      return { sha256: sha, size: bytes.length, created: this.place(tmp, sha, opts.syncDir !== false) };
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
  }

  /** Store a stream, hashed on the way; expectSha: refuse other content (nothing is stored). */
  async putStream(src: Readable | Buffer, expectSha?: string): Promise<PutResult> {
    const tmp = this.tempPath();
    try {
      const { sha256, size } = await spoolHashed(src, tmp);
      if (expectSha && sha256 !== expectSha) throw new Error(`blob content has sha256 ${sha256}, expected ${expectSha}`);
      fsyncFile(tmp);
      return { sha256, size, created: this.place(tmp, sha256, true) };
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
  }

  /** Remove a file; no error when it is already gone. */
  remove(sha: string): void {
    rmSync(this.path(sha), { force: true });
  }

  /** Every stored file (name, size, mtime), in no particular order. */
  *list(): Iterable<{ sha256: string; size: number; mtimeMs: number }> {
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

  /** Remove the temp files of writers that no longer run; returns their paths. */
  sweepTemps(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.tmpDir);
    } catch {
      return [];
    }
    const removed: string[] = [];
    for (const n of names) {
      const m = TEMP_RE.exec(n);
      if (!m || pidAlive(Number(m[1] ?? m[2] ?? m[3]))) continue;
      try {
        unlinkSync(join(this.tmpDir, n));
        removed.push(join(this.tmpDir, n));
      } catch {
        /* another process swept it */
      }
    }
    return removed;
  }
}
