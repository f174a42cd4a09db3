// The KB HTTP server (fastify, imported lazily): the sync protocol of src/format/protocol.ts for
// devices, admin endpoints, /healthz and /metrics. All state lives in the KbStore, so several
// replicas over a shared backend could serve the same fleet.
//
// Errors are JSON { error: "<one line>" } with a 4xx/5xx status; a bad request never stops the
// server. Authentication runs in onRequest, before any body is read.
import { createGunzip } from 'node:zlib';
import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  DEVICE_REPORT_SCHEMA,
  PUSH_LABELS_SCHEMA,
  PUSH_SAMPLES_SCHEMA,
  SIGNATURE_HEADER,
  VERSION_HEADER,
  type DeviceReport,
  type PushLabelsRequest,
  type PushSamplesRequest,
  type PushSamplesResponse,
} from '../format/protocol.js';
import { normaliseAttrs } from '../format/attrs.js';
import { sha256Hex } from '../format/signature.js';
import { isSha256 } from './blob-store.js';
import { kbLoggerOptions, requestId, type LogLevel } from './log.js';
import { KbMetrics } from './metrics.js';
import { ifRangeAllows, parseRange } from './ranges.js';
import { handleDeviceReport } from './report.js';
import type { DeviceRecord, KbStore, NewSample } from './store.js';
import { bearerToken, hashToken, sameHash } from './tokens.js';

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
}

export interface RunningServer {
  url: string;
  port: number;
  app: FastifyInstance;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    device: DeviceRecord | null;
  }
}

const TOUCH_EVERY_MS = 10_000;

