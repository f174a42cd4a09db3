// Fixtures for the rollout tests: signed task indexes over tiny real ONNX models, offline
// bundles (good ones via src/rollout/bundle.ts, hostile ones hand-built with tar's Header), and
// edge homes initialised through the real CLI.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Header } from 'tar';
import type { CanaryRecord } from '../../src/rollout/bundle-layout.js';
import { canaryBytes, signCanary, writeBundle } from '../../src/rollout/bundle.js';
import { DEFAULT_HARD, INDEX_FORMAT, type TaskIndex } from '../../src/format/index-manifest.js';
import { writeDenseOnnx } from '../../src/onnx/writer.js';
import { mulberry32 } from '../../src/random.js';
import { generateSigningKeys, signBytes, type KeyPairPem } from '../../src/format/signature.js';
import { CheckedModel } from '../../src/onnx/checked-model.js';
import { sedna } from './cli.js';

export const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

export const DIM = 4;
export const CLASSES = 3;

/** A softmax MLP DIM -> CLASSES with weights from seed (different seeds answer differently). */
export function modelBytes(seed: number, scale = 4): Buffer {
  const rand = mulberry32(seed);
  const W = Float32Array.from({ length: DIM * CLASSES }, () => (rand() - 0.5) * scale);
  const b = Float32Array.from({ length: CLASSES }, () => (rand() - 0.5) * 0.2);
  return writeDenseOnnx({ layers: [{ inDim: DIM, outDim: CLASSES, W, b }], softmax: true });
}

export interface VersionFixture {
  version: number;
  index: TaskIndex;
  indexBytes: Buffer;
  sig: string;
  /** sha -> model bytes */
  models: Map<string, Buffer>;
  /** the signing key (to sign canaries as the KB does) */
  privateKey: string;
}

/** A signed KB index with one task per entry of tasks ({id, seed} or raw bytes). */
export function makeVersion(keys: KeyPairPem, version: number, tasks: { id: string; seed?: number; scale?: number; bytes?: Buffer; site?: string }[]): VersionFixture {
  const models = new Map<string, Buffer>();
  const index: TaskIndex = {
    format: INDEX_FORMAT,
    version,
    created_at: new Date().toISOString(),
    parent: version > 1 ? version - 1 : null,
    origin: 'kb',
    tasks: tasks.map((t) => {
      const bytes = t.bytes ?? modelBytes(t.seed ?? 1, t.scale);
      const sha = sha256(bytes);
      models.set(sha, bytes);
      return {
        id: t.id,
        attrs: t.site ? { site: t.site } : ({} as Record<string, string>),
        model: {
          sha256: sha,
          file: `models/${sha}.onnx`,
          size: bytes.length,
          inputs: [{ name: 'input', shape: ['N', DIM], dtype: 'float32' as const }],
          outputs: [{ name: 'probabilities', shape: ['N', CLASSES], dtype: 'float32' as const }],
          labels: ['a', 'b', 'c'],
          preprocessing: { kind: 'vector' as const },
          output_kind: 'probabilities' as const,
        },
      };
    }),
    allocation: { method: 'attr', attr_keys: ['site'], space: 'input', fallback: tasks[0].id },
    unseen: { methods: ['confidence'], combine: 'any', confidence: 0.05 },
    hard_examples: DEFAULT_HARD,
  };
  const indexBytes = Buffer.from(JSON.stringify(index, null, 2) + '\n');
  return { version, index, indexBytes, sig: signBytes(indexBytes, keys.privateKey), models, privateKey: keys.privateKey };
}

export function inputs(n: number, seed = 99): number[][] {
  const r = mulberry32(seed);
  return Array.from({ length: n }, () => Array.from({ length: DIM }, () => Math.round((r() * 2 - 1) * 1000) / 1000));
}

/** Canary records computed by really running each task's model (what `kb bundle` does). */
export async function computeCanary(v: VersionFixture, dir: string, n = 3): Promise<CanaryRecord[]> {
  const out: CanaryRecord[] = [];
  for (const t of v.index.tasks) {
    const f = join(dir, `canary-${t.model.sha256}.onnx`);
    writeFileSync(f, v.models.get(t.model.sha256)!);
    const m = await CheckedModel.load(f, t);
    const xs = inputs(n);
    const ys = await m.run(xs);
    await m.release();
    xs.forEach((x, i) => out.push({ task: t.id, x, expected: ys[i] }));
  }
  return out;
}

