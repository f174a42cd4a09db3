// What every KB request goes through, whatever its route: gzip decoding, JSON parsing, the
// one-line JSON error answer, the request id header, and one log line + metrics per request.
// Applied to the root instance (not a plugin), so every route plugin inherits it.
//
// Errors are JSON { error: "<one line>" } with a 4xx/5xx status; a bad request never stops the
// server.
import { createGunzip } from 'node:zlib';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { KbMetrics } from '../metrics.js';
import type { KbStore } from '../store.js';
import type { KbAuth } from './auth.js';

/** A refusal with its HTTP status; the error handler answers { error: message }. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** Installs the shared request handling on `app`; returns the switch of a graceful stop. */
export function handleRequests(app: FastifyInstance, opts: { bodyLimit: number; metrics: KbMetrics }): { closing(): void } {
  // the one-line error a request was answered with, for its log line
  const errors = new WeakMap<FastifyRequest, string>();

  app.addHook('preParsing', async (req, _reply, payload) => {
    const enc = String(req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
    if (enc === 'identity' || enc === '') return payload;
    if (enc !== 'gzip') throw new HttpError(415, `unsupported Content-Encoding "${enc}" (use gzip or none)`);
    // fastify enforces bodyLimit on the decoded bytes (zip bombs) and compares
    // receivedEncodedLength with Content-Length
    const gunzip = createGunzip() as ReturnType<typeof createGunzip> & { receivedEncodedLength: number };
    gunzip.receivedEncodedLength = 0;
    payload.on('data', (c: Buffer) => {
      gunzip.receivedEncodedLength += c.length;
    });
    payload.on('error', (e) => gunzip.destroy(e));
    payload.pipe(gunzip);
    return gunzip;
  });

  // Plain JSON.parse instead of fastify's secure-json-parse, whose __proto__/constructor regex
  // scans cost ~6% of the push path: every body is schema-validated with additionalProperties
  // false (an own "__proto__" key is refused), and no handler merges request objects into others.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, JSON.parse(body as string));
    } catch (e) {
      done(new HttpError(400, `body is not valid JSON: ${(e as Error).message}`), undefined);
    }
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown; retryAfterSec?: number }, req, reply) => {
    let status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    let msg = err.message || 'error';
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') msg = `request body larger than the limit of ${opts.bodyLimit} bytes`;
    else if (err.code === 'Z_DATA_ERROR' || err.code === 'Z_BUF_ERROR') (status = 400), (msg = `bad gzip body: ${err.message}`);
    else if (err.validation) msg = `invalid request: ${err.message}`;
    if (status >= 500) req.log.error({ err }, `${req.method} ${req.url}: ${err.message}`);
    errors.set(req, msg.split('\n')[0]);
    // a backend that is down for now (object store, database): the client retries after this
    if (status === 503 && err.retryAfterSec) reply.header('retry-after', String(err.retryAfterSec));
    reply.code(status).send({ error: msg.split('\n')[0] });
  });
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({ error: `no such endpoint: ${req.method} ${req.url.split('?')[0]}` });
  });

  // graceful stop: requests in flight finish, and their keep-alive connections close with the
  // response instead of idling until the keep-alive timeout holds the process
  let closing = false;
  // the request id goes back to the caller: a device's error report can name the log line
  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });
  app.addHook('onSend', async (_req, reply, payload) => {
    if (closing) reply.header('connection', 'close');
    return payload;
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions?.url ?? 'unmatched';
    opts.metrics.request(req.method, route, reply.statusCode, reply.elapsedTime / 1000);
    const error = errors.get(req);
    req.log.info(
      { method: req.method, url: req.url, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10, ...(req.device ? { device: req.device.id } : {}), ...(error ? { error } : {}) },
      'request',
    );
  });
  return {
    closing: () => {
      closing = true;
    },
  };
}

/** A non-negative integer query parameter; `dflt` when absent or empty. */
export function queryInt<D extends number | null>(name: string, v: string | undefined, dflt: D, max = Number.MAX_SAFE_INTEGER): number | D {
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new HttpError(400, `${name} "${v}": expected an integer >= 0`);
  return Math.min(n, max);
}

/** What a route plugin is registered with. */
export interface KbRouteOptions {
  store: KbStore;
  metrics: KbMetrics;
  auth: KbAuth;
}
