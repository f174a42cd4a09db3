// Files that are either the old version or the new one, never half-written, after a kill -9 or
// a power cut: write a temp file in the same directory, fsync it, rename it over the name,
// fsync the directory (the rename itself is durable only then). Temp names carry the writer's
// pid (<name>.tmp-<pid>-<n>) so a sweep can remove the leftovers of writers that died.
import { closeSync, fstatSync, fsyncSync, lstatSync, mkdirSync, openSync, readSync, readlinkSync, realpathSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

let seq = 0;
/** A temp name next to `path`, unique in this process, that names the writing pid. */
export function tempNameFor(path: string): string {
  return `${path}.tmp-${process.pid}-${Date.now()}${String(++seq).padStart(4, '0')}`;
}

/** fsync a file by name (its data and size reach the disk). */
export function fsyncFile(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** fsync a directory, so renames and unlinks in it are durable. */
export function fsyncDir(dir: string): void {
  try {
    fsyncFile(dir);
  } catch {
    /* some filesystems refuse fsync on directories; the rename is still atomic */
  }
}

/** Write all of `data` to a new file at `path` (mode), fsynced; no rename. */
export function writeSynced(path: string, data: string | Buffer, mode = 0o644): void {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const fd = openSync(path, 'w', mode);
  try {
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * An existing path that is not a regular file: a device (/dev/null, /dev/stdout), a FIFO or a
 * socket, or a symlink to one. An output the operator names may be one (`-o /dev/stdout`,
 * `--token-out >(ssh ...)`): it is written through, never renamed over. Renaming replaced the
 * device node itself: run as root, `kb samples export -o /dev/null` left a regular file at
 * /dev/null.
 */
export function isSpecialFile(path: string): boolean {
  try {
    const st = statSync(path);
    return !st.isFile() && !st.isDirectory();
  } catch {
    return false;
  }
}

/**
 * The fd of this process that path names through /proc (/dev/stdout -> /proc/self/fd/1,
 * /dev/fd/N, /proc/self/fd/N), else null. Such a name reaches an open file of this process,
 * whatever it is: with stdout redirected to a regular file, /dev/stdout is a link to that file,
 * and renaming a temp file over it replaced the link (as root, /dev/stdout itself) while the
 * file got nothing. It is written through the fd itself: a new open of the link would write
 * from offset 0 of a `>` file, and the CLI's next lines on fd 1 would overwrite it.
 */
export function ownFd(path: string): number | null {
  let p = resolve(path);
  for (let hop = 0; hop < 8; hop++) {
    let full: string;
    try {
      full = join(realpathSync(dirname(p)), basename(p));
    } catch {
      return null;
    }
    const m = /^\/proc\/(\d+)\/fd\/(\d+)$/.exec(full);
    if (m) {
      if (Number(m[1]) !== process.pid) return null;
      // a regular file only: a pipe, terminal or socket is opened anew by name (isSpecialFile),
      // a blocking description of its own; fd 1 itself may be non-blocking (libuv sets a stdout
      // pipe so), where a write to a full pipe failed with EAGAIN
      const fd = Number(m[2]);
      try {
        return fstatSync(fd).isFile() ? fd : null;
      } catch {
        return null;
      }
    }
    try {
      if (!lstatSync(full).isSymbolicLink()) return null;
      p = resolve(dirname(full), readlinkSync(full));
    } catch {
      return null;
    }
  }
  return null;
}

function writeAll(fd: number, data: Buffer, n = data.length): void {
  for (let off = 0; off < n; ) off += writeSync(fd, data, off, n - off);
}

/** Write data to an existing special file (isSpecialFile) or one of our fds (ownFd) in place. */
function writeThrough(path: string, data: Buffer, own: number | null): void {
  if (own !== null) return writeAll(own, data);
  const fd = openSync(path, 'w');
  try {
    writeAll(fd, data);
  } finally {
    closeSync(fd);
  }
}

/**
 * Make a finished temp file (written by a stream, a tar writer, ...; name it with tempNameFor)
 * the file at `path`: fsync it, rename it over the name, fsync the directory.
 */
export function commitTemp(tmp: string, path: string): void {
  const own = ownFd(path);
  if (own !== null || isSpecialFile(path)) {
    // copied in pieces: a bundle or an export may be larger than memory should hold
    const src = openSync(tmp, 'r');
    let dst: number | null = null;
    try {
      dst = own ?? openSync(path, 'w');
      const buf = Buffer.allocUnsafe(1024 * 1024);
      for (let n; (n = readSync(src, buf, 0, buf.length, null)) > 0; ) writeAll(dst, buf, n);
    } finally {
      if (dst !== null && own === null) closeSync(dst);
      closeSync(src);
    }
    rmSync(tmp, { force: true });
    return;
  }
  fsyncFile(tmp);
  renameSync(tmp, path);
  fsyncDir(dirname(path));
}

export interface AtomicWriteOptions {
  /** file mode of the new file (default 0o644) */
  mode?: number;
  /** fsync the directory after the rename (default true); false when the caller batches it */
  syncDir?: boolean;
}

/** Replace `path` with `data` atomically and durably (temp, fsync, rename, dir fsync). */
export function writeFileAtomic(path: string, data: string | Buffer, opts: number | AtomicWriteOptions = {}): void {
  const o = typeof opts === 'number' ? { mode: opts } : opts;
  const own = ownFd(path);
  if (own !== null || isSpecialFile(path)) return writeThrough(path, typeof data === 'string' ? Buffer.from(data) : data, own);
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempNameFor(path);
  try {
    writeSynced(tmp, data, o.mode ?? 0o644);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  if (o.syncDir !== false) fsyncDir(dirname(path));
}
