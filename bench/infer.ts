// npm run bench:infer — edge inference performance, one run, ratios against baselines measured
// in the same run (never absolute timings in tests). 784-128-10 MLP with random weights,
// 20k JSONL samples (MNIST-like: 80 % zeros, the rest in (0, 1]) generated in a temp dir.
//  (1) throughput of `sedna-ll infer --no-log` vs a minimal reference pipeline (readline ->
//      JSON.parse -> onnxruntime-node batches of the same size -> JSON lines), both as child
//      processes writing to a file (aim >= 0.9)
//  (2) logging 10 % / 100 % of samples as hard (random filter): time of the logging path (the
//      pipeline's commit() with the real Outbox minus commit() without it, in this process; the
//      whole-run and CLI differences too, for information) vs raw better-sqlite3 inserts of the
//      same rows, BATCH rows per transaction, same schema and pragmas (aim >= 0.7)
//  (3) cold start: `sedna-ll --version` and `sedna-ll infer` on one sample, minus `node -e 0`
//      (aims <= 30 ms, <= 80 ms)
//  (4) peak RSS of infer on the 20k file (/usr/bin/time -f %M; aim <= 150 MB)
//  (5) serve latency for single-sample requests over keep-alive HTTP, Unix socket and TCP, at
//      1, 8 and 64 concurrent clients: p50 / p99 and the server's CPU per request, with a
//      minimal node:http server as the floor, all loaded by the same generator
//      (bench/lib/http-load.ts; BENCH_PARTS=serve runs only this part)
// Medians of several runs; a table on stdout; JSON in bench/out/infer.json.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { INDEX_FORMAT, type HardFilterConfig, type TaskIndex, type UnseenConfig } from '../src/format/index-manifest.js';
import { writeDenseOnnx, type DenseLayer } from '../src/onnx/writer.js';
import { mulberry32 } from '../src/random.js';
import { openEdgeDb } from '../src/store/db.js';
import { homePaths } from '../src/store/home.js';
import { initHome } from '../src/store/init-home.js';
import { uuidv7 } from '../src/store/uuid7.js';
import { activateVersion, installVersion } from '../src/store/versions.js';

