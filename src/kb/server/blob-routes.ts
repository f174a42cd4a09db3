// GET /v1/blobs/:sha: the files of published KB versions, pulled by devices (device token).
// Published blobs only, strong ETag (the sha), one Range with If-Range.
// GET /v1/blobs/:sha/url (opt-in: kb serve --presign-expiry S, blobs in S3): a presigned URL of
// the object, so devices download from the object store instead of through this replica.
import type { FastifyPluginAsync } from 'fastify';
import { isSha256 } from '../blob-store.js';
import { ifRangeAllows, parseRange } from '../ranges.js';
import { HttpError, type KbRouteOptions } from './http.js';

export const blobRoutes: FastifyPluginAsync<KbRouteOptions & { presignExpirySec?: number }> = async (app, { store, auth, presignExpirySec }) => {
  app.addHook('onRequest', auth.device);

  app.get('/v1/blobs/:sha/url', async (req, reply) => {
    const sha = (req.params as { sha: string }).sha;
    if (!presignExpirySec || !store.blobs.presignGet) throw new HttpError(404, 'presigned blob URLs are off on this KB (kb serve --blobs s3://... --presign-expiry S)');
    if (!isSha256(sha)) throw new HttpError(400, `blob "${sha}": expected a lower-case sha256`);
    if (!(await store.isPublishedBlob(sha))) throw new HttpError(404, `blob ${sha}: not part of any published KB version`);
    const size = await store.blobs.size(sha);
    if (size === null) throw new HttpError(404, `blob ${sha}: missing from the store`);
    const expires_at = new Date(Date.now() + presignExpirySec * 1000).toISOString();
    // the URL is a short-lived credential of its own: never cached by proxies
    reply.header('cache-control', 'no-store');
    return { url: store.blobs.presignGet(sha, presignExpirySec), sha256: sha, size, expires_at };
  });

  app.get('/v1/blobs/:sha', async (req, reply) => {
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
  });
};
