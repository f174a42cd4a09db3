// ajv's standalone code generator, shared by the scripts that compile a JSON Schema ONCE, ahead
// of time, into a plain validation function committed to the tree (gen-index-validator.ts,
// gen-config-validator.ts). Loading ajv and compiling at run time costs ~100-200 ms; the generated
// function is exactly what ajv would compile (same checks, same error objects) and imports nothing.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** ajv runtime helpers the generated code may use, inlined so the module imports nothing. */
const INLINE_RUNTIME = new Set(['ucs2length', 'equal']);

/** The source of a generated validator module (exports `validate`) for `schema`. */
export function standaloneValidatorSource(schema: object, header: string[]): string {
  const { ajv, standalone } = newAjv();
  return moduleSource(standalone(ajv, ajv.compile(schema)), header);
}

/** The source of a module exporting one validator per entry of `schemas` (export name -> schema). */
export function standaloneValidatorsSource(schemas: Record<string, object>, header: string[]): string {
  const { ajv, standalone } = newAjv();
  const refs: Record<string, string> = {};
  for (const [name, schema] of Object.entries(schemas)) {
    ajv.addSchema(schema, name); // the export name doubles as the schema's key
    refs[name] = name;
  }
  return moduleSource(standalone(ajv, refs), header);
}

function newAjv() {
  const Ajv = require('ajv').default;
  const standalone = require('ajv/dist/standalone').default;
  const ajv = new Ajv({ allErrors: false, strict: false, code: { source: true, esm: true, lines: true } });
  return { ajv, standalone };
}

function moduleSource(generated: string, header: string[]): string {
  // ajv's ESM output still require()s its runtime helpers; inline their (self-contained) source
  const code = generated.replace(/require\("ajv\/dist\/runtime\/([a-z0-9]+)"\)\.default/gi, (_m, name: string) => {
    if (!INLINE_RUNTIME.has(name)) throw new Error(`the schema now needs ajv runtime helper "${name}": check it is self-contained and add it to INLINE_RUNTIME`);
    return `(${String(require(`ajv/dist/runtime/${name}`).default)})`;
  });
  if (/\brequire\(/.test(code)) throw new Error('generated validator still contains require()');
  return [...header.map((l) => `// ${l}`), '// @ts-nocheck', code.replace(/^"use strict";/, ''), ''].join('\n');
}
