// The push's outbox reader in a worker thread (see frames-source.ts): answers each FramesRequest
// with the body's chunks (ArrayBuffers transferred, not copied) and then what the body sent.
// Its connection is read-only: the main thread marks the acks.
import { parentPort, workerData } from 'node:worker_threads';
import { ContentDir } from '../durable/content-dir.js';
import { openEdgeDb } from '../store/db.js';
import { type FramesReply, type FramesRequest, type FramesWorkerData, uploadAllows } from './frames-source.js';
import { PushReader, newFramesSent } from './outbox-reader.js';

const data = workerData as FramesWorkerData;
const port = parentPort!;
const db = openEdgeDb(data.dbPath, { readonly: true });
const files = new ContentDir(data.blobsDir, data.tmpDir);
// a payload not in the page's row lives in blobs/<sha> (what Outbox.readPayload does)
const reader = new PushReader(db, { readPayload: (r) => r.payload ?? files.read(r.payload_sha) }, 'frames', data.lastRowid);
const allowed = (task: string) => uploadAllows(data.upload, task);
/** chunks at least this big go over transferred; smaller ones (and shared constants) are copied */
const TRANSFER_MIN = 16 * 1024;

port.postMessage({ id: 0, ready: true } satisfies FramesReply);

port.on('message', (q: FramesRequest) => {
  const sent = newFramesSent();
  try {
    for (const chunk of reader.framesBody(q.after, q.until, q.limit, q.maxBytes, allowed, sent)) {
      // a chunk that owns its whole ArrayBuffer (each page's, allocated for it) is moved;
      // anything else (FRAMES_END, shared) is copied so this thread's constants stay intact
      const own = chunk.byteLength >= TRANSFER_MIN && chunk.byteOffset === 0 && chunk.buffer.byteLength === chunk.byteLength;
      const u8 = own ? new Uint8Array(chunk.buffer) : new Uint8Array(chunk);
      port.postMessage({ id: q.id, chunk: u8 } satisfies FramesReply, own ? [u8.buffer as ArrayBuffer] : []);
    }
    port.postMessage({ id: q.id, done: sent } satisfies FramesReply);
  } catch (e) {
    port.postMessage({ id: q.id, error: (e as Error).message } satisfies FramesReply);
  }
});