/** The sync protocol's sample -> what the store keeps; a one-line reason when it is unusable. */
function decodeSample(s: PushSamplesRequest['samples'][number]): NewSample | string {
  let payload: Buffer | null = null;
  if (s.payload_kind === 'none') {
    if (s.payload_b64 !== undefined) return 'payload_b64 given with payload_kind "none"';
  } else {
    if (s.payload_b64 === undefined) return `payload_b64 missing for payload_kind "${s.payload_kind}"`;
    payload = Buffer.from(s.payload_b64, 'base64');
    if (sha256Hex(payload) !== s.payload_sha) return 'payload_sha does not match the payload';
  }
  return {
    id: s.id,
    task: s.task,
    // edges send normalised attributes; normalising again is idempotent and protects the
    // learner's task definition from an edge that did not
    attrs: normaliseAttrs(s.attrs),
    payload_kind: s.payload_kind,
    payload,
    payload_sha: s.payload_sha,
    pred_label: s.pred_label,
    scores: s.scores,
    hard: s.hard,
    hard_reasons: s.hard_reasons,
    unseen: s.unseen,
    unseen_reason: s.unseen_reason,
    kb_version: s.kb_version,
    created_at: s.created_at,
    label: s.label ?? null,
    source: 'edge',
  };
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
    ajv: {
      // reject what the schema does not allow instead of silently repairing it
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false },
    },
  }) as unknown as FastifyInstance;

  const metrics = new KbMetrics(store);
  const adminHash = await store.getMeta('admin_token_hash');
  const indexCache = new Map<number, { bytes: Buffer; sig: string; sha: string }>();
  const touched = new Map<string, number>();

  app.decorateRequest('device', null);
  // the one-line error a request was answered with, for its log line
  const errors = new WeakMap<FastifyRequest, string>();

  // ---- request decoding ----
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

  // ---- auth ----
  const deviceAuth = async (req: FastifyRequest) => {
    const token = bearerToken(req.headers.authorization);
    if (!token) throw new HttpError(401, 'missing Authorization: Bearer <device token>');
    const h = hashToken(token);
    const d = await store.deviceByTokenHash(h);
    if (!d || !sameHash(d.token_hash, h)) throw new HttpError(401, 'unknown device token');
    if (d.revoked_at !== null) throw new HttpError(401, `device "${d.id}" is revoked`);
    req.device = d;
    const now = Date.now();
    if (now - (touched.get(d.id) ?? 0) > TOUCH_EVERY_MS) {
      touched.set(d.id, now);
      // last_seen is bookkeeping: a busy database must not fail the request itself
      await store.touchDevice(d.id, now).catch(() => touched.delete(d.id));
    }
  };
  const adminAuth = async (req: FastifyRequest) => {
    const token = bearerToken(req.headers.authorization);
    if (!token) throw new HttpError(401, 'missing Authorization: Bearer <admin token>');
    if (!adminHash || !sameHash(adminHash, hashToken(token))) throw new HttpError(401, 'not the admin token');
  };

  // ---- errors, logging, metrics ----
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown }, _req, reply) => {
    let status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    let msg = err.message || 'error';
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') msg = `request body larger than the limit of ${bodyLimit} bytes`;
    else if (err.code === 'Z_DATA_ERROR' || err.code === 'Z_BUF_ERROR') (status = 400), (msg = `bad gzip body: ${err.message}`);
    else if (err.validation) msg = `invalid request: ${err.message}`;
    if (status >= 500) _req.log.error({ err }, `${_req.method} ${_req.url}: ${err.message}`);
    errors.set(_req, msg.split('\n')[0]);
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
    metrics.request(req.method, route, reply.statusCode, reply.elapsedTime / 1000);
    const error = errors.get(req);
    req.log.info(
      { method: req.method, url: req.url, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10, ...(req.device ? { device: req.device.id } : {}), ...(error ? { error } : {}) },
      'request',
    );
  });

  // ---- open endpoints ----
  app.get('/healthz', async () => ({ ok: true }));
  // request counts, device counts and sample totals are the operator's: admin token unless the
  // operator opens it (kb serve --open-metrics)
  app.get('/metrics', { onRequest: opts.openMetrics ? [] : adminAuth }, async (_req, reply) => {
    reply.type(metrics.contentType).send(await metrics.render());
  });

  // ---- device endpoints ----
  app.post('/v1/samples', { onRequest: deviceAuth, schema: { body: PUSH_SAMPLES_SCHEMA } }, async (req, reply) => {
    const body = req.body as PushSamplesRequest;
    const good: NewSample[] = [];
    const rejected: { id: string; reason: string }[] = [];
    for (const s of body.samples) {
      const d = decodeSample(s);
      if (typeof d === 'string') rejected.push({ id: s.id, reason: d });
      else good.push(d);
    }
    // answered only after the batch's transaction committed (putSamples resolves after COMMIT)
    const t0 = performance.now();
    const r = await store.putSamples(req.device!.id, good);
    metrics.samplesPushed((performance.now() - t0) / 1000, body.samples.length, r.inserted, r.labelled);
    rejected.push(...r.rejected);
    const res: PushSamplesResponse = { stored: [...new Set(r.stored)] };
    if (rejected.length) res.rejected = rejected;
    // nothing stored and every refusal is the store's (ownership, id collision, reserved id)
    if (res.stored.length === 0 && r.rejected.length > 0 && r.rejected.length === rejected.length) {
      return reply.code(409).send({ error: `sample id "${r.rejected[0].id}": ${r.rejected[0].reason}`, ...res });
    }
    return res;
  });

  app.post('/v1/labels', { onRequest: deviceAuth, schema: { body: PUSH_LABELS_SCHEMA } }, async (req, reply) => {
    const body = req.body as PushLabelsRequest;
    const t0 = performance.now();
    const r = await store.setLabels(body.labels, 'edge', req.device!.id);
    metrics.labelsPushed((performance.now() - t0) / 1000, r.stored.length, r.newly_labelled);
    if (r.forbidden.length) return reply.code(403).send({ error: `sample "${r.forbidden[0]}" belongs to another device; no label stored`, forbidden: r.forbidden });
    return r.unknown.length ? { stored: r.stored, unknown: r.unknown } : { stored: r.stored };
  });

  app.get('/v1/index', { onRequest: deviceAuth }, async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    const since = q.since === undefined || q.since === '' ? 0 : Number(q.since);
    if (!Number.isSafeInteger(since) || since < 0) throw new HttpError(400, `since "${q.since}": expected an integer >= 0`);
    // the KB version the device runs (newer edges send it): lets an aborted rollout reach
    // devices that installed the newer version, whose `since` is past the channel's version
    const active = q.active === undefined || q.active === '' ? null : Number(q.active);
    if (active !== null && (!Number.isSafeInteger(active) || active < 0)) throw new HttpError(400, `active "${q.active}": expected an integer >= 0`);
    const ch = await store.getChannel(req.device!.channel);
    // protocol: 304 when the channel's version <= since (also: nothing published yet), unless the
    // device said it runs another version: then the channel's index (channel fallback)
    if (!ch || ch.version === null) return reply.code(304).send();
    if (ch.version <= since && (active === null || active === ch.version)) return reply.code(304).send();
    let idx = indexCache.get(ch.version);
    if (!idx) {
      const v = await store.readVersionIndex(ch.version);
      if (!v) throw new HttpError(500, `KB version ${ch.version}: index missing from the store`);
      idx = { ...v, sha: sha256Hex(v.bytes) };
      indexCache.set(ch.version, idx);
    }
    reply
      .header('content-type', 'application/json')
      .header(SIGNATURE_HEADER, idx.sig)
      .header(VERSION_HEADER, String(ch.version))
      .header('etag', `"${idx.sha}"`)
      .header('cache-control', 'no-cache');
    return reply.send(idx.bytes);
  });

  app.get('/v1/blobs/:sha', { onRequest: deviceAuth }, async (req, reply) => blobResponse(store, req, reply));

  app.post('/v1/report', { onRequest: deviceAuth, schema: { body: DEVICE_REPORT_SCHEMA } }, async (req) => {
    await handleDeviceReport(store, req.device!, req.body as DeviceReport);
    return { ok: true };
  });

  // ---- admin endpoints ----
  app.get('/v1/admin/devices', { onRequest: adminAuth }, async () => ({ devices: await store.listDevices() }));
  app.get('/v1/admin/samples', { onRequest: adminAuth }, async (req) => {
    const q = req.query as Record<string, string | undefined>;
    const int = (name: string, v: string | undefined, dflt: number, max = Number.MAX_SAFE_INTEGER) => {
      if (v === undefined || v === '') return dflt;
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < 0) throw new HttpError(400, `${name} "${v}": expected an integer >= 0`);
      return Math.min(n, max);
    };
    const limit = int('limit', q.limit, 1000, 10000);
    const labelled = q.labelled === undefined ? undefined : q.labelled === 'true' || q.labelled === '1';
    const samples = await store.listSamples({ device: q.device, task: q.task, labelled, after: int('after', q.after, 0), limit });
    return { samples, next: samples.length === limit ? samples[samples.length - 1].seq : null };
  });
  app.get('/v1/admin/samples/:id/payload', { onRequest: adminAuth }, async (req, reply) => {
    const id = (req.params as { id: string }).id;
    const s = await store.getSample(id);
    if (!s) throw new HttpError(404, `sample "${id}": unknown`);
    const payload = await store.samplePayload(id);
    if (!payload) throw new HttpError(404, `sample "${id}": payload kept on the device (payload_kind none)`);
    return reply.type('application/octet-stream').header('x-sedna-payload-kind', s.payload_kind).header('etag', `"${s.payload_sha}"`).send(payload);
  });
  app.post('/v1/admin/labels', { onRequest: adminAuth, schema: { body: PUSH_LABELS_SCHEMA } }, async (req) => {
    const body = req.body as PushLabelsRequest;
    const r = await store.setLabels(body.labels, 'admin', null);
    metrics.labelsPushed(null, r.stored.length, r.newly_labelled);
    return { stored: r.stored, unknown: r.unknown, newly_labelled: r.newly_labelled };
  });
  app.get('/v1/admin/versions', { onRequest: adminAuth }, async () => ({ versions: await store.listVersions(), channels: await store.listChannels() }));
  app.get('/v1/admin/stats', { onRequest: adminAuth }, async () => ({ ...(await store.stats()), counters: await store.counters() }));

  await app.listen({ host: opts.host ?? '127.0.0.1', port: opts.port ?? DEFAULT_PORT });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : (opts.port ?? DEFAULT_PORT);
  const host = opts.host ?? '127.0.0.1';
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return { url: `${opts.tls ? 'https' : 'http'}://${hostPart}:${port}`, port, app, close: () => {
      closing = true;
      return app.close();
    },
  };
}

