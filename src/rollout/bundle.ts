// Offline bundles (USB-stick rollout): write one, and open one safely.
//
// A bundle is a gzip'd tar holding exactly the entries of bundle-layout.ts. Opening is
// paranoid because the file comes from an untrusted stick: entries are streamed by tar's
// parser and written by this module (never by tar's extractor), into a fresh directory, and
// only regular files with an allowed name are accepted. Nothing the caller sees exists until
// the signature and every sha256 are verified; on any refusal the directory is removed.
// tar is imported lazily (start-up time of the CLI).
import { createHash, randomBytes } from 'node:crypto';
import { type WriteStream, closeSync, copyFileSync, createReadStream, existsSync, rmdirSync, createWriteStream, mkdirSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BUNDLE_CANARY, BUNDLE_CANARY_SIG, BUNDLE_INDEX, BUNDLE_KEYS, BUNDLE_MODELS_DIR, BUNDLE_SIG, type CanaryRecord } from './bundle-layout.js';
import { commitTemp, tempNameFor } from '../durable/atomic-write.js';
import { ReportedError, UsageError, VerificationError } from '../errors.js';
import type { TaskIndex } from '../format/index-manifest.js';
import { signBytes } from '../format/signature.js';
import { type KeyEpoch, type SignedTransition, singleKey, verifyIndexSignature, verifyLaterSignature } from '../format/key-chain.js';
import { parseIndex } from '../format/validate-index.js';

/** the refusal of an index signed by no key this edge trusts for its version */
const BAD_INDEX_SIG = 'bad signature on index.json (not by the KB key this edge trusts for its version)';

export interface BundleLimits {
  /** entries in the archive (files + the models/ directory) */
  maxEntries: number;
  /** one model file */
  maxModelBytes: number;
  /** all entries together (decompressed) */
  maxTotalBytes: number;
  maxIndexBytes: number;
  maxSigBytes: number;
  maxCanaryBytes: number;
  maxKeysBytes: number;
  /** canary lines */
  maxCanaryRecords: number;
}

export const DEFAULT_BUNDLE_LIMITS: BundleLimits = {
  maxEntries: 1030,
  maxModelBytes: 2 * 1024 ** 3,
  maxTotalBytes: 8 * 1024 ** 3,
  maxIndexBytes: 16 * 1024 ** 2,
  maxSigBytes: 1024,
  maxCanaryBytes: 64 * 1024 ** 2,
  maxKeysBytes: 1024 ** 2,
  maxCanaryRecords: 10_000,
};

/** A verified bundle, extracted into `dir` (removed by dispose()). */
export interface OpenedBundle {
  dir: string;
  indexBytes: Buffer;
  /** base64 ed25519 signature of indexBytes */
  sig: string;
  index: TaskIndex;
  /** sha256 -> verified model file inside dir */
  models: Map<string, string>;
  canary: CanaryRecord[];
  /** base64 KB signature of the canary (canaryMessage); null when there is no canary */
  canarySig: string | null;
  /** set when the bundle's canary was dropped, with why (an unsigned canary of an older KB) */
  canaryNote?: string;
  /** the keys the bundle verified under: the edge's own, extended by the bundle's chain */
  keys: KeyEpoch[];
  /** the transitions of the bundle's keys.json (null: it has none), already checked by opts.trust */
  offered: unknown[] | null;
  dispose(): void;
}

/**
 * The keys a bundle's chain (keys.json) makes trusted, or a VerificationError (one line,
 * starting with `what`) when a transition names a trusted key but is not signed by it.
 */
export type BundleTrust = (offered: unknown[], what: string) => KeyEpoch[];

