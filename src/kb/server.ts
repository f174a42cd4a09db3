// The KB HTTP server (fastify, imported lazily): the sync protocol of src/format/protocol.ts for
// devices, admin endpoints, /healthz and /metrics. All state lives in the KbStore, so several
// replicas over a shared backend could serve the same fleet.
//
// This file builds the app and registers the route groups of server/: what every request goes
// through (http.ts), token checks (auth.ts), device routes, blobs, admin routes. A new route goes
// into the group whose token it needs.
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { kbLoggerOptions, requestId, type LogLevel } from './log.js';
import { KbMetrics } from './metrics.js';
import type { KbStore } from './store.js';
import { adminRoutes } from './server/admin-routes.js';
import { kbAuth } from './server/auth.js';
import { blobRoutes } from './server/blob-routes.js';
import { deviceRoutes } from './server/device-routes.js';
import { handleRequests } from './server/http.js';
import { kbSchemaController } from './server/route-validators.js';

export const DEFAULT_BODY_LIMIT = 64 * 1024 * 1024;
export const DEFAULT_PORT = 9020;

export interface ServerOptions {
  host?: string;
  port?: number;
  /** max request body bytes after gzip decoding */
  bodyLimit?: number;
  tls?: { certFile: string; keyFile: string };
  /** JSON log lines on stderr (src/kb/log.ts), one per request at info; default silent */
  logLevel?: LogLevel;
  /** where log lines go (default stderr) */
  logStream?: NodeJS.WritableStream;
  /** serve /metrics without the admin token (a scraper on a trusted network); default: token */
  openMetrics?: boolean;
  /** > 0: GET /v1/blobs/:sha/url answers presigned object-store URLs valid this many seconds */
  presignExpirySec?: number;
  /** accept only JSON pushes (do not announce or serve binary sample frames); default false */
  jsonPushOnly?: boolean;
}

export interface RunningServer {
  url: string;
  port: number;
  app: FastifyInstance;
  close(): Promise<void>;
}

export async function startKbServer(store: KbStore, opts: ServerOptions = {}): Promise<RunningServer> {
  const { default: Fastify, LogController } = await import('fastify');
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const app = Fastify({
    logger: opts.logLevel && opts.logLevel !== 'silent' ? kbLoggerOptions(opts.logLevel, opts.logStream) : false,
    // one line per request, written in onResponse with what an operator needs (fastify's own
    // pair of "incoming request" / "request completed" lines would double the volume)
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'req_id' }),
    genReqId: requestId,
    bodyLimit,
    requestTimeout: 300_000,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    ...(opts.tls ? { https: { cert: readFileSync(opts.tls.certFile), key: readFileSync(opts.tls.keyFile) } } : {}),
    // request bodies are checked by functions generated ahead of time with ajv's options
    // { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false }:
    // reject what a schema does not allow instead of silently repairing it (route-validators.ts)
    schemaController: kbSchemaController(),
  }) as unknown as FastifyInstance;

  const metrics = new KbMetrics(store);
  // root-level hooks and handlers first: route plugins inherit what exists when they load
  const requests = handleRequests(app, { bodyLimit, metrics });
  const auth = await kbAuth(app, store);

  app.get('/healthz', async () => ({ ok: true }));
  // request counts, device counts and sample totals are the operator's: admin token unless the
  // operator opens it (kb serve --open-metrics)
  app.get('/metrics', { onRequest: opts.openMetrics ? [] : auth.admin }, async (_req, reply) => {
    reply.type(metrics.contentType).send(await metrics.render());
  });
  const routes = { store, metrics, auth };
  await app.register(deviceRoutes, { ...routes, bodyLimit, jsonPushOnly: opts.jsonPushOnly });
  await app.register(blobRoutes, { ...routes, presignExpirySec: opts.presignExpirySec ?? 0 });
  await app.register(adminRoutes, routes);

  await app.listen({ host: opts.host ?? '127.0.0.1', port: opts.port ?? DEFAULT_PORT });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : (opts.port ?? DEFAULT_PORT);
  const host = opts.host ?? '127.0.0.1';
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return {
    url: `${opts.tls ? 'https' : 'http'}://${hostPart}:${port}`,
    port,
    app,
    close: () => {
      requests.closing();
      return app.close();
    },
  };
}
