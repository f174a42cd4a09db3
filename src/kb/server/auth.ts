// Bearer-token authentication of the KB server: device tokens and the admin token, checked in
// onRequest, before any body is read. A route plugin adds one of these hooks to all its routes.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CachedRead } from '../../metrics/cached-read.js';
import type { DeviceRecord, KbStore } from '../store.js';
import { bearerToken, hashToken, sameHash } from '../tokens.js';
import { HttpError } from './http.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** the authenticated device (device routes), else null */
    device: DeviceRecord | null;
  }
}

export type AuthHook = (req: FastifyRequest) => Promise<void>;
export interface KbAuth {
  device: AuthHook;
  admin: AuthHook;
}

/** last_seen is written at most this often per device */
const TOUCH_EVERY_MS = 10_000;

/** how long a replica may go on accepting a replaced admin token (the hash is in the store) */
export const ADMIN_TOKEN_MAX_AGE_MS = 5_000;

/** Decorates requests with `device` and returns the two hooks. */
export async function kbAuth(app: FastifyInstance, store: KbStore): Promise<KbAuth> {
  app.decorateRequest('device', null);
  // read from the store, re-read at most every few seconds: a new admin token set on one
  // replica (or in the database) is seen by every replica
  const adminHash = new CachedRead(() => store.getMeta('admin_token_hash'), ADMIN_TOKEN_MAX_AGE_MS);
  await adminHash.get();
  const touched = new Map<string, number>();
  return {
    device: async (req) => {
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
    },
    admin: async (req) => {
      const token = bearerToken(req.headers.authorization);
      if (!token) throw new HttpError(401, 'missing Authorization: Bearer <admin token>');
      const h = await adminHash.get();
      if (!h || !sameHash(h, hashToken(token))) throw new HttpError(401, 'not the admin token');
    },
  };
}
