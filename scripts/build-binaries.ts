// Builds the single-file executables release/sedna-ll-linux-x64 and release/sedna-ll-linux-arm64
// (Node single executable applications; see scripts/binaries/* for each step).
//
//   npm run build:binaries            # both
//   npm run build:binaries -- x64     # one
//
// Every step is cached by its inputs under .build/cache (the Node download, the compiled
// better-sqlite3, the gzipped onnxruntime), and a binary whose inputs did not change is kept:
// a second run costs the bundling (~seconds). Needs: the npm registry (first run), gcc/g++/make/
// python3 (x64), gcc-aarch64-linux-gnu, g++-aarch64-linux-gnu and qemu-user-static (arm64).
import { TARGETS, buildMain, hasTool, requiredTools, type Arch } from './binaries/common.js';
import { bundle } from './binaries/bundle.js';
import { natives } from './binaries/natives.js';
import { makeBinary } from './binaries/sea.js';

export async function buildBinaries(arches: Arch[]): Promise<string[]> {
  const missing = [...new Set(arches.flatMap((a) => requiredTools(TARGETS[a])).filter((tool) => !hasTool(tool)))];
  if (missing.length) throw new Error(`missing build tools: ${missing.join(', ')} (Debian: apt-get install gcc g++ make python3 gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user-static)`);
  const b = await bundle();
  const out: string[] = [];
  for (const a of arches) out.push(makeBinary(TARGETS[a], b, natives(TARGETS[a])));
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) await buildMain('build:binaries', buildBinaries);
