// The simulated fleet: each device has its own keep-alive connection (an undici Client: one
// socket, like one gateway), pushes its batches one at a time, retries a batch that got no
// usable answer (network error, 5xx, 429) with full-jitter exponential backoff as the edge's
// client does (src/sync/http.ts), re-sends a fraction of acknowledged batches (a lost ack), and
// records every id the KB acknowledged. Then pulls: the signed index, then the model blob,
// streamed through the replica or from a presigned object-store URL, sha256 verified.
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client, Dispatcher } from 'undici';
import { mulberry32 } from '../../../src/random.js';
import { SIGNATURE_HEADER, type PushSamplesResponse } from '../../../src/format/protocol.js';
import { verifyBytes } from '../../../src/format/signature.js';
import type { Latencies } from './latency.js';
import { FRAMES_NAME } from '../../../src/format/sample-frames.js';
import type { ProtocolInfo } from '../../../src/format/protocol.js';
import { makePushBody, PUSH_PATH, type Framing, type PayloadPool } from './wire.js';

export interface FleetDevice {
  id: string;
  token: string;
  client?: Client;
}

export interface PushPlan {
  batches: number;
  batchSize: number;
  /** fraction of acknowledged batches sent again */
  resend: number;
  seed: number;
  /** absolute ms (Date.now()) after which the run fails */
  deadline: number;
  /** auto: ask GET /v1/protocol like the edge does before its first batch; json: never ask */
  framing: 'auto' | 'json';
}

export interface PushTally {
  /** what the devices negotiated (one of them: all ask the same KB) */
  framing: Framing | null;
  batchesAcked: number;
  samplesAcked: number;
  resent: number;
  /** attempts after a failed one (network error, 5xx, 429) */
  retries: number;
  /** ids acknowledged, per device */
  acked: Map<string, Set<string>>;
  /** a device that could not finish (a 4xx, a broken answer, the deadline) */
  failures: string[];
}

/** the push endpoint in the stats (the path depends on the framing: PUSH_PATH) */
export const PUSH = 'POST push batch';
export const PROTOCOL = 'GET /v1/protocol';
export const BATCH = 'batch until acked (incl. retries)';
export const INDEX = 'GET /v1/index';
export const BLOB = 'GET /v1/blobs/:sha (20 MB, streamed)';
export const URL_EP = 'GET /v1/blobs/:sha/url';
export const S3_GET = 'GET presigned URL (object store)';

const BACKOFF_BASE_MS = 250;
const BACKOFF_CAP_MS = 8_000;

class Fatal extends Error {}

export async function openClients(devices: FleetDevice[], url: string): Promise<void> {
  const { Client } = await import('undici');
  for (const d of devices) {
    d.client = new Client(url, { keepAliveTimeout: 120_000, headersTimeout: 300_000, bodyTimeout: 300_000, connect: { timeout: 30_000 } });
  }
}

export async function closeClients(devices: FleetDevice[]): Promise<void> {
  await Promise.all(devices.map((d) => d.client?.destroy().catch(() => {})));
}

async function backoff(attempt: number, retryAfter: string | string[] | undefined): Promise<void> {
  const hint = Number(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter);
  const step = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
  await sleep(Number.isFinite(hint) && hint > 0 ? Math.min(hint * 1000, BACKOFF_CAP_MS) : Math.random() * step);
}

/** POST one batch until the KB acknowledges every id of it. */
async function pushUntilAcked(d: FleetDevice, path: string, ids: string[], body: Buffer, headers: Record<string, string>, plan: PushPlan, lat: Latencies, tally: PushTally): Promise<void> {
  const t0 = performance.now();
  for (let attempt = 0; ; attempt++) {
    if (Date.now() > plan.deadline) throw new Fatal(`device ${d.id}: bench deadline reached while pushing`);
    const t = performance.now();
    let status: number | null = null;
    let recorded = false;
    let retryAfter: string | string[] | undefined;
    try {
      const res = await d.client!.request({ method: 'POST', path, headers: { ...headers, authorization: `Bearer ${d.token}` }, body });
      status = res.statusCode;
      retryAfter = res.headers['retry-after'];
      const text = await res.body.text();
      lat.record(PUSH, performance.now() - t, status);
      recorded = true;
      if (status === 200) {
        const reply = JSON.parse(text) as PushSamplesResponse;
        const sent = new Set(ids);
        const stored = new Set(reply.stored);
        if (reply.stored.some((id) => !sent.has(id))) throw new Fatal(`device ${d.id}: KB acked ids this batch did not send`);
        const missing = ids.filter((id) => !stored.has(id));
        if (missing.length) throw new Fatal(`device ${d.id}: KB stored ${stored.size} of ${ids.length} (first refused: ${JSON.stringify(reply.rejected?.[0] ?? missing[0])})`);
        let set = tally.acked.get(d.id);
        if (!set) tally.acked.set(d.id, (set = new Set()));
        for (const id of ids) set.add(id);
        lat.record(BATCH, performance.now() - t0, 200);
        return;
      }
      if (status < 500 && status !== 429) throw new Fatal(`device ${d.id}: POST ${path} answered ${status}: ${text.slice(0, 200)}`);
    } catch (e) {
      if (e instanceof Fatal) throw e;
      // no answer, or one cut off mid-body: a network error
      if (!recorded) lat.record(PUSH, performance.now() - t, null);
    }
    tally.retries++;
    await backoff(attempt, retryAfter);
  }
}

