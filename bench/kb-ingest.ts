// npm run bench:kb-ingest: the KB's CPU per 1 000 pushed samples, part by part, in one process
// (no HTTP, no edge on the other core), for the binary frames push (sample-frames.ts ->
// sample-ingest.ts -> SqliteKbStore.putSamples). bench:sync measures the same path end to end
// through `kb serve`; this one says where the CPU goes:
//   decode   readFrames over the body in 64 KiB chunks (socket-sized), records collected
//   checks   + per-record checks (meta JSON, schema, sha256 of the payload, attrs), no store
//   ingest   + the real SQLite store (fresh KB database, WAL, synchronous=FULL)
//   put      the store alone: putSamples of the checked rows, one call per request
//   raw      baseline: raw better-sqlite3 inserting the same rows with the same statement and
//            pragmas, one transaction per request (no checks, no decode)
// Requests of 1 024 samples x 3 KB, as the edge sends them (BATCH_DEFAULTS.frames).
// BENCH_RUNS (3), BENCH_KB_INGEST_SAMPLES (20 000). Output: bench/out/kb-ingest.json.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { assembleFrames, encodeRecordHead, readFrames } from '../src/format/sample-frames.js';
import { kbPaths } from '../src/kb/paths.js';
import { ingestFrames } from '../src/kb/sample-ingest.js';
import { SqliteKbStore } from '../src/kb/sqlite-store.js';
import type { NewSample } from '../src/kb/store.js';
import { ROOT, tempDir } from '../test/helpers/cli.js';

const require = createRequire(import.meta.url);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const N = Number(process.env.BENCH_KB_INGEST_SAMPLES ?? 20_000);
const SIZE = 3072;
const PER_REQUEST = 1024;
const CHUNK = 64 * 1024;
const log = (s: string) => process.stderr.write(s + '\n');
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** the request bodies, each already cut into socket-sized chunks (own buffers, as sockets give them) */
function buildRequests(tag: string): Buffer[][] {
  const reqs: Buffer[][] = [];
  for (let done = 0; done < N; done += PER_REQUEST) {
    const parts: Buffer[] = [];
    let total = 0;
    for (let i = done; i < Math.min(N, done + PER_REQUEST); i++) {
      const f = new Float32Array(SIZE / 4);
      for (let k = 0; k < f.length; k++) f[k] = ((i * 7919 + k * 104729) % 1000) / 1000;
      const payload = Buffer.from(f.buffer);
      const meta =
        `{"task":"global","attrs":{"site":"global"},"payload_kind":"f32","payload_sha":"${createHash('sha256').update(payload).digest('hex')}",` +
        `"pred_label":"${i % 3}","scores":[0.5,0.3,0.2],"hard":true,"hard_reasons":["cross_entropy"],"unseen":false,"unseen_reason":null,"kb_version":null,"created_at":${1_700_000_000_000 + i}}`;
      const head = encodeRecordHead(`${tag}-${String(i).padStart(8, '0')}`, meta, payload.length);
      parts.push(head, payload);
      total += head.length + payload.length;
    }
    const body = assembleFrames(parts, total);
    const chunks: Buffer[] = [];
    for (let at = 0; at < body.length; at += CHUNK) chunks.push(Buffer.from(body.subarray(at, at + CHUNK)));
    reqs.push(chunks);
  }
  return reqs;
}

async function* source(chunks: Buffer[]): AsyncGenerator<Buffer> {
  for (const c of chunks) yield c;
}

/** CPU ms (user + system, all threads) per 1 000 samples of fn */
async function cpuPer1000(fn: () => Promise<void>): Promise<number> {
  const c0 = process.cpuUsage();
  await fn();
  const c = process.cpuUsage(c0);
  return ((c.user + c.system) / 1000 / N) * 1000;
}

function freshStore(dir: string): SqliteKbStore {
  const paths = kbPaths(dir);
  for (const d of [paths.data, paths.blobs, paths.tmp, paths.versions, paths.keys]) mkdirSync(d, { recursive: true });
  return new SqliteKbStore(paths);
}

