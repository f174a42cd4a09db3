// Checking config.json against CONFIG_SCHEMA (through the ahead-of-time compiled validator, no
// ajv at run time) and addressing its keys by dotted path ("upload.compress") for `sedna-ll config`.
import { UsageError } from '../errors.js';
import { validate } from './config-validator.gen.js';

interface AjvError {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
}

/** The first problem of a config object as "key.path: reason", or null when it is valid. */
export function configProblem(c: unknown): string | null {
  if (validate(c)) return null;
  const e = (validate as unknown as { errors: AjvError[] }).errors[0];
  const at = e.instancePath.split('/').filter(Boolean).join('.');
  const key = (k: string) => (at ? `${at}.${k}` : k);
  if (e.keyword === 'additionalProperties') return `${key(String(e.params.additionalProperty))}: unknown key`;
  if (e.keyword === 'required') return `${key(String(e.params.missingProperty))}: required`;
  const allowed = e.keyword === 'enum' ? ` (${(e.params.allowedValues as unknown[]).map(String).join(', ')})` : '';
  const value = JSON.stringify(getAt(c, at ? at.split('.') : []))?.slice(0, 60);
  return `${at || '(top level)'} ${value}: ${e.message ?? e.keyword}${allowed}`;
}

/** Throw a usage error naming the file and the key when the config is not valid. */
export function checkConfig(c: unknown, file: string): void {
  const p = configProblem(c);
  if (p) throw new UsageError(`${file}: ${p} (fix it, or see "sedna-ll config validate")`);
}

/** "a.b.c" -> ["a","b","c"]; refuses empty parts. */
export function keyPath(key: string): string[] {
  const parts = key.split('.');
  if (!key || parts.some((p) => p === '')) throw new UsageError(`config key "${key}": expected a dotted path like upload.compress`);
  return parts;
}

export function getAt(c: unknown, path: string[]): unknown {
  let v: unknown = c;
  for (const p of path) {
    if (!v || typeof v !== 'object' || !Object.hasOwn(v, p)) return undefined;
    v = (v as Record<string, unknown>)[p];
  }
  return v;
}

/** A copy of c with path set to value (intermediate objects created). */
export function setAt<T>(c: T, path: string[], value: unknown): T {
  const out = structuredClone(c) as Record<string, unknown>;
  let o = out;
  for (const p of path.slice(0, -1)) {
    if (!o[p] || typeof o[p] !== 'object' || Array.isArray(o[p])) o[p] = {};
    o = o[p] as Record<string, unknown>;
  }
  o[path[path.length - 1]] = value;
  return out as T;
}

/** A copy of c without path (and without objects it leaves empty); `found` says whether it was set. */
export function unsetAt<T>(c: T, path: string[]): { config: T; found: boolean } {
  const out = structuredClone(c) as Record<string, unknown>;
  const chain: Record<string, unknown>[] = [out];
  for (const p of path.slice(0, -1)) {
    const next = chain[chain.length - 1][p];
    if (!next || typeof next !== 'object') return { config: out as T, found: false };
    chain.push(next as Record<string, unknown>);
  }
  const last = chain[chain.length - 1];
  const found = Object.hasOwn(last, path[path.length - 1]);
  delete last[path[path.length - 1]];
  for (let i = chain.length - 1; i > 0; i--) if (Object.keys(chain[i]).length === 0) delete chain[i - 1][path[i - 1]];
  return { config: out as T, found };
}

/** A value given on the command line: JSON when it parses (numbers, booleans, objects), else the string. */
export function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