/** Write a real bundle for a version (optionally with a canary) to file. */
export async function bundleOf(v: VersionFixture, file: string, canary: CanaryRecord[] = [], tmp = join(file + '.d')): Promise<string> {
  mkdirSync(tmp, { recursive: true });
  const paths = new Map<string, string>();
  for (const [sha, bytes] of v.models) {
    const p = join(tmp, `${sha}.onnx`);
    writeFileSync(p, bytes);
    paths.set(sha, p);
  }
  const canarySig = canary.length ? signCanary(v.indexBytes, canary, v.privateKey) : null;
  await writeBundle(file, { indexBytes: v.indexBytes, sig: v.sig, modelPath: (s) => paths.get(s)!, canary, canarySig }, { tmpRoot: tmp });
  return file;
}

export interface RawEntry {
  path: string;
  type?: 'File' | 'SymbolicLink' | 'Link' | 'Directory' | 'CharacterDevice' | 'FIFO';
  data?: Buffer;
  /** header size, when it should differ from data.length (huge claims) */
  size?: number;
  linkpath?: string;
}

/** A hand-made tar.gz: lets tests write entries no well-behaved tar tool would. */
export function rawTarGz(entries: RawEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const data = e.data ?? Buffer.alloc(0);
    const type = e.type ?? 'File';
    const h = new Header({ path: e.path, mode: type === 'Directory' ? 0o755 : 0o644, size: e.size ?? (type === 'File' ? data.length : 0), type, linkpath: e.linkpath, mtime: new Date(0), uid: 0, gid: 0 });
    const block = Buffer.alloc(512);
    h.encode(block, 0);
    blocks.push(block);
    if (type === 'File' && data.length) {
      blocks.push(data);
      const pad = (512 - (data.length % 512)) % 512;
      if (pad) blocks.push(Buffer.alloc(pad));
    }
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

/** The raw entries of a good bundle for a version (to tamper with). */
export function goodEntries(v: VersionFixture, canary: CanaryRecord[] = []): RawEntry[] {
  const e: RawEntry[] = [
    { path: 'index.json', data: v.indexBytes },
    { path: 'index.json.sig', data: Buffer.from(v.sig + '\n') },
  ];
  for (const [sha, bytes] of v.models) e.push({ path: `models/${sha}.onnx`, data: bytes });
  if (canary.length) {
    e.push({ path: 'canary.jsonl', data: canaryBytes(canary) });
    e.push({ path: 'canary.jsonl.sig', data: Buffer.from(signCanary(v.indexBytes, canary, v.privateKey) + '\n') });
  }
  return e;
}

/** `sedna-ll init` a home that trusts keys.publicKey; config tweaks merged into config.json. */
export function initEdge(home: string, keys: KeyPairPem, rollout: Record<string, unknown> = {}, deviceId = 'gw-1', kb: { url: string; token?: string } = { url: 'http://127.0.0.1:9' }): void {
  mkdirSync(home, { recursive: true });
  const keyFile = join(home, '..', `kb-key-${randomBytes(4).toString('hex')}.pem`);
  writeFileSync(keyFile, keys.publicKey);
  const args = ['init', '--device-id', deviceId, '--kb-url', kb.url, '--kb-key', keyFile];
  if (kb.token) {
    const tf = join(home, '..', `token-${deviceId}-${randomBytes(4).toString('hex')}`);
    writeFileSync(tf, kb.token);
    args.push('--token-file', tf);
  }
  const r = sedna(args, { home });
  if (r.code !== 0) throw new Error(`init failed: ${r.stderr}`);
  const cfgPath = join(home, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
  cfg.rollout = { ...cfg.rollout, ...rollout };
  writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));
}

/** Every file under home with its sha256 (edge.db and its WAL, and locks/, excluded). */
export function snapshot(home: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const rel = relative(home, p);
      if (/^edge\.db/.test(rel) || rel.startsWith('locks')) continue;
      const st = statSync(p);
      if (st.isDirectory()) {
        out[rel + '/'] = 'dir';
        walk(p);
      } else out[rel] = sha256(readFileSync(p));
    }
  };
  walk(home);
  return out;
}

export { generateSigningKeys, mulberry32 };