const ROOT = resolve(import.meta.dirname, '..');
// Run a snapshot of the build (bin + dist + package.json under .tmp/, so node_modules still
// resolves): a rebuild of dist/ while the bench runs must not change what it measures.
const SNAP = join(ROOT, '.tmp', `bench-infer-${process.pid}`);
cpSync(join(ROOT, 'dist'), join(SNAP, 'dist'), { recursive: true });
cpSync(join(ROOT, 'bin'), join(SNAP, 'bin'), { recursive: true });
cpSync(join(ROOT, 'package.json'), join(SNAP, 'package.json'));
const BIN = join(SNAP, 'bin', 'sedna-ll');
const N = Number(process.env.BENCH_SAMPLES ?? 20_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
/** parts to run: throughput,logging,cold,rss,serve (all by default) */
const PARTS = (process.env.BENCH_PARTS ?? 'throughput,logging,cold,rss,serve').split(',');
const BATCH = 256;
const D = 784;

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const pct = (a: number[], p: number) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

const work = mkdtempSync(join(tmpdir(), 'sedna-ll-bench-infer-'));
process.on('exit', () => {
  rmSync(work, { recursive: true, force: true });
  rmSync(SNAP, { recursive: true, force: true });
  rmSync(`${SNAP}-b`, { recursive: true, force: true }); // BENCH_SERVE_B's snapshot
});

// ---- model and data -------------------------------------------------------------------------
const rand = mulberry32(42);
const layer = (i: number, o: number, scale: number): DenseLayer => ({
  inDim: i,
  outDim: o,
  W: Float32Array.from({ length: i * o }, () => (rand() - 0.5) * scale),
  b: Float32Array.from({ length: o }, () => (rand() - 0.5) * 0.1),
});
const modelBytes = writeDenseOnnx({ layers: [layer(D, 128, 0.2), layer(128, 10, 0.5)] });
const modelPath = join(work, 'mlp.onnx');
writeFileSync(modelPath, modelBytes);
const sha = createHash('sha256').update(modelBytes).digest('hex');

const dataPath = join(work, 'samples.jsonl');
{
  const fd = openSync(dataPath, 'w');
  let chunk = '';
  for (let i = 0; i < N; i++) {
    const x: number[] = new Array(D);
    for (let j = 0; j < D; j++) x[j] = rand() < 0.8 ? 0 : Math.round(rand() * 100) / 100;
    chunk += `{"id":${i},"x":[${x.join(',')}]}\n`;
    if (chunk.length > 1 << 20) {
      writeFileSync(fd, chunk);
      chunk = '';
    }
  }
  writeFileSync(fd, chunk);
  closeSync(fd);
}
const onePath = join(work, 'one.jsonl');
writeFileSync(onePath, `{"id":0,"x":[${Array.from({ length: D }, (_, j) => (j % 7) / 10).join(',')}]}\n`);

// ---- homes ----------------------------------------------------------------------------------
function makeHome(name: string, hard: HardFilterConfig[], unseen: UnseenConfig): string {
  const home = join(work, name);
  rmSync(home, { recursive: true, force: true });
  initHome({ home, deviceId: 'bench' });
  const index: TaskIndex = {
    format: INDEX_FORMAT,
    version: 1,
    created_at: new Date().toISOString(),
    parent: null,
    origin: 'local',
    tasks: [
      {
        id: 'global',
        attrs: {},
        model: {
          sha256: sha,
          file: `models/${sha}.onnx`,
          size: modelBytes.length,
          inputs: [{ name: 'input', shape: ['N', D], dtype: 'float32' }],
          outputs: [{ name: 'probabilities', shape: ['N', 10], dtype: 'float32' }],
          labels: Array.from({ length: 10 }, (_, i) => String(i)),
          preprocessing: { kind: 'vector' },
          output_kind: 'probabilities',
        },
      },
    ],
    allocation: { method: 'attr+centroid', attr_keys: ['site'], space: 'input', fallback: 'global' },
    unseen,
    hard_examples: hard,
  };
  const paths = homePaths(home);
  const db = openEdgeDb(paths.db);
  try {
    activateVersion(db, installVersion(paths, db, { indexBytes: Buffer.from(JSON.stringify(index)), sig: null, origin: 'local', modelPath: () => modelPath }));
  } finally {
    db.close();
  }
  return home;
}
const DEFAULT_UNSEEN: UnseenConfig = { methods: ['attr', 'confidence'], combine: 'any', confidence: 0.5 };
const NO_UNSEEN: UnseenConfig = { methods: [], combine: 'any' };
const random = (ratio: number): HardFilterConfig[] => [{ type: 'random', ratio }];

// ---- child-process timing -------------------------------------------------------------------
// Wall time, and CPU time (user + sys of all threads, from /usr/bin/time): on a shared machine
// the wall clock mostly measures the neighbours, CPU time what the code costs.
interface Cost {
  wall: number;
  cpu: number;
}
const HAVE_TIME = existsSync('/usr/bin/time');
const timeFile = join(work, 'time.txt');
function timedCost(cmd: string, args: string[], opts: { out?: string; env?: NodeJS.ProcessEnv } = {}): Cost {
  const out = opts.out ? openSync(opts.out, 'w') : 'ignore';
  const argv = HAVE_TIME ? ['-o', timeFile, '-f', '%U %S', cmd, ...args] : args;
  const t0 = process.hrtime.bigint();
  const r = spawnSync(HAVE_TIME ? '/usr/bin/time' : cmd, argv, { stdio: ['ignore', out, 'pipe'], env: { ...process.env, ...opts.env }, maxBuffer: 64 << 20 });
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  if (typeof out === 'number') closeSync(out);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr?.toString().slice(0, 500)}`);
  let cpu = NaN;
  if (HAVE_TIME) {
    const [u, s] = readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
    cpu = (u + s) * 1000;
  }
  return { wall, cpu };
}
const timed = (cmd: string, args: string[], opts: { out?: string; env?: NodeJS.ProcessEnv } = {}) => timedCost(cmd, args, opts).wall;
const sednaCost = (args: string[], home: string, out?: string) => timedCost(process.execPath, [BIN, ...args], { out, env: { SEDNA_LL_HOME: home } });
const lineCount = (p: string) => {
  const r = spawnSync('wc', ['-l', p], { encoding: 'utf8' });
  return Number(r.stdout.trim().split(/\s+/)[0]);
};

// ---- (1) throughput vs the reference pipeline -----------------------------------------------
const refPath = join(work, 'ref.mjs');
const ortUrl = pathToFileURL(join(ROOT, 'node_modules', 'onnxruntime-node', 'dist', 'index.js')).href;
writeFileSync(
  refPath,
  `// minimal reference: readline -> JSON.parse -> onnxruntime batches -> JSON lines
import { createReadStream, createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
const ort = (await import(${JSON.stringify(ortUrl)})).default;
const [model, input, output] = process.argv.slice(2);
const s = await ort.InferenceSession.create(model);
const out = createWriteStream(output);
const B = ${BATCH}, D = ${D};
let ids = [], xs = [];
async function flush() {
  const n = ids.length; if (!n) return;
  const buf = new Float32Array(n * D);
  for (let j = 0; j < n; j++) buf.set(xs[j], j * D);
  const r = await s.run({ input: new ort.Tensor('float32', buf, [n, D]) });
  const p = r.probabilities.data; const K = p.length / n;
  let text = '';
  for (let j = 0; j < n; j++) {
    const row = Array.from(p.subarray(j * K, (j + 1) * K));
    let best = 0; for (let c = 1; c < K; c++) if (row[c] > row[best]) best = c;
    text += JSON.stringify({ id: ids[j], label: String(best), scores: row }) + '\\n';
  }
  if (!out.write(text)) await new Promise((r) => out.once('drain', r));
  ids = []; xs = [];
}
for await (const line of createInterface({ input: createReadStream(input), crlfDelay: Infinity })) {
  if (!line) continue;
  const o = JSON.parse(line);
  ids.push(o.id); xs.push(Float32Array.from(o.x));
  if (ids.length >= B) await flush();
}
await flush();
await new Promise((r) => out.end(r));
`,
);

interface Result {
  [k: string]: unknown;
}
const result: Result = { samples: N, runs: RUNS, batch: BATCH, model: '784-128-10 MLP' };
const log = (s: string) => process.stderr.write(s + '\n');

log(`bench:infer — ${N} samples (${(statSync(dataPath).size / 1e6).toFixed(1)} MB JSONL), ${RUNS} runs each, batch ${BATCH}, load average ${loadavg()[0].toFixed(1)}`);
result.load_average_start = loadavg()[0];
const homeDefault = makeHome('home-default', [{ type: 'cross_entropy', threshold: 0.5 }], DEFAULT_UNSEEN);
if (PARTS.includes('throughput')) {
  const ref: Cost[] = [];
  const ours: Cost[] = [];
  const outRef = join(work, 'ref.out');
  const outOurs = join(work, 'ours.out');
  timed(process.execPath, [refPath, modelPath, dataPath, outRef]); // warm the page cache
  for (let r = 0; r < RUNS; r++) {
    ref.push(timedCost(process.execPath, [refPath, modelPath, dataPath, outRef]));
    ours.push(sednaCost(['infer', dataPath, '--no-log', '--batch', String(BATCH)], homeDefault, outOurs));
  }
  if (lineCount(outRef) !== N || lineCount(outOurs) !== N) throw new Error('throughput runs did not produce one line per sample');
  const w = (a: Cost[]) => median(a.map((c) => c.wall));
  const c = (a: Cost[]) => median(a.map((x) => x.cpu));
  result.throughput = {
    reference_ms: w(ref),
    sedna_ms: w(ours),
    reference_sps: N / (w(ref) / 1000),
    sedna_sps: N / (w(ours) / 1000),
    ratio: w(ref) / w(ours),
    reference_cpu_ms: c(ref),
    sedna_cpu_ms: c(ours),
    cpu_ratio: c(ref) / c(ours),
    aim: 0.9,
  };
  log(`(1) throughput: reference ${w(ref).toFixed(0)} ms (cpu ${c(ref).toFixed(0)}), sedna-ll ${w(ours).toFixed(0)} ms (cpu ${c(ours).toFixed(0)})`);
}

// ---- (2) logging vs raw better-sqlite3 inserts ----------------------------------------------
if (PARTS.includes('logging')) {
function rawInserts(rows: number): Cost {
  const dbPath = join(work, `raw-${rows}.db`);
  for (const s of ['', '-wal', '-shm']) rmSync(dbPath + s, { force: true });
  const db = openEdgeDb(dbPath); // same schema, WAL, synchronous=FULL
  const ins = db.prepare(
    `INSERT INTO samples (id, payload_sha, task, attrs, payload_kind, payload, payload_bytes, pred_label, scores,
       hard, hard_reasons, unseen, unseen_reason, hardness, kb_version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const r = mulberry32(rows);
  // the same rows: a 784-float payload, 10 scores, a reason
  const payloads = Array.from({ length: rows }, () => Buffer.from(Float32Array.from({ length: D }, () => (r() < 0.8 ? 0 : Math.round(r() * 100) / 100)).buffer));
  const scores = Array.from({ length: rows }, () => Array.from({ length: 10 }, () => r() / 10));
  const perTx = BATCH; // a raw writer batching BATCH rows per transaction
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const tx = db.transaction((from: number, to: number) => {
    const now = Date.now();
    for (let i = from; i < to; i++) {
      const p = payloads[i];
      ins.run(uuidv7(now), createHash('sha256').update(p).digest('hex'), 'global', '{}', 'f32', p, p.length, '3', JSON.stringify(scores[i]), 1, '["random"]', 0, null, 0.5, 'local-1', now);
    }
  });
  for (let i = 0; i < rows; i += perTx) tx.immediate(i, Math.min(rows, i + perTx));
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  const c = process.cpuUsage(c0);
  db.close();
  return { wall, cpu: (c.user + c.system) / 1000 };
}

// In-process measurement (the headline): the pipeline itself over the same decoded windows,
// with the real Outbox vs without logging, interleaved with raw inserts of the same number of
// rows, all in this process: no process start-up or scheduling noise in the difference.
const { Pipeline, shouldCommit } = await import('../src/runtime/pipeline.js');
const { SessionCache } = await import('../src/runtime/sessions.js');
const { loadRuntimeState } = await import('../src/runtime/state.js');
const { decodeJsonBytes } = await import('../src/runtime/decode-jsonl.js');
const { Outbox } = await import('../src/store/outbox.js');
const { loadConfig } = await import('../src/store/home.js');
type Item = NonNullable<ReturnType<typeof decodeJsonBytes>>;
const windows: Item[][] = [];
{
  const buf = readFileSync(dataPath);
  let s = 0;
  let line = 0;
  let w: Item[] = [];
  for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10, s)) {
    const it = decodeJsonBytes(buf, s, nl, ++line, null, null);
    if (it) w.push(it);
    if (w.length === BATCH) {
      windows.push(w);
      w = [];
    }
    s = nl + 1;
  }
  if (w.length) windows.push(w);
}
async function pipelineRun(home: string, log: boolean, seed: number): Promise<{ cost: Cost; commit: Cost; rows: number }> {
  const paths = homePaths(home);
  const db = openEdgeDb(paths.db);
  const sessions = new SessionCache(paths.models);
  try {
    const state = loadRuntimeState(paths, db);
    const p = new Pipeline(sessions, { db: log ? db : null, sink: log ? new Outbox(db, paths, loadConfig(home)) : null, seed });
    await p.run(state, windows[0].slice(0, 1)); // open the session outside the timing
    let rows = 0;
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    // the same group-commit policy as `infer`; commit() is timed on its own: it is the logging
    // path (records, the outbox transaction, the lines of the logged samples)
    let pending: Awaited<ReturnType<typeof p.prepare>>[] = [];
    let cand = 0;
    const commitCost: Cost = { wall: 0, cpu: 0 };
    const commit = () => {
      const cc = process.cpuUsage();
      const tc = process.hrtime.bigint();
      for (const r of p.commit(pending)) rows += r.logged;
      commitCost.wall += Number(process.hrtime.bigint() - tc) / 1e6;
      const d = process.cpuUsage(cc);
      commitCost.cpu += (d.user + d.system) / 1000;
      pending = [];
      cand = 0;
    };
    for (const w of windows) {
      const pw = await p.prepare(state, w, false, true);
      pending.push(pw);
      cand += pw.candidates;
      if (shouldCommit(pending.length, cand, BATCH)) commit();
    }
    commit();
    const wall = Number(process.hrtime.bigint() - t0) / 1e6;
    const c = process.cpuUsage(c0);
    return { cost: { wall, cpu: (c.user + c.system) / 1000 }, commit: commitCost, rows };
  } finally {
    await sessions.dispose();
    db.close();
  }
}

