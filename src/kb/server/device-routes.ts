// The device side of the sync protocol (src/format/protocol.ts): push samples and labels, pull
// the channel's signed index, report health. Every route needs a device token.
import type { FastifyPluginAsync } from 'fastify';
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
} from '../../format/protocol.js';
import { PROTOCOL_REVISION, type ProtocolInfo } from '../../format/protocol.js';
import { FRAMES_CONTENT_TYPE, FRAMES_NAME } from '../../format/sample-frames.js';
import { sha256Hex } from '../../format/signature.js';
import { handleDeviceReport } from '../report.js';
import { keyTransitions } from '../signing-key.js';
import { decodeSample, ingestFrames } from '../sample-ingest.js';
import type { NewSample, PutSamplesResult } from '../store.js';
import { HttpError, queryInt, type KbRouteOptions } from './http.js';

// decodeSample lives with the frames ingest (one sample check for both push framings)
export { decodeSample };

/** what the device routes need beyond every route group's options */
export interface DeviceRouteOptions extends KbRouteOptions {
  /** largest record of a frames push (the server's body limit) */
  bodyLimit: number;
  /** take pushes only as JSON: no GET /v1/protocol, no frames (kb serve --json-push-only) */
  jsonPushOnly?: boolean;
}

export const deviceRoutes: FastifyPluginAsync<DeviceRouteOptions> = async (app, { store, metrics, auth, bodyLimit, jsonPushOnly }) => {
  app.addHook('onRequest', auth.device);
  // a published version's index never changes: its bytes and sha are kept after the first pull
  const indexCache = new Map<number, { bytes: Buffer; sig: string; sha: string }>();

  app.post('/v1/samples', { schema: { body: PUSH_SAMPLES_SCHEMA } }, async (req, reply) => {
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

  if (!jsonPushOnly) {
    // what this KB speaks beyond v1 JSON; an edge sends frames only to a KB that lists them
    const info: ProtocolInfo = { revision: PROTOCOL_REVISION, push_framings: ['json', FRAMES_NAME], push_encodings: ['identity', 'gzip'] };
    app.get('/v1/protocol', async () => info);

    // Binary sample frames: the body stays a stream (gunzipped by the shared preParsing hook
    // when gzip); the route reads it record by record (sample-ingest.ts). fastify's bodyLimit
    // does not apply to a stream: each record is bounded by it instead, and the ingest never
    // holds more than one transaction's worth of records.
    app.addContentTypeParser(FRAMES_CONTENT_TYPE, (_req, payload, done) => done(null, payload));
    app.post('/v1/sample-frames', async (req, reply) => {
      if (String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase() !== FRAMES_CONTENT_TYPE) {
        throw new HttpError(415, `POST /v1/sample-frames takes Content-Type ${FRAMES_CONTENT_TYPE}`);
      }
      const device = req.device!.id;
      const r = await ingestFrames(req.body as AsyncIterable<Buffer>, {
        put: (samples) => store.putSamples(device, samples),
        maxRecordBytes: bodyLimit,
        onCommit: (seconds: number, n: number, p: PutSamplesResult) => metrics.samplesPushed(seconds, n, p.inserted, p.labelled),
      });
      const res: PushSamplesResponse = { stored: r.stored };
      if (r.rejected.length) res.rejected = r.rejected;
      // the records committed before a break are acked with the error: the edge re-sends them harmlessly
      if (r.streamError) return reply.code(r.streamError.status).send({ error: r.streamError.message, ...res });
      // as /v1/samples: nothing stored and every refusal is the store's
      if (res.stored.length === 0 && r.storeRejected > 0 && r.storeRejected === r.rejected.length) {
        return reply.code(409).send({ error: `sample id "${r.rejected[0].id}": ${r.rejected[0].reason}`, ...res });
      }
      return res;
    });
  }

  app.post('/v1/labels', { schema: { body: PUSH_LABELS_SCHEMA } }, async (req, reply) => {
    const body = req.body as PushLabelsRequest;
    const t0 = performance.now();
    const r = await store.setLabels(body.labels, 'edge', req.device!.id);
    metrics.labelsPushed((performance.now() - t0) / 1000, r.stored.length, r.newly_labelled);
    if (r.forbidden.length) return reply.code(403).send({ error: `sample "${r.forbidden[0]}" belongs to another device; no label stored`, forbidden: r.forbidden });
    return r.unknown.length ? { stored: r.stored, unknown: r.unknown } : { stored: r.stored };
  });

  app.get('/v1/index', async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    const since = queryInt('since', q.since, 0);
    // the KB version the device runs (newer edges send it): lets an aborted rollout reach
    // devices that installed the newer version, whose `since` is past the channel's version
    const active = queryInt('active', q.active, null);
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

  // the KB's signing-key chain (kb/signing-key.ts): an edge asks only when an index does not
  // verify with the keys it trusts; every transition, so one offline through several
  // rotations walks them all. Nothing secret: each is signed by the private keys it names.
  app.get('/v1/keys', async (_req, reply) => {
    const [publicKey, transitions] = await Promise.all([store.publicKey(), keyTransitions(store)]);
    reply.header('cache-control', 'no-cache');
    return { public_key: publicKey, transitions };
  });

  app.post('/v1/report', { schema: { body: DEVICE_REPORT_SCHEMA } }, async (req) => {
    await handleDeviceReport(store, req.device!, req.body as DeviceReport);
    return { ok: true };
  });
};
