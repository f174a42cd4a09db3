// Single-file executables only: the native parts (onnxruntime's binding and libonnxruntime,
// better-sqlite3's addon) ride inside the binary as SEA assets, listed in the natives.json asset
// (name, sha256, size, gzip). dlopen needs real files, so on first use they are unpacked into a
// content-addressed cache directory and loaded from there.
//
// - Content-addressed: the directory is named after the hash of the whole set, so two builds
//   never share files, and an upgraded binary unpacks next to (not over) what a running older
//   one has mapped. The binding finds libonnxruntime.so.1 through its RUNPATH $ORIGIN, hence
//   one directory per set rather than one per file.
// - Verified: every file's sha256 is checked against the manifest when it is unpacked; a later
//   start trusts a file of the right size (hashing 46 MB on every start would cost more than the
//   whole start-up budget).
// - Safe when two processes start at once: each writes its own temporary file, verifies it and
//   renames it into place (atomic); both write identical bytes, so whichever rename wins is right.
// - A cache directory that cannot be written is one clear error naming the directory and
//   SEDNA_LL_CACHE_DIR, not a stack trace.
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { getAsset, getRawAsset } from 'node:sea';
import { gunzipSync } from 'node:zlib';

interface NativeFile {
  /** file name inside the cache directory (what dlopen and RUNPATH look for) */
  name: string;
  /** SEA asset key holding its bytes */
  asset: string;
  /** sha256 (hex) of the unpacked bytes */
  sha256: string;
  /** unpacked size in bytes */
  size: number;
  /** the asset is gzip-compressed (the large shared library: ~3x smaller binary) */
  gzip: boolean;
}

interface NativeManifest {
  /** sha256 over the files' hashes: names the cache directory */
  id: string;
  files: NativeFile[];
}

/** Where unpacked natives live: $SEDNA_LL_CACHE_DIR, else $XDG_CACHE_HOME/sedna-ll, else ~/.cache/sedna-ll. */
export function nativeCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SEDNA_LL_CACHE_DIR) return env.SEDNA_LL_CACHE_DIR;
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'sedna-ll');
  return join(homedir(), '.cache', 'sedna-ll');
}

let manifest: NativeManifest | null = null;
let dir: string | null = null;
const loaded = new Map<string, unknown>();

function readManifest(): NativeManifest {
  manifest ??= JSON.parse(getAsset('natives.json', 'utf8')) as NativeManifest;
  return manifest;
}

function cannotWrite(where: string, e: unknown): Error {
  const code = (e as NodeJS.ErrnoException).code ?? String(e);
  return new Error(
    `cannot unpack the native libraries into ${where}: ${code}${code === 'EROFS' || code === 'EACCES' || code === 'EPERM' ? ' (not writable)' : ''}; set SEDNA_LL_CACHE_DIR to a writable directory`,
  );
}

/** Make sure `f` exists (verified) in `d`; returns its path. */
function ensureFile(d: string, f: NativeFile): string {
  const path = join(d, f.name);
  try {
    if (statSync(path).size === f.size) return path;
  } catch {
    // not unpacked yet
  }
  const raw = Buffer.from(getRawAsset(f.asset) as ArrayBuffer); // a view of the binary, no copy
  const bytes = f.gzip ? gunzipSync(raw) : raw;
  const got = createHash('sha256').update(bytes).digest('hex');
  if (got !== f.sha256) throw new Error(`embedded ${f.name} is corrupt (sha256 ${got}, expected ${f.sha256}): the sedna-ll binary is damaged`);
  const tmp = join(d, `.${f.name}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fd = -1;
  try {
    fd = openSync(tmp, 'wx', 0o755);
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    chmodSync(tmp, 0o755);
    renameSync(tmp, path);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    rmSync(tmp, { force: true });
    throw cannotWrite(d, e);
  }
  return path;
}

/** The cache directory of this binary's natives, every file unpacked and verified. */
function nativeDir(): string {
  if (dir) return dir;
  const m = readManifest();
  const d = join(nativeCacheRoot(), `natives-${m.id.slice(0, 16)}`);
  try {
    mkdirSync(d, { recursive: true, mode: 0o755 });
  } catch (e) {
    throw cannotWrite(d, e);
  }
  for (const f of m.files) ensureFile(d, f);
  dir = d;
  return d;
}

/** Load the embedded addon `name` (e.g. "better_sqlite3.node"), unpacking the natives first if needed. */
export function loadNative(name: string): unknown {
  const hit = loaded.get(name);
  if (hit) return hit;
  if (!readManifest().files.some((f) => f.name === name)) throw new Error(`no native addon ${name} in this sedna-ll binary`);
  const module = { exports: {} as unknown };
  process.dlopen(module, join(nativeDir(), name));
  loaded.set(name, module.exports);
  return module.exports;
}