const logging: Record<string, unknown> = {};
for (const ratio of [0.1, 1]) {
  const inNo: Cost[] = [];
  const inLog: Cost[] = [];
  const cNo: Cost[] = [];
  const cLog: Cost[] = [];
  const inRaw: Cost[] = [];
  const noLog: Cost[] = [];
  const withLog: Cost[] = [];
  const rows: number[] = [];
  const homeNoLog = makeHome(`home-nolog-${ratio}`, random(ratio), NO_UNSEEN);
  for (let r = 0; r < RUNS; r++) {
    // in-process pipeline
    const nr = await pipelineRun(homeNoLog, false, r + 1);
    inNo.push(nr.cost);
    cNo.push(nr.commit);
    const h = makeHome(`home-inlog-${ratio}`, random(ratio), NO_UNSEEN);
    const lr = await pipelineRun(h, true, r + 1);
    inLog.push(lr.cost);
    cLog.push(lr.commit);
    rows.push(lr.rows);
    inRaw.push(rawInserts(lr.rows));
    // the CLI end to end (informational: includes process start-up and scheduling noise)
    noLog.push(sednaCost(['infer', dataPath, '--no-log', '--seed', String(r + 1)], homeNoLog, join(work, 'nolog.out')));
    const home = makeHome(`home-log-${ratio}`, random(ratio), NO_UNSEEN); // fresh outbox each run: no duplicates
    withLog.push(sednaCost(['infer', dataPath, '--seed', String(r + 1)], home, join(work, 'log.out')));
  }
  const n = median(rows);
  const m = (a: Cost[], k: keyof Cost) => median(a.map((x) => x[k]));
  // the logging path: commit() with the outbox minus commit() without (building the lines)
  const over = (k: keyof Cost) => Math.max(1e-3, m(cLog, k) - m(cNo, k));
  const cliOver = Math.max(1e-3, m(withLog, 'wall') - m(noLog, 'wall'));
  logging[`${ratio * 100}%`] = {
    rows: n,
    pipeline_no_log_ms: m(inNo, 'wall'),
    pipeline_log_ms: m(inLog, 'wall'),
    pipeline_run_ratio: m(inRaw, 'wall') / Math.max(1e-3, m(inLog, 'wall') - m(inNo, 'wall')),
    commit_no_log_ms: m(cNo, 'wall'),
    commit_log_ms: m(cLog, 'wall'),
    logging_ms: over('wall'),
    raw_insert_ms: m(inRaw, 'wall'),
    ratio: m(inRaw, 'wall') / over('wall'),
    logging_cpu_ms: over('cpu'),
    raw_insert_cpu_ms: m(inRaw, 'cpu'),
    cpu_ratio: m(inRaw, 'cpu') / over('cpu'),
    cli_infer_no_log_ms: m(noLog, 'wall'),
    cli_infer_log_ms: m(withLog, 'wall'),
    cli_ratio: m(inRaw, 'wall') / cliOver,
    aim: 0.7,
  };
  log(
    `(2) logging ${ratio * 100}%: ${n} rows; pipeline ${m(inNo, 'wall').toFixed(0)} -> ${m(inLog, 'wall').toFixed(0)} ms (cpu ${m(inNo, 'cpu').toFixed(0)} -> ${m(inLog, 'cpu').toFixed(0)}), commits ${m(cNo, 'wall').toFixed(0)} -> ${m(cLog, 'wall').toFixed(0)} ms (cpu ${m(cNo, 'cpu').toFixed(0)} -> ${m(cLog, 'cpu').toFixed(0)}), raw inserts ${m(inRaw, 'wall').toFixed(0)} ms (cpu ${m(inRaw, 'cpu').toFixed(0)}); CLI ${m(noLog, 'wall').toFixed(0)} -> ${m(withLog, 'wall').toFixed(0)} ms`,
  );
}
result.logging = logging;
}

