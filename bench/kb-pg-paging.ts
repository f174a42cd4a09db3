// npm run bench:kb-pg-paging: what an ascending listSamples pager costs concurrent pushes on the
// PostgreSQL store (a throw-away cluster, test/helpers/postgres.ts). Phases, same run, same data:
//   alone   W pushers (own pool each, as kb serve replicas), B batches of S samples each
//   paged   the same while one reader pages listSamples({after, limit: 1000}) ascending in a loop
// Reported: push batches/s and push latency p50/p99 of each phase; the ratio paged/alone (1.0:
// the pager costs pushes nothing). BENCH_PG_STORE: another PgKbStore module to compare (e.g. the
// previous version's file copied next to pg-store.ts). BENCH_RUNS (3). Output: bench/out/kb-pg-paging.json.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { FsBlobStore } from '../src/kb/blob-store.js';
import type { KbStore, NewSample } from '../src/kb/store.js';
import { ROOT, tempDir } from '../test/helpers/cli.js';
import { startPostgres } from '../test/helpers/postgres.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const W = 4;
const B = 60;
const S = 64;
const modPath = process.env.BENCH_PG_STORE ? pathToFileURL(resolve(process.env.BENCH_PG_STORE)).href : '../src/kb/pg-store.js';
const { PgKbStore } = (await import(modPath)) as typeof import('../src/kb/pg-store.js');

let n = 0;
function batch(): NewSample[] {
  return Array.from({ length: S }, () => {
    const payload = randomBytes(256);
    return { id: `b-${process.pid}-${++n}`, task: 't', attrs: {}, payload_kind: 'f32', payload, payload_sha: createHash('sha256').update(payload).digest('hex'), pred_label: null, scores: [], hard: false, hard_reasons: [], unseen: false, unseen_reason: null, kb_version: null, created_at: 1 };
  });
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

async function phase(pushers: KbStore[], reader: KbStore | null): Promise<{ batches_per_s: number; p50_ms: number; p99_ms: number; pages: number }> {
  let done = false;
  let pages = 0;
  const paging = (async () => {
    if (!reader) return;
    let after = 0;
    while (!done) {
      const page = await reader.listSamples({ after, limit: 1000 });
      pages++;
      after = page.length ? page[page.length - 1].seq : 0;
    }
  })();
  const lat: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    pushers.map(async (st) => {
      for (let i = 0; i < B; i++) {
        const b = batch();
        const t = performance.now();
        await st.putSamples('dev-bench', b);
        lat.push(performance.now() - t);
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  done = true;
  await paging;
  return { batches_per_s: (W * B) / secs, p50_ms: pct(lat, 50), p99_ms: pct(lat, 99), pages };
}

const pg = await startPostgres();
const t = tempDir('sedna-ll-bench-pg-');
const out: Record<string, unknown>[] = [];
try {
  for (let r = 0; r < RUNS; r++) {
    const url = await pg.createDatabase();
    const open = () => PgKbStore.open({ url, blobs: new FsBlobStore(join(t.dir, 'blobs'), join(t.dir, 'tmp')), poolSize: 2 });
    const pushers = await Promise.all(Array.from({ length: W }, open));
    const reader = await open();
    const alone = await phase(pushers, null);
    const paged = await phase(pushers, reader);
    const row = { run: r + 1, alone, paged, ratio: paged.batches_per_s / alone.batches_per_s };
    out.push(row);
    process.stdout.write(`run ${r + 1}: alone ${alone.batches_per_s.toFixed(1)} batches/s (p50 ${alone.p50_ms.toFixed(1)} ms, p99 ${alone.p99_ms.toFixed(1)} ms); with pager ${paged.batches_per_s.toFixed(1)} batches/s (p50 ${paged.p50_ms.toFixed(1)} ms, p99 ${paged.p99_ms.toFixed(1)} ms, ${paged.pages} pages); ratio ${row.ratio.toFixed(2)}\n`);
    for (const s of [...pushers, reader]) await s.close();
  }
} finally {
  await pg.stop();
  t.cleanup();
}
const med = (k: (x: (typeof out)[number]) => number) => pct(out.map(k), 50);
const summary = { store: modPath, runs: out, median_ratio: med((x) => x.ratio as number), median_alone_p99_ms: med((x) => (x.alone as { p99_ms: number }).p99_ms), median_paged_p99_ms: med((x) => (x.paged as { p99_ms: number }).p99_ms), loadavg: loadavg() };
process.stdout.write(`median ratio paged/alone ${summary.median_ratio.toFixed(2)}; p99 alone ${summary.median_alone_p99_ms.toFixed(1)} ms, with pager ${summary.median_paged_p99_ms.toFixed(1)} ms; load ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
mkdirSync(join(ROOT, 'bench', 'out'), { recursive: true });
writeFileSync(join(ROOT, 'bench', 'out', `kb-pg-paging${process.env.BENCH_PG_STORE ? '-alt' : ''}.json`), JSON.stringify(summary, null, 2));
