// The folders of src/ and which way imports go between them (README "Architecture"). A folder
// may import only folders on a lower layer: an arrow up or sideways is a layering error, and
// with it no cycle between folders can form. In-process: reads the import specifiers of every
// file under src/ (static, `import type` and dynamic import()).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src');

/** Layer of each folder (or root module) of src/: lower numbers sit above and import downwards. */
const LAYER: Record<string, number> = {
  'cli.ts': 0,
  sea: 0, // the single-executable entry point
  commands: 1,
  learn: 2, // the learning round reads and writes the KB
  kb: 3,
  sync: 3,
  runtime: 3,
  rollout: 4, // the edge rollout: bundle format, install, trial, canary
  store: 5,
  onnx: 6,
  durable: 6,
  format: 7, // what edge and cloud share
  // leaves: import nothing of ours but each other's nothing
  'commander.ts': 8, // commander through require() (start-up)
  'errors.ts': 8,
  'random.ts': 8,
  'units.ts': 8,
  'version.ts': 8,
  metrics: 8,
  streams: 8,
};

function* files(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* files(p);
    else if (p.endsWith('.ts')) yield p;
  }
}

const unit = (file: string): string => relative(SRC, file).split(sep)[0];

test('every folder of src/ has a layer', () => {
  const unknown = readdirSync(SRC).filter((n) => !(n in LAYER));
  assert.deepEqual(unknown, [], 'add new folders to LAYER in test/layering.test.ts and to README "Architecture"');
});

test('imports between folders point down only (no cycles, no sideways arrows)', () => {
  const IMPORT = /(?:from\s+|import\s*\(\s*|^import\s+)'(\.\.?\/[^']+)'/gm;
  const wrong: string[] = [];
  let arrows = 0;
  for (const file of files(SRC)) {
    const from = unit(file);
    for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) {
      const to = unit(resolve(dirname(file), m[1]).replace(/\.js$/, '.ts'));
      if (to === from) continue;
      arrows++;
      if (!(LAYER[to] > LAYER[from])) wrong.push(`${relative(SRC, file)} imports ${m[1]} (${from} [${LAYER[from]}] -> ${to} [${LAYER[to]}])`);
    }
  }
  assert.ok(arrows > 100, `only ${arrows} imports between folders found: is the import pattern still right?`);
  assert.deepEqual(wrong, []);
});
