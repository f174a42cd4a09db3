// The outbox's read commands on a big edge outbox, whole processes, this build (B) against
// another checkout's build (A, BENCH_A=<its root>, built with `npm run build`), interleaved.
//   BENCH_A=/path/to/old/checkout npm run bench:export
// One outbox of BENCH_N samples (default 300 000; BENCH_SIZE payload bytes each, default 256:
// 64 float32 features) over 3 tasks, logged through the real Outbox.logBatch (BENCH_BATCH per
// transaction, one created_at per batch), the oldest third marked uploaded by
// Outbox.markUploadedRows as a push marks them. A reads it at schema 6 (no samples_time_id),
// B after this build's migrations ran on a copy (the migration's time is printed): what an
// upgraded edge has. Each case runs A then B (then B then A) BENCH_RUNS times; wall, CPU and
// peak RSS from /usr/bin/time; medians printed with the load average. Every export's stdout is
// hashed: A and B must write the same bytes (same rows, same order), or the bench fails.
// BENCH_CASES=export,export-uploaded,... picks cases; BENCH_A_SKIP=export,... runs those on B only
// (the old unfiltered export is quadratic: minutes at 1M rows).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, rmSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { openEdgeDb } from '../src/store/db.js';
import { MIGRATIONS } from '../src/store/schema.js';
import { homePaths, loadConfig } from '../src/store/home.js';
import { type AckedRow, Outbox } from '../src/store/outbox.js';
import { ROOT, tempDir } from '../test/helpers/cli.js';
import { makeEdge, seedOutbox } from '../test/helpers/sync-edge.js';
import { generateSigningKeys } from '../src/format/signature.js';

const N = Number(process.env.BENCH_N ?? 300_000);
const SIZE = Number(process.env.BENCH_SIZE ?? 256);
const BATCH = Number(process.env.BENCH_BATCH ?? 200);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const A_ROOT = process.env.BENCH_A;
const A_SKIP = new Set(process.env.BENCH_A_SKIP?.split(',') ?? []);
const ONLY = process.env.BENCH_CASES?.split(',');

const CASES: { name: string; args: string[]; hash?: boolean }[] = [
  { name: 'export', args: ['samples', 'export'], hash: true },
  { name: 'export-uploaded', args: ['samples', 'export', '--state', 'uploaded'], hash: true },
  { name: 'export-pending', args: ['samples', 'export', '--state', 'pending'], hash: true },
  { name: 'export-task', args: ['samples', 'export', '--task', 'b'], hash: true },
  { name: 'ls-uploaded', args: ['samples', 'ls', '--state', 'uploaded', '--json'], hash: true },
  { name: 'ls-task', args: ['samples', 'ls', '--task', 'b', '--json'], hash: true },
  { name: 'ls', args: ['samples', 'ls', '--json'], hash: true },
  { name: 'stats', args: ['samples', 'stats', '--json'], hash: true },
  { name: 'status', args: ['status', '--json'] },
];

interface Run {
  wallMs: number;
  cpuMs: number;
  rssMb: number;
  sha: string;
  bytes: number;
}

