// Schema validation of index.json (ajv), kept apart from the types so that commands that only
// read an installed index (infer, status) never pay for loading and compiling ajv.
import { createRequire } from 'node:module';
import { INDEX_SCHEMA, type TaskIndex } from './index-manifest.js';

const require = createRequire(import.meta.url);
type Validator = ((x: unknown) => boolean) & { errors?: { instancePath: string; message?: string }[] | null };
let compiled: Validator | null = null;

function validator(): Validator {
  if (!compiled) {
    const Ajv = require('ajv').default ?? require('ajv');
    compiled = new Ajv({ allErrors: false, strict: false }).compile(INDEX_SCHEMA) as Validator;
  }
  return compiled;
}

/** Validate a parsed index; throws one line naming the first problem. */
export function validateIndex(x: unknown, what = 'index.json'): TaskIndex {
  const v = validator();
  if (!v(x)) {
    const e = v.errors?.[0];
    throw new Error(`${what}: invalid index: ${e ? `${e.instancePath || '/'} ${e.message}` : 'schema mismatch'}`);
  }
  const idx = x as TaskIndex;
  const ids = new Set<string>();
  for (const t of idx.tasks) {
    if (ids.has(t.id)) throw new Error(`${what}: invalid index: duplicate task id "${t.id}"`);
    ids.add(t.id);
    if (t.model.file !== `models/${t.model.sha256}.onnx`) throw new Error(`${what}: task "${t.id}": model file does not match its sha256`);
  }
  // A fallback that names no task is tolerated (the runtime then has no fallback): a local
  // index may hold only site tasks and no global one.
  return idx;
}

/** Parse index.json bytes and validate them. */
export function parseIndex(bytes: Buffer | string, what = 'index.json'): TaskIndex {
  let x: unknown;
  try {
    x = JSON.parse(typeof bytes === 'string' ? bytes : bytes.toString('utf8'));
  } catch (e) {
    throw new Error(`${what}: not valid JSON: ${(e as Error).message}`);
  }
  return validateIndex(x, what);
}
