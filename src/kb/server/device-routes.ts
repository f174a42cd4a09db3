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
import { normaliseAttrs } from '../../format/attrs.js';
import { sha256Hex } from '../../format/signature.js';
import { handleDeviceReport } from '../report.js';
import type { NewSample } from '../store.js';
import { HttpError, queryInt, type KbRouteOptions } from './http.js';

/** The sync protocol's sample -> what the store keeps; a one-line reason when it is unusable. */
export function decodeSample(s: PushSamplesRequest['samples'][number]): NewSample | string {
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

export const deviceRoutes: FastifyPluginAsync<KbRouteOptions> = async (app, { store, metrics, auth }) => {
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

  app.post('/v1/report', { schema: { body: DEVICE_REPORT_SCHEMA } }, async (req) => {
    await handleDeviceReport(store, req.device!, req.body as DeviceReport);
    return { ok: true };
  });
};
