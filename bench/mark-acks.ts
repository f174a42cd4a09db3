// Marking acked samples uploaded, alone: N x SIZE samples seeded into a real edge outbox (real
// logBatch), then marked the way a push marks them (MARK_EVERY per transaction, synchronous
// NORMAL, wal_autocheckpoint 16384, rows read first as the push reader reads them). Each variant
// runs on a fresh copy of the same template, interleaved, BENCH_RUNS rounds; medians printed.
//   node --import tsx bench/mark-acks.ts            (BENCH_N=50000 BENCH_RUNS=5)
// Variants beyond 'current' change the schema or the statement only to see where the time goes.
// 'current' then also times serve's write path (logBatch, 16 per batch, synchronous NORMAL)
// into the marked outbox at its quota (each batch evicts); compare it with an older build's
// (its eviction statements need its own indexes).
import { copyFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { openEdgeDb, type DB } from '../src/store/db.js';
import { homePaths, loadConfig } from '../src/store/home.js';
import { type AckedRow, type LogRecord, Outbox } from '../src/store/outbox.js';
import { logRecord } from '../test/helpers/log-record.js';
import { tempDir } from '../test/helpers/cli.js';
import { makeEdge, seedOutbox } from '../test/helpers/sync-edge.js';
import { generateSigningKeys } from '../src/format/signature.js';

const N = Number(process.env.BENCH_N ?? 50_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const MARK_EVERY = 8192;
const ONLY = process.env.BENCH_VARIANTS?.split(',');

type Variant = { name: string; setup?: (db: DB) => void; mark: (db: DB, ob: Outbox, rows: AckedRow[]) => void; log?: boolean; tpl?: 'new' | 'old' };

const LOG_BATCHES = 200;
const LOG_BATCH = 16;
/** distinct 3 KB samples for logging batch b of run `run` */
function logRecs(run: number, b: number): LogRecord[] {
  return Array.from({ length: LOG_BATCH }, (_, i) => {
    const p = Buffer.alloc(3072, 0);
    p.writeUInt32LE(run, 0);
    p.writeUInt32LE(b, 4);
    p.writeUInt32LE(i, 8);
    return logRecord(p, { hardness: ((b * LOG_BATCH + i) % 97) / 97 });
  });
}

function chunks<T>(xs: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

function perRow(sql: string, args: (r: AckedRow, now: number) => unknown[]) {
  return (db: DB, _ob: Outbox, rows: AckedRow[]) => {
    const st = db.prepare(sql);
    for (const c of chunks(rows, MARK_EVERY)) {
      db.transaction(() => {
        const now = Date.now();
        for (const r of c) st.run(...args(r, now));
      }).immediate();
    }
  };
}

const cur = (_db: DB, ob: Outbox, rows: AckedRow[]) => chunks(rows, MARK_EVERY).forEach((c) => ob.markUploadedRows(c));
// schema 5's indexes, put in place before the outbox is seeded: grown by the same inserts as
// the current ones (an index built at once by CREATE INDEX is packed tighter and marks faster)
const OLD_INDEX = `DROP INDEX samples_time_id; DROP INDEX samples_rejected; DROP INDEX samples_pending_time; CREATE INDEX samples_state_time ON samples (state, created_at);
  DROP INDEX samples_evict_done; DROP INDEX samples_evict_value;
  CREATE INDEX samples_evict ON samples ((state = 'pending' OR label_state IS 'pending'), (label IS NOT NULL), hardness, created_at)`;
/**
 * CPU medians of 7, load ~4 (wall time is noisy on the shared machine): before-migration-6
 * 339 ms, current 224 ms, no-evict-index ~150 ms, no-state-index ~136 ms (the rows alone).
 * Tried, no gain: 65536 per transaction, cache_size 16/64/256 MB, not writing uploaded_at, the
 * old samples_evict split into two partial indexes (pending / not: still a delete and an insert
 * per ack); marking in eviction order instead of rowid order: 484 ms.
 */
const variants: Variant[] = [
  // what a push marks with on this build
  { name: 'current', mark: cur, log: true },
  // schema 5's indexes: each ack moved its entry in both (state, created_at) and samples_evict
  { name: 'before-migration-6', tpl: 'old', mark: cur },
  // schema 6: without samples_time_id (created_at, id) and samples_rejected, which no ack
  // touches; logging into the full outbox adds (and its eviction removes) one samples_time_id
  // entry per sample
  { name: 'before-migration-7', setup: (db) => db.exec('DROP INDEX samples_time_id; DROP INDEX samples_rejected'), mark: cur, log: true },
  // where the rest goes: without samples_evict_done; without any index on the upload state
  { name: 'no-evict-index', setup: (db) => db.exec('DROP INDEX samples_evict_done'), mark: cur },
  { name: 'no-state-index', setup: (db) => db.exec('DROP INDEX samples_evict_done; DROP INDEX samples_pending_time'), mark: cur },
  // one UPDATE per row, without writing uploaded_at
  { name: 'no-uploaded_at', mark: perRow(`UPDATE samples SET state = 'uploaded' WHERE rowid = ? AND id = ? AND state = 'pending'`, (r) => [r.rowid, r.id]) },
];

function main(): void {
  const t = tempDir('sedna-ll-markbench-');
  try {
    const { publicKey } = generateSigningKeys();
    const tpl = { new: join(t.dir, 'template-new.db'), old: join(t.dir, 'template-old.db') };
    let e: ReturnType<typeof makeEdge> | null = null;
    for (const which of ['new', 'old'] as const) {
      e?.cleanup();
      e = makeEdge({ url: 'http://127.0.0.1:9', deviceToken: 'x'.repeat(20), publicKeyPem: publicKey }, { maxOutboxMb: 8192 });
      const db0 = openEdgeDb(homePaths(e.home).db);
      if (which === 'old') db0.exec(OLD_INDEX);
      db0.close();
      seedOutbox(e.home, N, 3072, { seed: 42, chunk: 2000 });
      const db = openEdgeDb(homePaths(e.home).db);
      db.pragma('wal_checkpoint(TRUNCATE)');
      db.close();
      copyFileSync(homePaths(e.home).db, tpl[which]);
    }
    const paths = homePaths(e!.home);
    const cfg = loadConfig(e!.home);
    const res = new Map<string, number[]>();
    for (let run = 0; run < RUNS; run++) {
      // BENCH_VARIANTS also sets the order within a round (a variant's place in it moves its times)
      for (const v of ONLY ? ONLY.map((n) => variants.find((x) => x.name === n)!) : variants) {
        rmSync(paths.db + '-wal', { force: true });
        rmSync(paths.db + '-shm', { force: true });
        copyFileSync(tpl[v.tpl ?? 'new'], paths.db);
        const db = openEdgeDb(paths.db);
        v.setup?.(db);
        db.pragma('synchronous = NORMAL');
        db.pragma('wal_autocheckpoint = 16384');
        const ob = new Outbox(db, paths, cfg);
        // what the push reader sees (and what brings the table's pages into the cache)
        const rows = db.prepare(`SELECT rowid, id, label FROM samples WHERE state = 'pending' ORDER BY created_at, rowid`).all() as AckedRow[];
        const t0 = performance.now();
        const c0 = process.cpuUsage();
        v.mark(db, ob, rows);
        const ms = performance.now() - t0;
        const cpu = process.cpuUsage(c0);
        const cpuMs = (cpu.user + cpu.system) / 1000;
        (res.get(`${v.name} cpu`) ?? res.set(`${v.name} cpu`, []).get(`${v.name} cpu`)!).push(cpuMs);
        const left = db.prepare(`SELECT COUNT(*) FROM samples WHERE state = 'pending'`).pluck().get() as number;
        if (left !== 0) throw new Error(`${v.name}: ${left} left pending`);
        (res.get(v.name) ?? res.set(v.name, []).get(v.name)!).push(ms);
        let line = `run ${run + 1} ${v.name}: marking ${ms.toFixed(0)} ms (CPU ${cpuMs.toFixed(0)} ms)`;
        if (v.log) {
          // serve's write path on the marked outbox, full: every batch evicts uploaded rows
          const full = new Outbox(db, paths, { outbox: { max_mb: ob.trackedBytes() / (1 << 20) } });
          const t1 = performance.now();
          for (let b = 0; b < LOG_BATCHES; b++) full.logBatch(logRecs(run, b));
          const logMs = performance.now() - t1;
          (res.get(`${v.name} log`) ?? res.set(`${v.name} log`, []).get(`${v.name} log`)!).push(logMs);
          line += `, logging ${LOG_BATCHES} x ${LOG_BATCH} over quota ${logMs.toFixed(0)} ms`;
        }
        db.close();
        console.error(line);
      }
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    for (const [k, xs] of res) console.log(`${k.padEnd(28)} median ${med(xs).toFixed(0)} ms  (${xs.map((x) => x.toFixed(0)).join(' ')})`);
    e!.cleanup();
  } finally {
    t.cleanup();
  }
}

main();