/** Every device pushes its batches; onAck after each acknowledged batch (the kill schedule). */
export async function pushFleet(devices: FleetDevice[], pool: PayloadPool, plan: PushPlan, lat: Latencies, tally: PushTally, onAck: () => void): Promise<void> {
  await Promise.all(
    devices.map(async (d, i) => {
      const rand = mulberry32(plan.seed * 7919 + i);
      try {
        const framing = plan.framing === 'json' ? 'json' : await negotiate(d, plan, lat, tally);
        tally.framing ??= framing;
        const path = PUSH_PATH[framing];
        for (let b = 0; b < plan.batches; b++) {
          const batch = makePushBody(pool, plan.batchSize, `site-${i % 20}`, rand, framing);
          await pushUntilAcked(d, path, batch.ids, batch.body, batch.headers, plan, lat, tally);
          tally.batchesAcked++;
          tally.samplesAcked += batch.ids.length;
          onAck();
          if (rand() < plan.resend) {
            // the ack was "lost": the edge sends the batch again; the KB must ack it, not store it twice
            tally.resent++;
            await pushUntilAcked(d, path, batch.ids, batch.body, batch.headers, plan, lat, tally);
          }
        }
      } catch (e) {
        tally.failures.push((e as Error).message);
      }
    }),
  );
}

/** GET /v1/protocol as the edge asks it (src/sync/negotiate.ts): frames when listed; 404: an old KB, JSON. */
async function negotiate(d: FleetDevice, plan: PushPlan, lat: Latencies, tally: PushTally): Promise<Framing> {
  for (let attempt = 0; ; attempt++) {
    if (Date.now() > plan.deadline) throw new Fatal(`device ${d.id}: bench deadline reached while negotiating`);
    const t = performance.now();
    let status: number | null = null;
    let recorded = false;
    try {
      const res = await d.client!.request({ method: 'GET', path: '/v1/protocol', headers: { authorization: `Bearer ${d.token}` } });
      status = res.statusCode;
      const text = await res.body.text();
      lat.record(PROTOCOL, performance.now() - t, status);
      recorded = true;
      if (status === 404 || status === 405) return 'json';
      if (status === 200) {
        const info = JSON.parse(text) as ProtocolInfo;
        return Array.isArray(info.push_framings) && info.push_framings.includes(FRAMES_NAME) ? 'frames' : 'json';
      }
      if (status < 500 && status !== 429) throw new Fatal(`device ${d.id}: GET /v1/protocol answered ${status}: ${text.slice(0, 200)}`);
    } catch (e) {
      if (e instanceof Fatal) throw e;
      if (!recorded) lat.record(PROTOCOL, performance.now() - t, null);
    }
    tally.retries++;
    await backoff(attempt, undefined);
  }
}

export interface PullTally {
  devices: number;
  bytes: number;
  /** bytes that came through the KB replicas (index, blob stream, URL answers) */
  bytesViaReplicas: number;
  /** bytes fetched from the object store directly */
  bytesViaObjectStore: number;
  retries: number;
  failures: string[];
}

export interface PullPlan {
  publicKeyPem: string;
  mode: 'stream' | 'presigned';
  concurrency: number;
  deadline: number;
}