/** canary.jsonl as written into bundles and edge version directories: one JSON record per line. */
export function canaryBytes(records: CanaryRecord[]): Buffer {
  return Buffer.from(records.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

/** What the KB signs for a canary: the format, the index's and the canary's sha256. */
export function canaryMessage(indexBytes: Buffer, canary: Buffer): Buffer {
  const h = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  return Buffer.from(`sedna-ll/canary@1\n${h(indexBytes)}\n${h(canary)}\n`);
}

/** The KB's signature of a canary for this index (kb bundle). */
export function signCanary(indexBytes: Buffer, records: CanaryRecord[], privateKeyPem: string): string {
  return signBytes(canaryMessage(indexBytes, canaryBytes(records)), privateKeyPem);
}

const MODEL_RE = /^models\/([0-9a-f]{64})\.onnx$/;

function refuse(file: string, why: string): never {
  throw new VerificationError(`${file}: bundle refused: ${why}`);
}

/** Why an entry name is not acceptable, or null when it is one of the layout's names. */
export function entryNameProblem(name: string): string | null {
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return `absolute path "${name}"`;
  if (name.split(/[\\/]/).includes('..')) return `path traversal "${name}"`;
  if (name.includes('\\') || name.includes('\0')) return `bad characters in entry name "${name}"`;
  if (name === BUNDLE_INDEX || name === BUNDLE_SIG || name === BUNDLE_CANARY || name === BUNDLE_CANARY_SIG || name === BUNDLE_KEYS || name === BUNDLE_MODELS_DIR) return null;
  if (MODEL_RE.test(name)) return null;
  return `unexpected entry "${name}" (allowed: ${BUNDLE_INDEX}, ${BUNDLE_SIG}, ${BUNDLE_CANARY}, ${BUNDLE_CANARY_SIG}, ${BUNDLE_KEYS}, ${BUNDLE_MODELS_DIR}<sha256>.onnx)`;
}

function limitFor(name: string, l: BundleLimits): number {
  if (name === BUNDLE_INDEX) return l.maxIndexBytes;
  if (name === BUNDLE_SIG || name === BUNDLE_CANARY_SIG) return l.maxSigBytes;
  if (name === BUNDLE_CANARY) return l.maxCanaryBytes;
  if (name === BUNDLE_KEYS) return l.maxKeysBytes;
  return l.maxModelBytes;
}

/** The transitions of keys.json ({"transitions": [...]}, the body of GET /v1/keys). */
function parseKeysFile(bytes: Buffer): unknown[] {
  let t: unknown;
  try {
    t = (JSON.parse(bytes.toString('utf8')) as { transitions?: unknown } | null)?.transitions;
  } catch {
    throw new Error(`${BUNDLE_KEYS} is not JSON`);
  }
  if (!Array.isArray(t)) throw new Error(`${BUNDLE_KEYS}: expected {"transitions": [...]}`);
  return t;
}

/** The edge's keys extended by a bundle's chain (none: as they are; no trust callback: ignored). */
function keysWithChain(file: string, keys: KeyEpoch[], keysFile: Buffer | undefined, trust: BundleTrust | undefined): { keys: KeyEpoch[]; offered: unknown[] | null } {
  if (!keysFile) return { keys, offered: null };
  const offered = parseKeysFile(keysFile);
  if (!trust) return { keys, offered: null };
  return { keys: trust(offered, `${file}: bundle refused: KB key chain (${BUNDLE_KEYS})`), offered };
}

/** Parse canary.jsonl strictly: every line a record naming a task of the index. */
export function parseCanary(bytes: Buffer | string, index: TaskIndex, what = BUNDLE_CANARY, maxRecords = DEFAULT_BUNDLE_LIMITS.maxCanaryRecords): CanaryRecord[] {
  const tasks = new Set(index.tasks.map((t) => t.id));
  const out: CanaryRecord[] = [];
  const lines = (typeof bytes === 'string' ? bytes : bytes.toString('utf8')).split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    let r: CanaryRecord;
    try {
      r = JSON.parse(line);
    } catch {
      throw new Error(`${what} line ${i + 1}: not valid JSON`);
    }
    const numArr = (a: unknown) => Array.isArray(a) && a.length > 0 && a.every((v) => typeof v === 'number' && Number.isFinite(v));
    if (!r || typeof r !== 'object' || typeof r.task !== 'string' || !numArr(r.x) || !numArr(r.expected)) {
      throw new Error(`${what} line ${i + 1}: expected {task, x: number[], expected: number[]}`);
    }
    if (!tasks.has(r.task)) throw new Error(`${what} line ${i + 1}: task "${r.task}" is not in index.json`);
    if (r.attrs !== undefined && (typeof r.attrs !== 'object' || r.attrs === null || Object.values(r.attrs).some((v) => typeof v !== 'string'))) {
      throw new Error(`${what} line ${i + 1}: attrs must map strings to strings`);
    }
    out.push({ task: r.task, x: r.x, expected: r.expected, ...(r.attrs ? { attrs: r.attrs } : {}) });
    if (out.length > maxRecords) throw new Error(`${what}: more than ${maxRecords} records`);
  }
  return out;
}

/** sha256 of a file, streamed (models may be larger than one Buffer). */
async function sha256OfFile(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
  return h.digest('hex');
}

/**
 * Open a bundle: stream-extract into a fresh directory under tmpRoot, then verify the
 * signature (publicKeyPem), the index schema, every model's sha256 and size, and the canary
 * file. Throws VerificationError on any refusal, leaving nothing behind.
 */
export async function openBundle(file: string, opts: { tmpRoot: string; publicKeyPem: string | KeyEpoch[] | null; trust?: BundleTrust; limits?: Partial<BundleLimits> }): Promise<OpenedBundle> {
  // one key, or the epochs of an edge that followed KB key rotations (format/key-chain.ts)
  const keys = typeof opts.publicKeyPem === 'string' ? singleKey(opts.publicKeyPem) : opts.publicKeyPem?.length ? opts.publicKeyPem : null;
  const limits = { ...DEFAULT_BUNDLE_LIMITS, ...opts.limits };
  let st;
  try {
    st = statSync(file);
  } catch (e) {
    throw new UsageError(`${file}: cannot read bundle: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (!st.isFile()) throw new UsageError(`${file}: not a regular file`);
  // only gzip: tar would also sniff brotli/zstd, a larger attack surface we do not need
  const magic = Buffer.alloc(2);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, magic, 0, 2, 0);
  } finally {
    closeSync(fd);
  }
  if (magic[0] !== 0x1f || magic[1] !== 0x8b) refuse(file, 'not a gzip file');

  // pass 1, nothing written: the signed index decides what may be extracted (an unsigned
  // bundle of 2.7 MB once wrote 623 MB of "models" to tmp before being refused)
  let expected: Map<string, number>;
  try {
    expected = await signedEntries(file, keys, opts.trust, limits);
  } catch (e) {
    if (e instanceof ReportedError) throw e;
    refuse(file, (e as Error).message);
  }

  // a refused bundle leaves no trace: not even the temp root, when this call made it
  const madeRoot = !existsSync(opts.tmpRoot);
  mkdirSync(opts.tmpRoot, { recursive: true });
  const dir = join(opts.tmpRoot, `bundle-${process.pid}-${randomBytes(6).toString('hex')}`);
  mkdirSync(join(dir, 'models'), { recursive: true });
  const dispose = () => {
    rmSync(dir, { recursive: true, force: true });
    if (madeRoot) {
      try {
        rmdirSync(opts.tmpRoot);
      } catch {
        /* not empty: someone else uses it */
      }
    }
  };
  try {
    const files = await extractEntries(file, dir, limits, expected);
    return verifyExtracted(file, dir, files, keys, opts.trust, limits, dispose);
  } catch (e) {
    dispose();
    if (e instanceof ReportedError) throw e;
    refuse(file, (e as Error).message);
  }
}

/** `tar czf B -C dir .` writes "./" prefixes: same names. */
const entryName = (path: string) => (path.startsWith('./') ? path.slice(2) : path);

/**
 * Pass 1: read index.json, its signature and the key chain (keys.json) out of the archive (other
 * entries are skipped unread), verify the signature and the index, and return the entries the
 * index allows with their exact sizes. Reading stops once the index and its signature are there
 * and either the chain is too or the index verifies without it: bundles written here put all
 * three first. Only a bundle whose index needs a chain it does not carry (first) is read to the end.
 */
async function signedEntries(file: string, ownKeys: KeyEpoch[] | null, trust: BundleTrust | undefined, limits: BundleLimits): Promise<Map<string, number>> {
  const { Parser } = await import('tar');
  const found = new Map<string, Buffer>();
  await new Promise<void>((resolve, reject) => {
    let done = false;
    const input = createReadStream(file);
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      input.destroy();
      if (err) reject(err);
      else resolve();
    };
    const parser = new Parser({ strict: true, maxMetaEntrySize: 64 * 1024 });
    parser.on('warn', (_code: string, msg: string) => finish(new Error(msg)));
    parser.on('error', (e: Error) => finish(new Error(e.message.replace(/^TAR_\w+: /, ''))));
    parser.on('entry', (entry) => {
      const name = entryName(entry.path);
      if (done || (name !== BUNDLE_INDEX && name !== BUNDLE_SIG && name !== BUNDLE_KEYS)) return entry.resume();
      const cap = limitFor(name, limits);
      if (entry.size > cap) return finish(new Error(`entry "${name}" is ${entry.size} bytes, over the limit of ${cap}`));
      if (found.has(name)) return finish(new Error(`duplicate entry "${name}"`));
      const chunks: Buffer[] = [];
      let n = 0;
      entry.on('data', (c: Buffer) => {
        n += c.length;
        if (n > cap) return finish(new Error(`entry "${name}" is larger than the limit of ${cap}`));
        chunks.push(c);
      });
      entry.on('end', () => {
        found.set(name, Buffer.concat(chunks));
        const index = found.get(BUNDLE_INDEX);
        const sig = found.get(BUNDLE_SIG);
        if (index && sig && (found.has(BUNDLE_KEYS) || (ownKeys && verifyIndexSignature(ownKeys, index, sig.toString('utf8').trim())))) finish();
      });
    });
    parser.on('end', () => finish());
    input.on('error', (e) => finish(e));
    input.pipe(parser as unknown as NodeJS.WritableStream);
  });
  const indexBytes = found.get(BUNDLE_INDEX);
  const sigBytes = found.get(BUNDLE_SIG);
  if (!indexBytes) refuse(file, `missing ${BUNDLE_INDEX}`);
  if (!sigBytes) refuse(file, `missing ${BUNDLE_SIG}`);
  if (!ownKeys) refuse(file, 'no KB public key configured on this edge to verify the signature (init --kb-public-key)');
  const { keys } = keysWithChain(file, ownKeys, found.get(BUNDLE_KEYS), trust);
  if (!verifyIndexSignature(keys, indexBytes, sigBytes.toString('utf8').trim())) refuse(file, BAD_INDEX_SIG);
  let index: TaskIndex;
  try {
    index = parseIndex(indexBytes, 'index.json');
  } catch (e) {
    refuse(file, (e as Error).message);
  }
  const allowed = new Map<string, number>([
    [BUNDLE_INDEX, indexBytes.length],
    [BUNDLE_SIG, sigBytes.length],
  ]);
  // the chain itself is read again in pass 2 (what is verified is what was extracted)
  for (const t of index.tasks) allowed.set(t.model.file, t.model.size);
  return allowed;
}

/**
 * Pass 2: stream the archive into dir; returns entry name -> sha256 of the bytes written. Only
 * entries of `expected` (from the verified index) with exactly its size, and canary.jsonl, are
 * written.
 */
async function extractEntries(file: string, dir: string, limits: BundleLimits, expected: Map<string, number>): Promise<Map<string, { sha: string; size: number }>> {
  const { Parser } = await import('tar');
  const files = new Map<string, { sha: string; size: number }>();
  let entries = 0;
  let total = 0;
  const writes: Promise<void>[] = [];

  // every output stream is tracked so that a refusal waits until all of them are closed:
  // removing the directory while a stream still opens its file would leave that file behind
  const closed: Promise<void>[] = [];
  await new Promise<void>((resolve, reject) => {
    let failed = false;
    const input = createReadStream(file);
    const outs: WriteStream[] = [];
    const fail = (why: string | Error) => {
      if (failed) return;
      failed = true;
      input.destroy();
      try {
        parser.abort(why instanceof Error ? why : new Error(why));
      } catch {
        /* abort emits 'error' synchronously; already handled */
      }
      for (const o of outs) o.destroy();
      Promise.allSettled(closed).then(() => reject(why instanceof Error ? why : new Error(why)));
    };
    // strict: every tar warning (bad checksum, truncated input, bad archive) is an error
    const parser = new Parser({ strict: true, maxMetaEntrySize: 64 * 1024 });
    parser.on('warn', (_code: string, msg: string) => fail(msg));
    parser.on('error', (e: Error) => fail(e.message.replace(/^TAR_\w+: /, '')));
    parser.on('ignoredEntry', (e: { path: string; type: string }) => fail(`unsupported entry "${e.path}" of type ${e.type}`));
    parser.on('entry', (entry) => {
      if (failed) return entry.resume();
      // `tar czf B -C dir .` writes "./" prefixes and a "./" entry: same names, accepted
      let name: string = entryName(entry.path);
      if (entry.type === 'Directory' && (name === '' || name === '.')) return entry.resume();
      if (entry.type === 'Directory' && name === 'models') name = BUNDLE_MODELS_DIR;
      const problem = entryNameProblem(name);
      if (problem) return fail(problem);
      if (++entries > limits.maxEntries) return fail(`more than ${limits.maxEntries} entries`);
      if (entry.type === 'Directory') {
        if (name !== BUNDLE_MODELS_DIR) return fail(`unexpected directory "${name}"`);
        return entry.resume();
      }
      if (name === BUNDLE_MODELS_DIR) return fail(`"${name}" must be a directory`);
      if (entry.type !== 'File' && entry.type !== 'OldFile' && entry.type !== 'ContiguousFile') {
        const kind = /Link/.test(entry.type) ? `a link (${entry.type})` : `not a regular file (${entry.type})`;
        return fail(`entry "${name}" is ${kind}`);
      }
      if (files.has(name)) return fail(`duplicate entry "${name}"`);
      const cap = limitFor(name, limits);
      if (entry.size > cap) return fail(`entry "${name}" is ${entry.size} bytes, over the limit of ${cap}`);
      if (name !== BUNDLE_CANARY && name !== BUNDLE_CANARY_SIG && name !== BUNDLE_KEYS) {
        const want = expected.get(name);
        if (want === undefined) return fail(`${name} is not used by index.json`);
        if (entry.size !== want) return fail(`${name}: size ${entry.size} differs from index.json (${want})`);
      }
      total += entry.size;
      if (total > limits.maxTotalBytes) return fail(`entries total more than ${limits.maxTotalBytes} bytes`);
      // exclusive create: a name can never be written twice or through anything pre-existing
      const dest = join(dir, name);
      const out = createWriteStream(dest, { flags: 'wx', mode: 0o600 });
      outs.push(out);
      closed.push(new Promise<void>((res) => out.once('close', () => res())));
      const hash = createHash('sha256');
      let written = 0;
      files.set(name, { sha: '', size: 0 });
      writes.push(
        new Promise<void>((res, rej) => {
          entry.on('data', (c: Buffer) => {
            if (failed) return;
            written += c.length;
            if (written > cap) return fail(`entry "${name}" is larger than the limit of ${cap}`);
            hash.update(c);
            if (!out.write(c)) {
              entry.pause();
              out.once('drain', () => entry.resume());
            }
          });
          entry.on('end', () => {
            if (failed) return;
            files.set(name, { sha: hash.digest('hex'), size: written });
            out.end();
          });
          out.on('finish', () => res());
          out.on('error', (e) => {
            if (!failed) {
              fail(e);
              rej(e);
            } else res(); // destroyed by fail(): the refusal is already on its way
          });
        }),
      );
    });
    parser.on('end', () => {
      if (!failed) Promise.all(writes).then(() => resolve(), reject);
    });
    input.on('error', (e) => fail(e));
    input.pipe(parser as unknown as NodeJS.WritableStream);
  });
  return files;
}

function verifyExtracted(
  file: string,
  dir: string,
  files: Map<string, { sha: string; size: number }>,
  ownKeys: KeyEpoch[] | null,
  trust: BundleTrust | undefined,
  limits: BundleLimits,
  dispose: () => void,
): OpenedBundle {
  for (const n of [BUNDLE_INDEX, BUNDLE_SIG]) if (!files.has(n)) refuse(file, `missing ${n}`);
  const indexBytes = readFileSync(join(dir, BUNDLE_INDEX));
  const sig = readFileSync(join(dir, BUNDLE_SIG), 'utf8').trim();
  if (!ownKeys) refuse(file, 'no KB public key configured on this edge to verify the signature (init --kb-public-key)');
  const { keys, offered } = keysWithChain(file, ownKeys, files.has(BUNDLE_KEYS) ? readFileSync(join(dir, BUNDLE_KEYS)) : undefined, trust);
  if (!verifyIndexSignature(keys, indexBytes, sig)) refuse(file, BAD_INDEX_SIG);
  let index: TaskIndex;
  try {
    index = parseIndex(indexBytes, 'index.json');
  } catch (e) {
    refuse(file, (e as Error).message);
  }
  const models = new Map<string, string>();
  for (const t of index.tasks) {
    const sha = t.model.sha256;
    const f = files.get(t.model.file);
    if (!f) refuse(file, `task "${t.id}": model ${t.model.file} missing`);
    if (f.sha !== sha) refuse(file, `${t.model.file}: sha256 mismatch (content ${f.sha.slice(0, 12)}…)`);
    if (f.size !== t.model.size) refuse(file, `${t.model.file}: size ${f.size} differs from index.json (${t.model.size})`);
    models.set(sha, join(dir, t.model.file));
  }
  for (const name of files.keys()) {
    const m = MODEL_RE.exec(name);
    if (m && !models.has(m[1])) refuse(file, `${name} is not used by index.json`);
  }
  let canary: CanaryRecord[] = [];
  let canarySig: string | null = null;
  let canaryNote: string | undefined;
  if (files.has(BUNDLE_CANARY_SIG) && !files.has(BUNDLE_CANARY)) refuse(file, `${BUNDLE_CANARY_SIG} without ${BUNDLE_CANARY}`);
  if (files.has(BUNDLE_CANARY)) {
    const raw = readFileSync(join(dir, BUNDLE_CANARY));
    if (files.has(BUNDLE_CANARY_SIG)) {
      canarySig = readFileSync(join(dir, BUNDLE_CANARY_SIG), 'utf8').trim();
      if (!verifyLaterSignature(keys, index.version, canaryMessage(indexBytes, raw), canarySig)) refuse(file, `bad signature on ${BUNDLE_CANARY} (tampered, or made for another index)`);
      try {
        canary = parseCanary(raw, index, BUNDLE_CANARY, limits.maxCanaryRecords);
      } catch (e) {
        refuse(file, (e as Error).message);
      }
    } else {
      // a bundle of an older KB (or re-exported from a version installed from one): its canary
      // cannot be trusted, so it is not used; the version is checked without it
      canarySig = null;
      canaryNote = `${BUNDLE_CANARY} is not signed (bundle from an older KB): ignored, the version is checked without a canary`;
    }
  }
  return { dir, indexBytes, sig, index, models, canary, canarySig, ...(canaryNote ? { canaryNote } : {}), keys, offered, dispose };
}

/** What goes into a bundle. */
export interface BundleSource {
  indexBytes: Buffer;
  /** base64 signature; null writes no index.json.sig (such a bundle cannot be installed) */
  sig: string | null;
  /** path of a verified local copy of the model with this sha256 */
  modelPath: (sha256: string) => string;
  canary: CanaryRecord[];
  /** the KB's signature of the canary (signCanary); absent: canary.jsonl goes in unsigned */
  canarySig?: string | null;
  /** the KB's key chain (none or empty: no keys.json, the bundle of a KB that never rotated) */
  keyTransitions?: SignedTransition[] | null;
}

/**
 * Write a bundle to outFile atomically (temp file, fsync, rename, dir fsync). Model files are re-hashed
 * on the way in, so a bundle never carries a corrupt model. Returns the bundle's size and sha256.
 */
export async function writeBundle(outFile: string, src: BundleSource, opts: { tmpRoot: string }): Promise<{ bytes: number; sha256: string }> {
  const tar = await import('tar');
  const index = parseIndex(src.indexBytes, 'index.json');
  mkdirSync(opts.tmpRoot, { recursive: true });
  const stage = join(opts.tmpRoot, `bundle-out-${process.pid}-${randomBytes(6).toString('hex')}`);
  const tmpOut = tempNameFor(outFile);
  try {
    mkdirSync(join(stage, 'models'), { recursive: true });
    const names: string[] = [];
    // the chain first: pass 1 of openBundle has it by the time it reads the index
    if (src.keyTransitions?.length) {
      writeFileSync(join(stage, BUNDLE_KEYS), JSON.stringify({ transitions: src.keyTransitions }) + '\n');
      names.push(BUNDLE_KEYS);
    }
    writeFileSync(join(stage, BUNDLE_INDEX), src.indexBytes);
    names.push(BUNDLE_INDEX);
    if (src.sig) {
      writeFileSync(join(stage, BUNDLE_SIG), src.sig.trim() + '\n');
      names.push(BUNDLE_SIG);
    }
    const seen = new Set<string>();
    for (const t of index.tasks) {
      const sha = t.model.sha256;
      if (seen.has(sha)) continue;
      seen.add(sha);
      const dest = join(stage, t.model.file);
      copyFileSync(src.modelPath(sha), dest);
      const got = await sha256OfFile(dest);
      if (got !== sha) throw new VerificationError(`model ${sha}: local copy is corrupt (sha256 ${got.slice(0, 12)}…); run "sedna-ll model verify"`);
      names.push(t.model.file);
    }
    if (src.canary.length) {
      writeFileSync(join(stage, BUNDLE_CANARY), canaryBytes(src.canary));
      names.push(BUNDLE_CANARY);
      if (src.canarySig) {
        writeFileSync(join(stage, BUNDLE_CANARY_SIG), src.canarySig.trim() + '\n');
        names.push(BUNDLE_CANARY_SIG);
      }
    }
    mkdirSync(dirname(outFile), { recursive: true });
    await tar.c({ gzip: true, file: tmpOut, cwd: stage, portable: true, noDirRecurse: true }, names);
    commitTemp(tmpOut, outFile);
    return { bytes: statSync(outFile).size, sha256: await sha256OfFile(outFile) };
  } finally {
    rmSync(stage, { recursive: true, force: true });
    rmSync(tmpOut, { force: true });
  }
}