// ---- (3) cold start --------------------------------------------------------------------------
if (PARTS.includes('cold')) {
  const K = Math.max(9, RUNS * 2 + 1);
  const node0: number[] = [];
  const version: number[] = [];
  const one: number[] = [];
  for (let i = 0; i < K; i++) {
    node0.push(timed(process.execPath, ['-e', '0']));
    version.push(timed(process.execPath, [BIN, '--version']));
    one.push(sednaCost(['infer', onePath], homeDefault).wall);
  }
  const base = median(node0);
  result.cold_start = {
    node_ms: base,
    version_ms: median(version),
    infer_one_ms: median(one),
    version_minus_node_ms: median(version) - base,
    infer_one_minus_node_ms: median(one) - base,
    aims_ms: { version: 30, infer_one: 80 },
  };
  log(`(3) cold start: node ${base.toFixed(1)} ms, --version ${median(version).toFixed(1)} ms, infer 1 sample ${median(one).toFixed(1)} ms`);
}

// ---- (4) peak RSS ----------------------------------------------------------------------------
if (PARTS.includes('rss')) {
  const rss: number[] = [];
  const home = makeHome('home-rss', random(0.1), NO_UNSEEN);
  for (let r = 0; r < 3; r++) {
    const p = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, BIN, 'infer', dataPath, '--seed', '1'], {
      env: { ...process.env, SEDNA_LL_HOME: home },
      stdio: ['ignore', 'ignore', 'pipe'],
      encoding: 'utf8',
    });
    if (p.status !== 0) throw new Error(`rss run failed: ${p.stderr}`);
    rss.push(Number(p.stderr.trim().split('\n').pop()) / 1024);
  }
  result.peak_rss = { infer_mb: median(rss), aim_mb: 150 };
  log(`(4) peak RSS of infer: ${median(rss).toFixed(1)} MB`);
}