/** GET /v1/blobs/:sha: published blobs only, strong ETag, single Range with If-Range. */
async function blobResponse(store: KbStore, req: FastifyRequest, reply: FastifyReply) {
  const sha = (req.params as { sha: string }).sha;
  if (!isSha256(sha)) throw new HttpError(400, `blob "${sha}": expected a lower-case sha256`);
  if (!(await store.isPublishedBlob(sha))) throw new HttpError(404, `blob ${sha}: not part of any published KB version`);
  const size = await store.blobs.size(sha);
  if (size === null) throw new HttpError(404, `blob ${sha}: missing from the store`);
  const etag = `"${sha}"`;
  reply.header('etag', etag).header('accept-ranges', 'bytes').header('content-type', 'application/octet-stream').header('cache-control', 'public, max-age=31536000, immutable');
  const inm = req.headers['if-none-match'];
  if (inm && inm.split(',').some((t) => t.trim() === etag || t.trim() === '*')) return reply.code(304).send();
  const rangeHeader = req.headers.range;
  const ifRange = req.headers['if-range'];
  const range = rangeHeader && ifRangeAllows(typeof ifRange === 'string' ? ifRange : undefined, etag) ? parseRange(rangeHeader, size) : ({ kind: 'full' } as const);
  if (range.kind === 'unsatisfiable') {
    return reply.code(416).header('content-range', `bytes */${size}`).type('application/json').send({ error: `range "${rangeHeader}" not satisfiable for ${size} bytes` });
  }
  if (range.kind === 'partial') {
    reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${size}`).header('content-length', String(range.end - range.start + 1));
    return reply.send(await store.blobs.get(sha, range));
  }
  reply.code(200).header('content-length', String(size));
  return reply.send(await store.blobs.get(sha));
}