/** A GET through the device's connection (retried like a push); the body is consumed by eat. */
async function getWithRetry(d: FleetDevice, path: string, endpoint: string, lat: Latencies, tally: PullTally, deadline: number, eat: (res: Dispatcher.ResponseData) => Promise<void>, dispatcher?: Dispatcher, origin?: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    if (Date.now() > deadline) throw new Fatal(`device ${d.id}: bench deadline reached during ${endpoint}`);
    const t = performance.now();
    let status: number | null = null;
    let recorded = false;
    let retryAfter: string | string[] | undefined;
    try {
      const res = dispatcher
        ? await dispatcher.request({ origin: origin!, method: 'GET', path })
        : await d.client!.request({ method: 'GET', path, headers: { authorization: `Bearer ${d.token}` } });
      status = res.statusCode;
      retryAfter = res.headers['retry-after'];
      if (status === 200) {
        await eat(res);
        lat.record(endpoint, performance.now() - t, status);
        return;
      }
      const text = await res.body.text();
      lat.record(endpoint, performance.now() - t, status);
      recorded = true;
      if (status < 500 && status !== 429) throw new Fatal(`device ${d.id}: ${endpoint} answered ${status}: ${text.slice(0, 200)}`);
    } catch (e) {
      if (e instanceof Fatal) throw e;
      if (!recorded) lat.record(endpoint, performance.now() - t, null);
    }
    tally.retries++;
    await backoff(attempt, retryAfter);
  }
}

async function readAll(res: Dispatcher.ResponseData): Promise<Buffer> {
  return Buffer.from(await res.body.arrayBuffer());
}

/** Stream a body through sha256; throws unless size and hash match. */
async function verifyStream(res: Dispatcher.ResponseData, sha: string, size: number, what: string): Promise<number> {
  const h = createHash('sha256');
  let n = 0;
  for await (const c of res.body) {
    h.update(c as Buffer);
    n += (c as Buffer).length;
  }
  const got = h.digest('hex');
  if (n !== size || got !== sha) throw new Fatal(`${what}: got ${n} bytes sha256 ${got.slice(0, 12)}, expected ${size} bytes ${sha.slice(0, 12)}`);
  return n;
}

/** Every device: GET the signed index (verify it), then the first task's model blob. */
export async function pullFleet(devices: FleetDevice[], plan: PullPlan, lat: Latencies, tally: PullTally): Promise<void> {
  const { Agent } = await import('undici');
  const objectStore = new Agent({ connections: plan.concurrency, keepAliveTimeout: 60_000, bodyTimeout: 300_000, headersTimeout: 300_000 });
  let next = 0;
  const worker = async () => {
    for (;;) {
      const d = devices[next++];
      if (!d) return;
      try {
        let model: { sha256: string; size: number } | null = null;
        await getWithRetry(d, '/v1/index?since=0', INDEX, lat, tally, plan.deadline, async (res) => {
          const bytes = await readAll(res);
          tally.bytesViaReplicas += bytes.length;
          const sig = res.headers[SIGNATURE_HEADER];
          if (typeof sig !== 'string' || !verifyBytes(bytes, sig, plan.publicKeyPem)) throw new Fatal(`device ${d.id}: index signature does not verify`);
          const idx = JSON.parse(bytes.toString('utf8')) as { tasks: { model: { sha256: string; size: number } }[] };
          model = idx.tasks[0]?.model ?? null;
        });
        if (!model) throw new Fatal(`device ${d.id}: the index lists no model`);
        const m = model as { sha256: string; size: number };
        if (plan.mode === 'stream') {
          await getWithRetry(d, `/v1/blobs/${m.sha256}`, BLOB, lat, tally, plan.deadline, async (res) => {
            // awaited first: `x += await y` reads x before the await and loses concurrent updates
            const n = await verifyStream(res, m.sha256, m.size, `device ${d.id} blob`);
            tally.bytesViaReplicas += n;
          });
        } else {
          let url = '';
          await getWithRetry(d, `/v1/blobs/${m.sha256}/url`, URL_EP, lat, tally, plan.deadline, async (res) => {
            const bytes = await readAll(res);
            tally.bytesViaReplicas += bytes.length;
            url = (JSON.parse(bytes.toString('utf8')) as { url: string }).url;
          });
          const u = new URL(url);
          // no bearer token to the object store: the URL's signature is the authorisation
          await getWithRetry(d, u.pathname + u.search, S3_GET, lat, tally, plan.deadline, async (res) => {
            const n = await verifyStream(res, m.sha256, m.size, `device ${d.id} presigned blob`);
            tally.bytesViaObjectStore += n;
          }, objectStore, u.origin);
        }
        tally.devices++;
        tally.bytes += m.size;
      } catch (e) {
        tally.failures.push((e as Error).message);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(plan.concurrency, devices.length) }, worker));
  } finally {
    await objectStore.close();
  }
}
