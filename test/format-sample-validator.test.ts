// The ahead-of-time compiled checks of pushed samples (src/format/sample-validator.gen.ts, used
// per record of a frames push) and of the KB routes' JSON bodies (src/kb/server/route-validators.gen.ts)
// are exactly their schemas: the committed file equals a fresh
// ajv standalone generation, and it answers like ajv compiling the schema at run time with the
// KB's options (accept/reject and the first error) on valid samples and many single-field
// mutations of them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { DEVICE_REPORT_SCHEMA, PUSH_LABELS_SCHEMA, PUSH_SAMPLES_SCHEMA, UPLOAD_SAMPLE_SCHEMA } from '../src/format/protocol.js';
import { validateDeviceReport, validatePushLabels, validatePushSamples } from '../src/kb/server/route-validators.gen.js';
import { routeValidator } from '../src/kb/server/route-validators.js';
import { GENERATED_ROUTES_FILE, generateRouteValidatorsSource } from '../scripts/gen-route-validators.js';
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

/** Generated and run-time compiled agree (accept/reject, first error) on `bases` and single-field mutations of them. */
function assertSameAnswers(schema: object, gen: V, bases: unknown[]): { cases: number; rejected: number } {
  const Ajv = require('ajv').default;
  // the options the KB compiles with (src/kb/server/route-validators.ts): reject, never repair
  const runtime = new Ajv({ removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false }).compile(schema) as V;
  const cases: unknown[] = [null, [], 'x', 1, {}];
  const replacements: unknown[] = [null, 'str', '', -1, 0, 1.5, 2, 4, true, false, [], {}, { extra: 1 }, ['x'], [1, 2, 3, 4], 'f32', 'none', 'b'.repeat(64), 'A'.repeat(64), 'short', 'x'.repeat(300), 'id with space', '\ud83d\ude00', 'NCHW', 'image', 3, 'pass'];
  for (const base of bases) {
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
  return { cases: cases.length, rejected };
}

test('the generated sample validator answers like ajv compiling UPLOAD_SAMPLE_SCHEMA at run time', () => {
  const { cases, rejected } = assertSameAnswers(UPLOAD_SAMPLE_SCHEMA, generated as V, validSamples());
  assert.ok(cases > 2000 && rejected > 1000 && cases - rejected > 100, `${cases} cases, ${rejected} rejected`);
});

test('the committed generated route validators equal a fresh generation from the request schemas', () => {
  assert.equal(readFileSync(GENERATED_ROUTES_FILE, 'utf8'), generateRouteValidatorsSource(), 'src/kb/server/route-validators.gen.ts is stale: run node --import tsx scripts/gen-route-validators.ts');
});

test('the generated route validators (what kb serve checks bodies with) answer like ajv compiling the schemas at run time', () => {
  const samples = validSamples();
  const pushes = [{ samples }, { samples: [] }, { samples: [samples[1]] }];
  const labels = [{ labels: [{ id: 'sample-00000001', label: 'cat' }, { id: 'sample-00000002', label: 'd' }] }, { labels: [] }];
  const reports = [
    { active_version: 3, versions: [{ version: 3, state: 'active' }], trial: { version: 3, result: 'pass', reason: 'ok' }, health: { disk_free_mb: 1 }, pending_samples: 7 },
    { active_version: null },
  ];
  for (const [schema, gen, bases, min] of [
    [PUSH_SAMPLES_SCHEMA, validatePushSamples, pushes, 2000],
    [PUSH_LABELS_SCHEMA, validatePushLabels, labels, 200],
    [DEVICE_REPORT_SCHEMA, validateDeviceReport, reports, 300],
  ] as const) {
    const { cases, rejected } = assertSameAnswers(schema, gen as V, bases as unknown[]);
    assert.ok(cases > min && rejected > min / 4 && cases - rejected > 10, `${cases} cases, ${rejected} rejected`);
  }
});

test('kb serve refuses to start on a route schema with no generated validator, naming the route', () => {
  assert.equal(routeValidator({ schema: PUSH_LABELS_SCHEMA, method: 'POST', url: '/v1/labels', httpPart: 'body' }), validatePushLabels);
  assert.throws(() => routeValidator({ schema: { type: 'object' }, method: 'POST', url: '/v1/new', httpPart: 'body' }), /no generated validator for the body schema of POST \/v1\/new/);
});
