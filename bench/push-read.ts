// npm run bench:push-read: the push's outbox reading alone, in one process (no HTTP, no marking):
// PushReader.framesBody + pendingAfter over a seeded edge.db of N x 3 KB samples, in frames
// batches as push sends them (BATCH_DEFAULTS.frames), wall and CPU per pass. bench:sync measures
// the whole `sync --push-only`; this one isolates the reader, so a change to it can be measured
// against the one before on a shared machine:
//   BENCH_READER_A=/path/to/other/src/sync/outbox-reader.ts  passes alternate between that reader
//   (A) and this tree's (B); both must write the same bytes (sha256 of every body, checked).
// BENCH_RUNS (9 passes each), BENCH_PUSH_READ_SAMPLES (50 000). Prints medians and load.
import { createHash } from 'node:crypto';
import { loadavg } from 'node:os';
import { openEdgeDb } from '../src/store/db.js';
import { homePaths } from '../src/store/home.js';
import { BATCH_DEFAULTS } from '../src/sync/push.js';
import * as here from '../src/sync/outbox-reader.js';
import { generateSigningKeys } from '../src/format/signature.js';
import { makeEdge, seedOutbox } from '../test/helpers/sync-edge.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 9);
const N = Number(process.env.BENCH_PUSH_READ_SAMPLES ?? 50_000);
type Reader = typeof here;
const readers: [string, Reader][] = [['B', here]];
if (process.env.BENCH_READER_A) readers.unshift(['A', (await import(process.env.BENCH_READER_A)) as Reader]);

const { publicKey } = generateSigningKeys();
const edge = makeEdge({ url: 'http://127.0.0.1:9', deviceToken: 'x'.repeat(20), publicKeyPem: publicKey }, { maxOutboxMb: 8192 });
try {
  process.stderr.write(`seeding ${N} x 3072 B samples\n`);
  seedOutbox(edge.home, N, 3072, { seed: 42, chunk: 2000 });
  const db = openEdgeDb(homePaths(edge.home).db);
  db.pragma('wal_checkpoint(TRUNCATE)');
  // inline payloads only (the seeded outbox has no blobs): the page query carries every payload
  const outbox = { readPayload: (r: { payload: Buffer | null }) => r.payload! };
  const { size, bytes } = BATCH_DEFAULTS.frames;

  const pass = (M: Reader, hash: boolean) => {
    const reader = new M.PushReader(db, outbox, 'frames');
    const h = hash ? createHash('sha256') : null;
    let cursor = '';
    let n = 0;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    while (reader.pendingAfter(cursor)) {
      const sent = M.newFramesSent();
      for (const chunk of reader.framesBody(cursor, null, size, bytes, () => true, sent)) h?.update(chunk);
      n += sent.ids.length;
      cursor = sent.end!;
    }
    const cpu = process.cpuUsage(c0);
    if (n !== N) throw new Error(`read ${n} of ${N} samples`);
    return { ms: performance.now() - t0, cpuMs: (cpu.user + cpu.system) / 1000, sha: h?.digest('hex') ?? '' };
  };

  const shas = readers.map(([, M]) => pass(M, true).sha);
  if (new Set(shas).size !== 1) throw new Error(`the readers wrote different bytes: ${shas.join(' vs ')}`);
  const load = loadavg()[0];
  const times = new Map(readers.map(([k]) => [k, { ms: [] as number[], cpu: [] as number[] }]));
  for (let i = 0; i < RUNS; i++) {
    for (const [k, M] of i % 2 ? [...readers].reverse() : readers) {
      const r = pass(M, false);
      times.get(k)!.ms.push(r.ms);
      times.get(k)!.cpu.push(r.cpuMs);
    }
  }
  db.close();
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  for (const [k, t] of times) {
    console.log(`${k}: wall ${median(t.ms).toFixed(0)} ms, CPU ${median(t.cpu).toFixed(0)} ms (medians of ${RUNS}; wall ${t.ms.map((x) => x.toFixed(0)).join(' ')})`);
  }
  console.log(`${N} samples, bodies sha256 ${shas[0].slice(0, 16)}, load ${load.toFixed(2)} -> ${loadavg()[0].toFixed(2)}`);
} finally {
  edge.cleanup();
}
