// The native files a target's binary embeds: onnxruntime's binding and shared library (only
// the target platform's, taken from onnxruntime-node's prebuilt CPU binaries) and the
// better-sqlite3 addon. Described by the natives.json asset src/sea/natives.ts reads.
import { existsSync, mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { CACHE, ROOT, sha256, writeAtomic, type Target } from './common.js';
import { sqliteAddon } from './sqlite-addon.js';

const require = createRequire(join(ROOT, 'package.json'));

export interface NativeAsset {
  /** SEA asset key */
  asset: string;
  /** file holding the asset's bytes */
  file: string;
}

export interface Natives {
  manifest: { id: string; files: Array<{ name: string; asset: string; sha256: string; size: number; gzip: boolean }> };
  assets: NativeAsset[];
}

/** gzip -9 of `file`, cached by its hash (compressing 46 MB takes seconds; it changes only with onnxruntime). */
function gzipped(file: string, hash: string): string {
  const out = join(CACHE, 'gz', `${hash}.gz`);
  if (!existsSync(out)) {
    mkdirSync(dirname(out), { recursive: true });
    writeAtomic(out, gzipSync(readFileSync(file), { level: 9 }));
  }
  return out;
}

export function natives(t: Target): Natives {
  const ortDir = join(dirname(realpathSync(require.resolve('onnxruntime-node/package.json'))), 'bin', 'napi-v6', 'linux', t.arch);
  const sources: Array<{ name: string; file: string; gzip: boolean }> = [
    { name: 'onnxruntime_binding.node', file: join(ortDir, 'onnxruntime_binding.node'), gzip: false },
    // most of the binary's size: gzip makes it ~2.6x smaller; gunzip on first run takes < 1 s
    { name: 'libonnxruntime.so.1', file: join(ortDir, 'libonnxruntime.so.1'), gzip: true },
    { name: 'better_sqlite3.node', file: sqliteAddon(t), gzip: false },
  ];
  const files: Natives['manifest']['files'] = [];
  const assets: NativeAsset[] = [];
  for (const s of sources) {
    const bytes = readFileSync(s.file);
    const hash = sha256(bytes);
    const asset = s.gzip ? `${s.name}.gz` : s.name;
    files.push({ name: s.name, asset, sha256: hash, size: bytes.length, gzip: s.gzip });
    assets.push({ asset, file: s.gzip ? gzipped(s.file, hash) : s.file });
  }
  return { manifest: { id: sha256(files.map((f) => `${f.name}:${f.sha256}`).join('\n')), files }, assets };
}
