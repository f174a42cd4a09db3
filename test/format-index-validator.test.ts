// The ahead-of-time compiled index validator (src/format/index-validator.gen.ts) is exactly the
// schema: the committed file equals a fresh ajv standalone generation from INDEX_SCHEMA, and it
// answers like ajv compiling INDEX_SCHEMA at run time (accept/reject and the first error) on a
// valid index and many single-field mutations of it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { INDEX_FORMAT, INDEX_SCHEMA, type TaskIndex } from '../src/format/index-manifest.js';
import { validate as generated } from '../src/format/index-validator.gen.js';
import { validateIndex } from '../src/format/validate-index.js';
import { GENERATED_FILE, generateIndexValidatorSource } from '../scripts/gen-index-validator.js';

const require = createRequire(import.meta.url);
type V = ((x: unknown) => boolean) & { errors?: { instancePath: string; message?: string; keyword: string }[] | null };

const SHA = 'a'.repeat(64);
function validIndex(): TaskIndex {
  return {
    format: INDEX_FORMAT,
    version: 3,
    created_at: '2026-01-01T00:00:00Z',
    parent: 2,
    origin: 'kb',
    notes: { round: 1 },
    tasks: [
      {
        id: 'site.berlin',
        attrs: { site: 'berlin' },
        centroid: [0.1, 0.2],
        radius: 1.5,
        parent: null,
        thresholds: { confidence: 0.4, entropy: 0.7 },
        metrics: { acc: 0.9 },
        samples: 10,
        model: {
          sha256: SHA,
          file: `models/${SHA}.onnx`,
          size: 100,
          inputs: [{ name: 'input', shape: ['N', 2], dtype: 'float32' }],
          outputs: [{ name: 'probabilities', shape: [-1, 3], dtype: 'float32' }],
          labels: ['a', 'b', 'c'],
          preprocessing: { kind: 'image', scale: 1 / 255, mean: [0.5], std: [0.2], width: 28, height: 28, channels: 1, layout: 'NCHW' },
          output_kind: 'probabilities',
          arch: 'mlp',
        },
      },
    ],
    allocation: { method: 'attr+centroid', attr_keys: ['site'], space: 'input', fallback: 'global' },
    unseen: { methods: ['attr', 'confidence'], combine: 'any', confidence: 0.5, entropy: 0.9 },
    hard_examples: [{ type: 'cross_entropy', threshold: 0.5, caps: { per_minute: 10 } }, { type: 'random', ratio: 0.1 }],
  };
}

/** Every path to a value in x (objects and arrays), as key lists. */
function paths(x: unknown, at: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [at];
  if (Array.isArray(x)) x.forEach((v, i) => out.push(...paths(v, [...at, i])));
  else if (x && typeof x === 'object') for (const [k, v] of Object.entries(x)) out.push(...paths(v, [...at, k]));
  return out;
}

function mutate(base: TaskIndex, path: (string | number)[], value: unknown, del = false): unknown {
  const copy = structuredClone(base) as unknown as Record<string | number, unknown>;
  if (path.length === 0) return value;
  let cur = copy as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) cur = cur[k] as Record<string | number, unknown>;
  const last = path[path.length - 1];
  if (del) {
    if (Array.isArray(cur)) cur.splice(Number(last), 1);
    else delete cur[last];
  } else cur[last] = value;
  return copy;
}

test('the committed generated validator equals a fresh generation from INDEX_SCHEMA', () => {
  assert.equal(readFileSync(GENERATED_FILE, 'utf8'), generateIndexValidatorSource(), 'src/format/index-validator.gen.ts is stale: run node --import tsx scripts/gen-index-validator.ts');
});

test('the generated validator answers like ajv compiling INDEX_SCHEMA at run time', () => {
  const Ajv = require('ajv').default;
  const runtime = new Ajv({ allErrors: false, strict: false }).compile(INDEX_SCHEMA) as V;
  const gen = generated as V;
  const base = validIndex();
  const cases: unknown[] = [base, null, [], 'x', 1];
  const replacements: unknown[] = [null, 'str', '', -1, 0, 1.5, 2, true, [], {}, { extra: 1 }, ['x'], 'models/x.onnx', 'kb', 'local', 'NHWC', 3, INDEX_FORMAT, '\ud83d\ude00'];
  for (const p of paths(base)) {
    if (p.length) cases.push(mutate(base, p, undefined, true));
    for (const r of replacements) cases.push(mutate(base, p, r));
    if (p.length) cases.push(mutate(base, [...p.slice(0, -1), 'unknown_key'], 1));
  }
  let rejected = 0;
  for (const c of cases) {
    const a = runtime(c);
    const b = gen(c);
    assert.equal(b, a, `accept/reject differs on ${JSON.stringify(c).slice(0, 200)}`);
    if (!a) {
      rejected++;
      const ea = runtime.errors![0];
      const eb = gen.errors![0];
      assert.deepEqual([eb.instancePath, eb.keyword, eb.message], [ea.instancePath, ea.keyword, ea.message]);
    }
  }
  assert.ok(cases.length > 1000 && rejected > 500, `${cases.length} cases, ${rejected} rejected`);
  // the one-line error validateIndex builds from it
  assert.throws(() => validateIndex(mutate(base, ['tasks', 0, 'model', 'size'], 0), 'KB index'), /^Error: KB index: invalid index: \/tasks\/0\/model\/size must be >= 1$/);
  assert.equal(validateIndex(base).version, 3);
});
