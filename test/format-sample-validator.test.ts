// The ahead-of-time compiled check of pushed samples (src/format/sample-validator.gen.ts, used
// per record of a frames push) is exactly UPLOAD_SAMPLE_SCHEMA: the committed file equals a fresh
// ajv standalone generation, and it answers like ajv compiling the schema at run time with the
// KB's options (accept/reject and the first error) on valid samples and many single-field
// mutations of them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { UPLOAD_SAMPLE_SCHEMA } from '../src/format/protocol.js';
import { validate as generated } from '../src/format/sample-validator.gen.js';
import { GENERATED_SAMPLE_FILE, generateSampleValidatorSource } from '../scripts/gen-sample-validator.js';

const require = createRequire(import.meta.url);
type V = ((x: unknown) => boolean) & { errors?: { instancePath: string; message?: string; keyword: string }[] | null };

function validSamples(): Record<string, unknown>[] {
  const base = {
    id: 'sample-00000001',
    task: 'site.berlin',
    attrs: { site: 'berlin', cam: '2' },
    payload_kind: 'f32',
    payload_sha: 'a'.repeat(64),
    pred_label: 'cat',
    scores: [0.25, 0.75],
    hard: true,
    hard_reasons: ['margin', 'confidence'],
    unseen: false,
    unseen_reason: null,
    kb_version: 3,
    created_at: 1_700_000_000_000,
  };
  return [
    base,
    { ...base, task: null, pred_label: null, unseen: true, unseen_reason: 'attr', kb_version: null, label: 'dog', payload_b64: 'AAAA' },
    { ...base, payload_kind: 'png', label: null, preprocessing: { kind: 'image', scale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.2, 0.2, 0.2], width: 28, height: 28, channels: 3, layout: 'NHWC' } },
    { ...base, payload_kind: 'none', attrs: {}, scores: [], hard_reasons: [], preprocessing: { kind: 'vector' } },
  ];
}

/** Every path to a value in x (objects and arrays), as key lists. */
function paths(x: unknown, at: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [at];
  if (Array.isArray(x)) x.forEach((v, i) => out.push(...paths(v, [...at, i])));
  else if (x && typeof x === 'object') for (const [k, v] of Object.entries(x)) out.push(...paths(v, [...at, k]));
  return out;
}

function mutate(base: unknown, path: (string | number)[], value: unknown, del = false): unknown {
  if (path.length === 0) return value;
  const copy = structuredClone(base) as Record<string | number, unknown>;
  let cur = copy;
  for (const k of path.slice(0, -1)) cur = cur[k] as Record<string | number, unknown>;
  const last = path[path.length - 1];
  if (del) {
    if (Array.isArray(cur)) cur.splice(Number(last), 1);
    else delete cur[last];
  } else cur[last] = value;
  return copy;
}

test('the committed generated sample validator equals a fresh generation from UPLOAD_SAMPLE_SCHEMA', () => {
  assert.equal(readFileSync(GENERATED_SAMPLE_FILE, 'utf8'), generateSampleValidatorSource(), 'src/format/sample-validator.gen.ts is stale: run node --import tsx scripts/gen-sample-validator.ts');
});

test('the generated sample validator answers like ajv compiling UPLOAD_SAMPLE_SCHEMA at run time', () => {
  const Ajv = require('ajv').default;
  // the options the KB compiled it with before (and fastify's JSON route still uses)
  const runtime = new Ajv({ removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false }).compile(UPLOAD_SAMPLE_SCHEMA) as V;
  const gen = generated as V;
  const cases: unknown[] = [null, [], 'x', 1, {}];
  const replacements: unknown[] = [null, 'str', '', -1, 0, 1.5, 2, 4, true, false, [], {}, { extra: 1 }, ['x'], [1, 2, 3, 4], 'f32', 'none', 'b'.repeat(64), 'A'.repeat(64), 'short', 'x'.repeat(300), 'id with space', '\ud83d\ude00', 'NCHW', 'image', 3];
  for (const base of validSamples()) {
    cases.push(base);
    for (const p of paths(base)) {
      if (p.length) cases.push(mutate(base, p, undefined, true));
      for (const r of replacements) cases.push(mutate(base, p, r));
      if (p.length) cases.push(mutate(base, [...p.slice(0, -1), 'unknown_key'], 1));
    }
  }
  let rejected = 0;
  for (const c of cases) {
    const a = runtime(c);
    const b = gen(c);
    assert.equal(b, a, `accept/reject differs on ${JSON.stringify(c).slice(0, 300)}`);
    if (!a) {
      rejected++;
      const ea = runtime.errors![0];
      const eb = gen.errors![0];
      assert.deepEqual([eb.instancePath, eb.keyword, eb.message], [ea.instancePath, ea.keyword, ea.message]);
    }
  }
  assert.ok(cases.length > 2000 && rejected > 1000 && cases.length - rejected > 100, `${cases.length} cases, ${rejected} rejected`);
});
