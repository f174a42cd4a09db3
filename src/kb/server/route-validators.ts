// The KB's request-body checks as fastify's validator compiler: each route schema maps to its
// function generated ahead of time (route-validators.gen.ts, scripts/gen-route-validators.ts),
// so `kb serve` neither loads ajv nor compiles a schema before it listens. A route schema with
// no generated function is a programming error: the server refuses to start, naming the route.
import { createRequire } from 'node:module';
import type { FastifyServerOptions } from 'fastify';
import { DEVICE_REPORT_SCHEMA, PUSH_LABELS_SCHEMA, PUSH_SAMPLES_SCHEMA } from '../../format/protocol.js';
import { validateDeviceReport, validatePushLabels, validatePushSamples } from './route-validators.gen.js';

// this exact line at the top level: both CommonJS bundles drop it (their own require serves the
// require() below); import.meta anywhere else fails the single-file executables' bundling
const require = createRequire(import.meta.url);

type Validator = ((data: unknown) => boolean) & { errors?: unknown };

const GENERATED = new Map<object, Validator>([
  [PUSH_SAMPLES_SCHEMA, validatePushSamples as Validator],
  [PUSH_LABELS_SCHEMA, validatePushLabels as Validator],
  [DEVICE_REPORT_SCHEMA, validateDeviceReport as Validator],
]);

interface RouteSchema {
  schema: unknown;
  method?: string;
  url?: string;
  httpPart?: string;
}

/** The validator of a route schema (fastify calls this once per route and part, at start). */
export function routeValidator({ schema, method, url, httpPart }: RouteSchema): Validator {
  const v = typeof schema === 'object' && schema !== null ? GENERATED.get(schema) : undefined;
  if (!v) throw new Error(`no generated validator for the ${httpPart ?? 'request'} schema of ${method} ${url}: add it to scripts/gen-route-validators.ts and src/kb/server/route-validators.ts`);
  return v;
}

/**
 * fastify's `schemaController` option: validation by routeValidator; serialization by fastify's
 * own compiler, loaded only if a route ever declares a response schema (none does today), so
 * fast-json-stringify (and the ajv it brings) stays unloaded at start too.
 */
export function kbSchemaController(): NonNullable<FastifyServerOptions['schemaController']> {
  return {
    compilersFactory: {
      buildValidator: () => routeValidator,
      buildSerializer: (external: unknown, options: unknown) => {
        let compile: ((route: unknown) => unknown) | null = null;
        return (route: unknown) => {
          compile ??= (require('@fastify/fast-json-stringify-compiler') as () => (e: unknown, o: unknown) => (r: unknown) => unknown)()(external, options);
          return compile(route);
        };
      },
    },
    // fastify's types want ajv's function type; a generated function is one in all but the type
  } as unknown as NonNullable<FastifyServerOptions['schemaController']>;
}