// ---- (5) serve latency -----------------------------------------------------------------------
// Single-sample POST /infer over keep-alive connections, one per client, at 1, 8 and 64
// concurrent clients, over a Unix socket and TCP loopback. The load generator
// (bench/lib/http-load.ts) is a child process of its own with raw node:net clients writing
// preformatted requests (why: see that file); each connection's first request is not timed
// (connection set-up, and at 64 clients the connect burst, would otherwise be over 1 % of the
// samples: exactly the p99). `serve` logs the hard samples (most of them here: cross-entropy
// filter at 0.5 on a random model), and answers each after its outbox commit is durable
// (fsync'd); `serve --no-log` shows the path without the outbox. Two baselines, each a child
// process loaded by the same generator over the same transport: the "http floor", a minimal
// node:http server answering a fixed body (what HTTP alone costs on this machine at this load),
// and the "durable floor", the same server appending each body to a file and answering after an
// fdatasync that covers it, one per event-loop turn (what any answer that promises durability
// costs on this disk at this load: the floor of `serve`'s logged answers).
// All servers of a transport run side by side and are loaded in turn, run after run (the order
// rotates), so a change of the machine's load hits all of them; p50 / p99 are over all runs'
// requests pooled (SERVE_RUNS x SERVE_REQUESTS each), with the per-run p99s printed beside.
// BENCH_SERVE_B=<dist dir of another build> adds "serve_b", that build's `serve` on a home of
// its own, interleaved the same way (an A/B in one run).
const SERVE_RUNS = Number(process.env.BENCH_SERVE_RUNS ?? 3);
const SERVE_REQUESTS = Number(process.env.BENCH_SERVE_REQUESTS ?? 5000);
// BENCH_SERVE_LEVELS=8 (say) narrows the client counts while profiling
const LEVELS = (process.env.BENCH_SERVE_LEVELS ?? '1,8,64').split(',').map(Number);
if (PARTS.includes('serve')) {
  const { fork } = await import('node:child_process');
  const home = makeHome('home-serve', [{ type: 'cross_entropy', threshold: 0.5 }], DEFAULT_UNSEEN);
  const homeNoLog = makeHome('home-serve-no-log', [{ type: 'cross_entropy', threshold: 0.5 }], DEFAULT_UNSEEN);
  const distB = process.env.BENCH_SERVE_B;
  let binB: string | null = null;
  let homeB: string | null = null;
  if (distB) {
    const snapB = `${SNAP}-b`;
    cpSync(resolve(distB), join(snapB, 'dist'), { recursive: true });
    cpSync(join(ROOT, 'bin'), join(snapB, 'bin'), { recursive: true });
    cpSync(join(ROOT, 'package.json'), join(snapB, 'package.json'));
    binB = join(snapB, 'bin', 'sedna-ll');
    homeB = makeHome('home-serve-b', [{ type: 'cross_entropy', threshold: 0.5 }], DEFAULT_UNSEEN);
  }
  const bodies = Array.from({ length: 64 }, (_, k) => JSON.stringify({ id: k, x: Array.from({ length: D }, () => (rand() < 0.8 ? 0 : Math.round(rand() * 100) / 100)) }));
  const floorScript = join(work, 'http-floor.mjs');
  // argv: [socket path | '-'] [file to append each body to and fdatasync before answering]
  writeFileSync(
    floorScript,
    `import { createServer } from 'node:http';
import { fdatasyncSync, openSync, writeSync } from 'node:fs';
const body = JSON.stringify({ id: 1, task: 'global', label: '3', scores: [0.1, 0.2, 0.7], hard: false, unseen: false, logged: false });
const [sock, file] = process.argv.slice(2);
const fd = file ? openSync(file, 'a') : -1;
let pending = [];
// durable floor: the bodies read in one event-loop turn are written and fdatasync'd together
const flush = () => { const p = pending; pending = []; writeSync(fd, Buffer.concat(p.map((x) => x[0]))); fdatasyncSync(fd); for (const [, res] of p) answer(res); };
const answer = (res) => { res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }); res.end(body); };
const s = createServer((req, res) => { const c = []; req.on('data', (d) => c.push(d)); req.on('end', () => { const b = Buffer.concat(c); JSON.parse(b.toString());
  if (fd < 0) return answer(res);
  if (pending.push([b, res]) === 1) setImmediate(flush); }); });
s.keepAliveTimeout = 5000;
const ready = () => process.stdout.write(JSON.stringify(sock !== '-' ? { socket: sock } : { port: s.address().port }) + '\\n');
if (sock !== '-') s.listen(sock, ready); else s.listen(0, '127.0.0.1', ready);
process.on('SIGTERM', () => process.exit(0));
`,
  );
  /** start a server child; resolves with its address once it printed its JSON line */
  const startChild = (args: string[], env: NodeJS.ProcessEnv) =>
    new Promise<{ child: ReturnType<typeof spawn>; port?: number }>((res, rej) => {
      const child = spawn(process.execPath, [...(process.env.BENCH_SERVE_NODE_ARGS ?? '').split(' ').filter(Boolean), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
      let s = '';
      child.stdout!.on('data', (d) => {
        s += d;
        if (s.includes('\n')) res({ child, port: JSON.parse(s.split('\n')[0]).port });
      });
      child.once('exit', (c) => rej(new Error(`server exited ${c}`)));
    });
  const stopChild = async (child: ReturnType<typeof spawn>) => {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  };
  /** CPU time (ms, user + system, all threads) a process has used so far: /proc/<pid>/stat fields 14-15 */
  const cpuOf = (pid: number) => {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
  };
  const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
  const gen = fork(join(ROOT, 'bench', 'lib', 'http-load.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  gen.send({ bodies });
  /** latencies (ms) of `total` timed requests sent by `clients` concurrent clients (in the generator child) */
  const load = (target: { socket?: string; port?: number }, clients: number, total: number) =>
    new Promise<number[]>((res, rej) => {
      gen.once('message', (m: { lat?: number[]; error?: string }) => (m.error ? rej(new Error(`load generator: ${m.error}`)) : res(m.lat!)));
      gen.send({ target, clients, total });
    });
  /** serve's sharing counters (/metrics; NaN from a build without them): requests per batch and per fsync */
  const { request: httpRequest } = await import('node:http');
  const sharing = (target: { socket?: string; port?: number }) =>
    new Promise<{ batches: number; requests: number; fsyncs: number }>((res, rej) => {
      const req = httpRequest({ ...(target.socket ? { socketPath: target.socket } : { host: '127.0.0.1', port: target.port }), path: '/metrics', agent: false }, (r) => {
        let t = '';
        r.on('data', (d) => (t += d));
        r.on('end', () => {
          const v = (name: string) => Number(new RegExp(`^sedna_ll_edge_${name} (\\S+)$`, 'm').exec(t)?.[1] ?? NaN);
          res({ batches: v('serve_batches_total'), requests: v('serve_batched_requests_total'), fsyncs: v('outbox_fsyncs_total') });
        });
      });
      req.on('error', rej);
      req.end();
    });
  const serveResult: Record<string, Record<string, Record<string, number | number[]>>> = {};
  // BENCH_SERVE_ONLY=unix,serve (say) narrows the matrix while profiling
  const SERVERS = ['serve', ...(binB ? ['serve_b'] : []), 'serve_no_log', 'http_floor', 'durable_floor'];
  const only = (process.env.BENCH_SERVE_ONLY ?? '').split(',').filter(Boolean);
  const pick = (name: string, of: readonly string[]) => !only.some((o) => of.includes(o)) || only.includes(name);
  const picked = (transport: string, server: string) => pick(transport, ['unix', 'tcp']) && pick(server, SERVERS);
  for (const transport of ['unix', 'tcp'] as const) {
    const running: { server: string; child: ReturnType<typeof spawn>; target: { socket?: string; port?: number } }[] = [];
    try {
      for (const server of SERVERS) {
        if (!picked(transport, server)) continue;
        const sock = transport === 'unix' ? join(work, `${server}.sock`) : undefined;
        const where = sock ? ['--socket', sock] : ['--port', '0'];
        const args =
          server === 'serve' ? [BIN, 'serve', ...where]
          : server === 'serve_b' ? [binB!, 'serve', ...where]
          : server === 'serve_no_log' ? [BIN, 'serve', '--no-log', ...where]
          : [floorScript, sock ?? '-', ...(server === 'durable_floor' ? [join(work, `durable-floor-${transport}.log`)] : [])];
        // each serve on a home of its own: a second process on the same database (even --no-log,
        // which only reads) changes the logging one's WAL and checkpoints, and with them its fsyncs
        const { child, port } = await startChild(args, { SEDNA_LL_HOME: server === 'serve_b' ? homeB! : server === 'serve_no_log' ? homeNoLog : home });
        running.push({ server, child, target: sock ? { socket: sock } : { port } });
      }
      for (const r of running) await load(r.target, 8, 2000); // warm-up (JIT, sessions, page cache)
      for (const c of LEVELS) {
        const per = new Map(running.map((r) => [r.server, { lat: [] as number[], p99: [] as number[], cpu: [] as number[], batches: 0, requests: 0, fsyncs: 0 }]));
        for (let run = 0; run < SERVE_RUNS; run++) {
          for (let j = 0; j < running.length; j++) {
            const r = running[(j + run) % running.length]; // rotate who goes first
            const m = per.get(r.server)!;
            const isServe = r.server.startsWith('serve');
            const s0 = isServe ? await sharing(r.target) : null;
            const c0 = cpuOf(r.child.pid!);
            const lat = await load(r.target, c, SERVE_REQUESTS);
            m.cpu.push(((cpuOf(r.child.pid!) - c0) * 1000) / (SERVE_REQUESTS + c));
            if (s0) {
              const s1 = await sharing(r.target);
              m.batches += s1.batches - s0.batches;
              m.requests += s1.requests - s0.requests;
              m.fsyncs += s1.fsyncs - s0.fsyncs;
            }
            m.p99.push(pct(lat, 99));
            for (const x of lat) m.lat.push(x);
          }
        }
        const key = `${transport}_c${c}`;
        for (const r of running) {
          const m = per.get(r.server)!;
          const [p50, p99] = [pct(m.lat, 50), pct(m.lat, 99)];
          serveResult[key] ??= {};
          const perBatch = m.requests / m.batches;
          const perFsync = m.requests / m.fsyncs;
          serveResult[key][r.server] = {
            p50_ms: +p50.toFixed(3),
            p99_ms: +p99.toFixed(3),
            p99_per_run_ms: m.p99.map((x) => +x.toFixed(3)),
            cpu_us_per_request: +median(m.cpu).toFixed(1),
            ...(Number.isFinite(perBatch) ? { requests_per_batch: +perBatch.toFixed(2) } : {}),
            ...(Number.isFinite(perFsync) ? { requests_per_fsync: +perFsync.toFixed(2) } : {}),
          };
          const shared = Number.isFinite(perBatch) ? `; ${perBatch.toFixed(2)} requests per batch${Number.isFinite(perFsync) ? `, ${perFsync.toFixed(2)} per fsync` : ''}` : '';
          log(
            `(5) ${r.server.padEnd(13)} ${transport} ${String(c).padStart(2)} clients: p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms (${m.lat.length} requests; runs: p99 ${m.p99.map((x) => x.toFixed(2)).join(' ')}); server CPU ${median(m.cpu).toFixed(0)} us/request${shared}; load ${loadavg()[0].toFixed(1)}`,
          );
        }
      }
    } finally {
      for (const r of running) await stopChild(r.child);
    }
  }
  gen.disconnect();
  result.serve = { requests_per_level: SERVE_REQUESTS, runs: SERVE_RUNS, levels: serveResult, aim_p99_ms_unix_c8: 2 };
}

// ---- report ----------------------------------------------------------------------------------
const t = result.throughput as Record<string, number>;
const lg = result.logging as Record<string, Record<string, number>>;
const cs = result.cold_start as Record<string, number>;
const rows: [string, string, string, string][] = [];
if (t) rows.push(
  ['(1) infer throughput vs reference (wall)', `${t.sedna_sps.toFixed(0)} vs ${t.reference_sps.toFixed(0)} samples/s`, t.ratio.toFixed(2), '>= 0.9'],
  ['(1) same, CPU time', `${t.sedna_cpu_ms.toFixed(0)} vs ${t.reference_cpu_ms.toFixed(0)} ms`, t.cpu_ratio.toFixed(2), '>= 0.9'],
);
if (lg) rows.push(
  ...(['10%', '100%'] as const).flatMap((k): [string, string, string, string][] => [
    [`(2) logging ${k} hard vs raw inserts (wall)`, `${lg[k].rows} rows: ${lg[k].logging_ms.toFixed(0)} vs ${lg[k].raw_insert_ms.toFixed(0)} ms`, lg[k].ratio.toFixed(2), '>= 0.7'],
    [`(2) same, CPU time`, `${lg[k].logging_cpu_ms.toFixed(0)} vs ${lg[k].raw_insert_cpu_ms.toFixed(0)} ms`, lg[k].cpu_ratio.toFixed(2), '>= 0.7'],
    [`(2) same, whole pipeline run difference`, `${lg[k].pipeline_no_log_ms.toFixed(0)} -> ${lg[k].pipeline_log_ms.toFixed(0)} ms`, lg[k].pipeline_run_ratio.toFixed(2), ''],
    [`(2) same, via the CLI (wall, noisy)`, `infer ${lg[k].cli_infer_no_log_ms.toFixed(0)} -> ${lg[k].cli_infer_log_ms.toFixed(0)} ms`, lg[k].cli_ratio.toFixed(2), ''],
  ]),
);
if (cs) rows.push(
  ['(3) cold start --version - node', `${cs.version_minus_node_ms.toFixed(1)} ms`, '', '<= 30 ms'],
  ['(3) cold start infer 1 sample - node', `${cs.infer_one_minus_node_ms.toFixed(1)} ms`, '', '<= 80 ms'],
);
if (result.peak_rss) rows.push(['(4) peak RSS infer', `${(result.peak_rss as Record<string, number>).infer_mb.toFixed(1)} MB`, '', '<= 150 MB']);
if (result.serve) {
  const f = (r: Record<string, number> | undefined) => (r ? `${r.p50_ms.toFixed(2)} / ${r.p99_ms.toFixed(2)} (${r.cpu_us_per_request.toFixed(0)} us CPU)` : 'n/a');
  rows.push(
    ...Object.entries((result.serve as { levels: Record<string, Record<string, Record<string, number>>> }).levels).map(([k, v]): [string, string, string, string] => [
      `(5) ${k.replace('_c', ', ')} clients: p50 / p99 ms (server CPU per request); ratio: serve / durable floor p99`,
      `serve ${f(v.serve)};${v.serve_b ? ` serve_b ${f(v.serve_b)};` : ''} --no-log ${f(v.serve_no_log)}; http floor ${f(v.http_floor)}; durable floor ${f(v.durable_floor)}`,
      v.serve && v.durable_floor ? (v.serve.p99_ms / v.durable_floor.p99_ms).toFixed(1) : '',
      k === 'unix_c8' ? 'p99 <= 2 ms' : '',
    ]),
  );
}
rows.push(
  ['load average (start -> end)', `${(result.load_average_start as number).toFixed(1)} -> ${loadavg()[0].toFixed(1)} on ${availableParallelism()} cores`, '', ''],
);
const w = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i].length), ['metric', 'value', 'ratio', 'aim'][i].length));
const line = (r: string[]) => r.map((c, i) => c.padEnd(w[i])).join('  ');
process.stdout.write(`\n${line(['metric', 'value', 'ratio', 'aim'])}\n${w.map((n) => '-'.repeat(n)).join('  ')}\n${rows.map(line).join('\n')}\n`);
const outDir = join(ROOT, 'bench', 'out');
if (!existsSync(outDir)) mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'infer.json'), JSON.stringify({ ...result, at: new Date().toISOString(), node: process.version }, null, 2) + '\n');
process.stdout.write(`\nJSON: bench/out/infer.json\n`);
