// Schema validation of index.json. The schema (INDEX_SCHEMA) is compiled ahead of time by ajv's
// standalone generator into index-validator.gen.ts (scripts/gen-index-validator.ts; a test keeps
// it equal to the schema): compiling it with ajv at run time cost every pull ~100-200 ms.
import type { TaskIndex } from './index-manifest.js';
import { validate as generated } from './index-validator.gen.js';

type Validator = ((x: unknown) => boolean) & { errors?: { instancePath: string; message?: string }[] | null };
const check = generated as Validator;

/** Validate a parsed index; throws one line naming the first problem. */
export function validateIndex(x: unknown, what = 'index.json'): TaskIndex {
  const v = check;
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