/** One whole process: wall/CPU/RSS from /usr/bin/time (on stderr's last line), stdout hashed. */
function runCli(root: string, home: string, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn('/usr/bin/time', ['-f', 'TIME %e %U %S %M', process.execPath, join(root, 'bin', 'sedna-ll'), ...args], {
      env: { ...process.env, SEDNA_LL_HOME: home, ORT_DISABLE_TELEMETRY: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const h = createHash('sha256');
    let bytes = 0;
    let err = '';
    // a JSON record (small) is compared without its run time; export lines are hashed as they come
    const record = args.includes('--json');
    let text = '';
    p.stdout.on('data', (c: Buffer) => {
      if (record) text += c.toString();
      else h.update(c);
      bytes += c.length;
    });
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    p.on('error', reject);
    p.on('close', (code) => {
      const m = /TIME (\S+) (\S+) (\S+) (\d+)\s*$/.exec(err);
      if (code !== 0 || !m) return reject(new Error(`${args.join(' ')} (${root}): exit ${code}: ${err.slice(-500)}`));
      if (record) h.update(text.replace(/"time":"[^"]*"/, ''));
      resolve({ wallMs: Number(m[1]) * 1000, cpuMs: (Number(m[2]) + Number(m[3])) * 1000, rssMb: Number(m[4]) / 1024, sha: h.digest('hex'), bytes });
    });
  });
}

/** The seeded outbox: N samples over 3 tasks, the oldest third marked uploaded. */
function seed(home: string): void {
  const t0 = performance.now();
  seedOutbox(home, N, SIZE, { seed: 42, chunk: BATCH, tasks: ['a', 'b', 'c'] });
  const paths = homePaths(home);
  const db = openEdgeDb(paths.db);
  try {
    const ob = new Outbox(db, paths, loadConfig(home));
    const rows = db.prepare(`SELECT rowid, id, label FROM samples WHERE state = 'pending' ORDER BY created_at, rowid LIMIT ?`).all(Math.floor(N / 3)) as AckedRow[];
    for (let i = 0; i < rows.length; i += 8192) ob.markUploadedRows(rows.slice(i, i + 8192));
    db.pragma('wal_checkpoint(TRUNCATE)');
  } finally {
    db.close();
  }
  console.error(`seeded ${N} x ${SIZE} B in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}

const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  if (A_ROOT && !existsSync(join(A_ROOT, 'dist', 'cli.js'))) throw new Error(`BENCH_A=${A_ROOT}: no dist/cli.js there (npm run build in it first)`);
  const t = tempDir('sedna-ll-exportbench-');
  const { publicKey } = generateSigningKeys();
  const e = makeEdge({ url: 'http://127.0.0.1:9', deviceToken: 'x'.repeat(20), publicKeyPem: publicKey }, { maxOutboxMb: 1 << 20 });
  try {
    seed(e.home);
    const db = homePaths(e.home).db;
    // A's outbox: schema 6, as the last landing left it (the inserts grew this build's indexes;
    // dropping one leaves the table's pages as they are)
    const homeA = join(t.dir, 'a');
    const homeB = join(t.dir, 'b');
    // the home minus edge.db and its WAL files (config, token, dirs); the database is copied apart
    const copyHome = (to: string) => cpSync(e.home, to, { recursive: true, filter: (src: string) => !src.startsWith(db) });
    copyHome(homeA);
    copyFileSync(db, homePaths(homeA).db);
    {
      const d = openEdgeDb(homePaths(homeA).db);
      if (MIGRATIONS.length !== 7) throw new Error(`bench written for schema 7 (samples_time_id), this build has ${MIGRATIONS.length}`);
      d.exec('DROP INDEX samples_time_id; DROP INDEX samples_rejected');
      d.pragma('user_version = 6');
      d.pragma('wal_checkpoint(TRUNCATE)');
      d.close();
    }
    // B's: the same outbox migrated by this build
    copyHome(homeB);
    copyFileSync(homePaths(homeA).db, homePaths(homeB).db);
    {
      const t0 = performance.now();
      const d = openEdgeDb(homePaths(homeB).db);
      console.error(`migration 6 -> ${MIGRATIONS.length} of ${N} rows: ${(performance.now() - t0).toFixed(0)} ms`);
      d.pragma('wal_checkpoint(TRUNCATE)');
      d.close();
    }
    rmSync(e.home, { recursive: true, force: true });
    const sizes = [homeA, homeB].map((h) => (statSync(homePaths(h).db).size / (1 << 20)).toFixed(1));
    console.error(`edge.db A ${sizes[0]} MB, B ${sizes[1]} MB`);

    const res = new Map<string, Run[]>();
    const push = (k: string, r: Run) => (res.get(k) ?? res.set(k, []).get(k)!).push(r);
    const loads: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      for (const c of CASES) {
        if (ONLY && !ONLY.includes(c.name)) continue;
        const sides: ('A' | 'B')[] = !A_ROOT || A_SKIP.has(c.name) ? ['B'] : run % 2 ? ['B', 'A'] : ['A', 'B'];
        const got: Partial<Record<'A' | 'B', Run>> = {};
        for (const side of sides) {
          loads.push(loadavg()[0]);
          const r = await runCli(side === 'A' ? A_ROOT! : ROOT, side === 'A' ? homeA : homeB, c.args);
          got[side] = r;
          push(`${c.name} ${side}`, r);
          console.error(`run ${run + 1} ${c.name} ${side}: ${r.wallMs.toFixed(0)} ms wall, ${r.cpuMs.toFixed(0)} ms CPU, ${r.rssMb.toFixed(0)} MB RSS, ${r.bytes} B out (load ${loadavg()[0].toFixed(2)})`);
        }
        if (c.hash && got.A && got.B && got.A.sha !== got.B.sha) throw new Error(`${c.name}: A and B wrote different output (${got.A.bytes} vs ${got.B.bytes} bytes)`);
      }
    }
    console.log(`N ${N} x ${SIZE} B, ${RUNS} runs; load average (1 min) at the runs: ${med(loads).toFixed(2)} median, ${Math.min(...loads).toFixed(2)}-${Math.max(...loads).toFixed(2)}; now ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    for (const [k, rs] of res) {
      console.log(
        `${k.padEnd(20)} wall ${med(rs.map((r) => r.wallMs)).toFixed(0).padStart(7)} ms  CPU ${med(rs.map((r) => r.cpuMs)).toFixed(0).padStart(7)} ms  RSS ${med(rs.map((r) => r.rssMb)).toFixed(0)} MB  (wall ${rs.map((r) => r.wallMs.toFixed(0)).join(' ')})`,
      );
    }
  } finally {
    e.cleanup();
    t.cleanup();
  }
}

await main();
