// /v1/admin/*: the operator's view of the fleet and its samples, and admin labelling. Every
// route needs the admin token.
import type { FastifyPluginAsync } from 'fastify';
import { PUSH_LABELS_SCHEMA, type PushLabelsRequest } from '../../format/protocol.js';
import { HttpError, queryInt, type KbRouteOptions } from './http.js';

export const adminRoutes: FastifyPluginAsync<KbRouteOptions> = async (app, { store, metrics, auth }) => {
  app.addHook('onRequest', auth.admin);

  app.get('/v1/admin/devices', async () => ({ devices: await store.listDevices() }));
  app.get('/v1/admin/samples', async (req) => {
    const q = req.query as Record<string, string | undefined>;
    const limit = queryInt('limit', q.limit, 1000, 10000);
    const labelled = q.labelled === undefined ? undefined : q.labelled === 'true' || q.labelled === '1';
    const samples = await store.listSamples({ device: q.device, task: q.task, labelled, after: queryInt('after', q.after, 0), limit });
    return { samples, next: samples.length === limit ? samples[samples.length - 1].seq : null };
  });
  app.get('/v1/admin/samples/:id/payload', async (req, reply) => {
    const id = (req.params as { id: string }).id;
    const s = await store.getSample(id);
    if (!s) throw new HttpError(404, `sample "${id}": unknown`);
    const payload = await store.samplePayload(id);
    if (!payload) throw new HttpError(404, `sample "${id}": payload kept on the device (payload_kind none)`);
    return reply.type('application/octet-stream').header('x-sedna-payload-kind', s.payload_kind).header('etag', `"${s.payload_sha}"`).send(payload);
  });
  app.post('/v1/admin/labels', { schema: { body: PUSH_LABELS_SCHEMA } }, async (req) => {
    const body = req.body as PushLabelsRequest;
    const r = await store.setLabels(body.labels, 'admin', null);
    metrics.labelsPushed(null, r.stored.length, r.newly_labelled);
    return { stored: r.stored, unknown: r.unknown, newly_labelled: r.newly_labelled };
  });
  app.get('/v1/admin/versions', async () => ({ versions: await store.listVersions(), channels: await store.listChannels() }));
  app.get('/v1/admin/stats', async () => ({ ...(await store.stats()), counters: await store.counters() }));
};