async function main() {
  const parts = { decode: [] as number[], checks: [] as number[], ingest: [] as number[], put: [] as number[], raw: [] as number[] };
  const load0 = loadavg().map((x) => +x.toFixed(2));
  for (let run = 0; run < RUNS; run++) {
    const reqs = buildRequests(`run${run}`);
    const work = tempDir('sedna-ll-bench-kb-ingest-');
    try {
      let seen = 0;
      parts.decode.push(
        await cpuPer1000(async () => {
          for (const r of reqs) for await (const recs of readFrames(source(r), { maxRecordBytes: 64 << 20 })) seen += recs.length;
        }),
      );
      if (seen !== N) throw new Error(`decode read ${seen} of ${N}`);
      const kept: NewSample[] = [];
      parts.checks.push(
        await cpuPer1000(async () => {
          for (const r of reqs) {
            const res = await ingestFrames(source(r), {
              maxRecordBytes: 64 << 20,
              put: async (s) => {
                for (const x of s) kept.push(x);
                return { stored: s.map((x) => x.id), rejected: [], inserted: s.length, labelled: 0 };
              },
            });
            if (res.rejected.length || res.streamError) throw new Error(`checks: ${JSON.stringify(res.rejected[0] ?? res.streamError)}`);
          }
        }),
      );
      const store = freshStore(join(work.dir, 'kb'));
      let stored = 0;
      parts.ingest.push(
        await cpuPer1000(async () => {
          for (const r of reqs) stored += (await ingestFrames(source(r), { maxRecordBytes: 64 << 20, put: (s) => store.putSamples('edge-1', s) })).stored.length;
        }),
      );
      await store.close();
      if (stored !== N) throw new Error(`ingest stored ${stored} of ${N}`);
      // the store alone: putSamples of the checked rows, one call per request
      const store2 = freshStore(join(work.dir, 'kb2'));
      parts.put.push(
        await cpuPer1000(async () => {
          for (let i = 0; i < kept.length; i += PER_REQUEST) await store2.putSamples('edge-1', kept.slice(i, i + PER_REQUEST));
        }),
      );
      await store2.close();
      // raw better-sqlite3: the KB's schema and pragmas, the same INSERT, the checked rows
      freshStore(join(work.dir, 'raw')).close();
      const Database = require('better-sqlite3');
      const db = new Database(join(work.dir, 'raw', 'kb.db'));
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      const ins = db.prepare(
        `INSERT INTO samples (id, device_id, source, task, attrs, payload_kind, payload, payload_blob, payload_sha, payload_bytes,
           pred_label, scores, hard, hard_reasons, unseen, unseen_reason, kb_version, created_at, received_at, label, label_source, labelled_at, preprocessing)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING`,
      );
      const tx = db.transaction((rows: NewSample[]) => {
        const now = Date.now();
        for (const s of rows)
          ins.run(s.id, 'edge-1', 'edge', s.task, JSON.stringify(s.attrs), s.payload_kind, s.payload, 0, s.payload_sha, s.payload!.length, s.pred_label, JSON.stringify(s.scores), 1, JSON.stringify(s.hard_reasons), 0, null, null, s.created_at, now, null, null, null, null);
      });
      parts.raw.push(
        await cpuPer1000(async () => {
          for (let i = 0; i < kept.length; i += PER_REQUEST) tx.immediate(kept.slice(i, i + PER_REQUEST));
        }),
      );
      db.close();
      log(`  run ${run + 1}: ${Object.entries(parts).map(([k, v]) => `${k} ${v[run].toFixed(1)}`).join(', ')} ms CPU / 1000 samples`);
    } finally {
      work.cleanup();
    }
  }
  const m = (xs: number[]) => +median(xs).toFixed(1);
  const out = {
    runs: RUNS,
    samples: N,
    sample_bytes: SIZE,
    per_request: PER_REQUEST,
    node: process.version,
    loadavg: { start: load0, end: loadavg().map((x) => +x.toFixed(2)) },
    // medians, ms of CPU per 1 000 samples; each part includes the ones before it
    cpu_ms_per_1000: { decode: m(parts.decode), checks: m(parts.checks), ingest: m(parts.ingest), store_put_only: m(parts.put), raw_better_sqlite3: m(parts.raw) },
    // where the CPU of a push goes (ingest = decode + checks + store)
    part_ms_per_1000: { decode: m(parts.decode), checks: +(median(parts.checks) - median(parts.decode)).toFixed(1), store: +(median(parts.ingest) - median(parts.checks)).toFixed(1) },
    ingest_vs_raw_better_sqlite3: +(median(parts.ingest) / median(parts.raw)).toFixed(2),
    store_put_vs_raw_better_sqlite3: +(median(parts.put) / median(parts.raw)).toFixed(2),
  };
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  mkdirSync(join(ROOT, 'bench', 'out'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'out', 'kb-ingest.json'), JSON.stringify(out, null, 2) + '\n');
}

main().catch((e) => {
  process.stderr.write(`bench:kb-ingest: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
