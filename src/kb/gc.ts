// `kb gc`: blobs nothing references any more (models of deleted tasks, payloads of removed
// samples, uploads of failed publishes), found and optionally removed, on either blob backend.
//
// Referenced: the model of every task (retired ones too), every blob a published version lists,
// every sample's payload. Safe beside a running KB: a publish or push writes its blob first and
// references it afterwards, and every write (re-writes of existing content included) renews the
// blob's mtime / LastModified, so a blob younger than the grace period is never removed: it may
// be about to be referenced. References are collected BEFORE the blobs are listed, and each
// candidate is checked against the published versions again right before it is removed.
import type { BlobStore } from './blob-store.js';
import type { ModelStore, SampleStore, VersionStore } from './store.js';

export interface GcResult {
  dry_run: boolean;
  grace_minutes: number;
  /** blobs in the store */
  blobs: number;
  referenced: number;
  /** unreferenced but younger than the grace period: kept */
  young: number;
  orphans: { sha256: string; size: number; age_minutes: number }[];
  orphan_bytes: number;
  deleted: number;
}

export async function collectGarbage(store: ModelStore & SampleStore & VersionStore & { blobs: BlobStore }, opts: { dryRun: boolean; graceMinutes: number; now?: number }): Promise<GcResult> {
  const now = opts.now ?? Date.now();
  const referenced = new Set<string>();
  for (const t of await store.listTasks({ includeRetired: true })) referenced.add(t.model_sha);
  // every sample's payload sha (inline ones too: a superset never removes a referenced blob), in
  // one snapshot read in batches (one cursor, no payload bytes): not a page query per 10 000
  // rows, each of which (PostgreSQL) would wait for the pushes in flight and hold up new ones
  for await (const page of store.scanSamples({}, { batch: 10_000, payloads: false })) {
    for (const s of page) if (s.payload_sha) referenced.add(s.payload_sha);
  }
  const r: GcResult = { dry_run: opts.dryRun, grace_minutes: opts.graceMinutes, blobs: 0, referenced: 0, young: 0, orphans: [], orphan_bytes: 0, deleted: 0 };
  const graceMs = opts.graceMinutes * 60_000;
  for await (const b of store.blobs.list()) {
    r.blobs++;
    if (referenced.has(b.sha256) || (await store.isPublishedBlob(b.sha256))) {
      r.referenced++;
      continue;
    }
    if (now - b.mtimeMs < graceMs) {
      r.young++;
      continue;
    }
    r.orphans.push({ sha256: b.sha256, size: b.size, age_minutes: Math.floor((now - b.mtimeMs) / 60_000) });
    r.orphan_bytes += b.size;
  }
  if (!opts.dryRun) {
    for (const o of r.orphans) {
      if (await store.isPublishedBlob(o.sha256)) continue; // published meanwhile
      await store.blobs.delete(o.sha256);
      r.deleted++;
    }
  }
  return r;
}
