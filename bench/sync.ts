// npm run bench:sync — sync throughput and memory on loopback, as ratios to curl.
//
// 1. push: 50k samples x 3 KB (float32 features, 3 decimals) from a real edge.db, `sedna-ll sync
//    --push-only` (whole process, wall time) vs `curl -T` uploading the same payload bytes as
//    one file. Fairness: curl cannot speak the sync protocol, so both go to the SAME plain
//    node:http sink in this process: curl to POST /raw (bytes discarded), sync to POST
//    /v1/sample-frames (binary frames: records read, ids acked) or /v1/samples (--framing json:
//    body gunzipped if gzip, ids scanned and acked) — the minimum a server must do to ack,
//    nothing durable. That isolates the edge client (SQLite read, framing, the compress policy,
//    HTTP, marking acks). Both framings run in each run: json is the format before frames.
//    The same pushes to the real KB (`kb serve`: per-record checks, SQLite transactions) are
//    reported too, as end-to-end (--compress none, so that the KB's CPU compares the framings
//    and not gunzip), with the same curl baseline, and the KB process's CPU time (utime+stime
//    from /proc) per 1 000 samples for each framing.
// 1b. slow link: the same push (BENCH_SYNC_SLOW_SAMPLES, default 10 000: ~20 s of link time, so
//    the ~5 fixed round trips of a run (connect, protocol, last ack, labels) are ~3 % of it, not
//    the ~12 % of the 3 000 used before) through a bench-local throttling proxy
//    (bench/lib/slow-link.ts: 10 Mbit/s each way shared by all connections, 100 ms RTT) to the
//    real KB: request body bytes per second of the push phase vs the link's capacity (aim >= 0.9),
//    and curl through the same proxy as the reference of what the link allows.
// 2. bytes on the wire (request bodies) vs payload bytes, with the default --compress auto
//    (batches sent gzipped / plain) and from one extra run with --compress gzip.
// 3. peak RSS (/usr/bin/time %M) of `sync` pushing a 1 GB backlog (to the sink; see there)
//    (BENCH_SYNC_RSS_MB to scale it).
// 4. pull of a 50 MB model: `sync --pull-only` (rollout.activate=manual: download, sha256,
//    install; activation/canary is the rollout's step) vs `curl -o` of the same blob from the
//    same `kb serve`. With BENCH_SYNC_BIG_MODEL_DIM (e.g. 7168: ~206 MB) a second, bigger model
//    too, and from the two sizes the marginal MB/s of sync and curl (streaming) apart from the
//    fixed cost every run pays (start-up, index, install, exit).
// 5. start-up: `sync` of a current edge (nothing pending, KB answers 304), `sync --pull-only`,
//    `status` and `--version`, whole process, vs `node -e 0` in the same run (BENCH_SYNC_STARTUP_RUNS).
// 4b. slow link: pull of a ~8 MB model (BENCH_SYNC_SLOW_MODEL_DIM) through the same throttling
//    proxy: blob bytes per second of the download phase vs the link's capacity (aim >= 0.9).
// Medians of BENCH_RUNS runs (default 3). JSON in bench/out/sync.json.
// BENCH_SYNC_PARTS=push,slow,rss,pull,startup selects parts; BENCH_SYNC_SAMPLES / _RSS_MB / _MODEL_DIM scale.
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSlowLink } from './lib/slow-link.js';
import { SAMPLE_BYTES, buildTemplate, cpuSeconds, edgeWithOutbox, log, mb, median, runProc, sedna, startSink } from './lib/push-bench.js';
import { ROOT, tempDir } from '../test/helpers/cli.js';
import { startTestKb, type TestKb } from '../test/helpers/kb-server.js';
import { writeRandomMlp } from '../test/helpers/models.js';
import { editConfig, makeEdge } from '../test/helpers/sync-edge.js';
import { sha256Hex } from '../src/format/signature.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const N = Number(process.env.BENCH_SYNC_SAMPLES ?? 50_000);
const SIZE = SAMPLE_BYTES;
const RSS_MB = Number(process.env.BENCH_SYNC_RSS_MB ?? 1024);
const MODEL_DIM = Number(process.env.BENCH_SYNC_MODEL_DIM ?? 3584); // 3584^2 floats ~ 51 MB
const SLOW_N = Number(process.env.BENCH_SYNC_SLOW_SAMPLES ?? 10_000);
const SLOW_MODEL_DIM = Number(process.env.BENCH_SYNC_SLOW_MODEL_DIM ?? 1400); // ~7.8 MB
/** a second, bigger model pulled after the 50 MB one (0: none); 7168^2 floats ~ 206 MB */
const BIG_MODEL_DIM = Number(process.env.BENCH_SYNC_BIG_MODEL_DIM ?? 0);
const STARTUP_RUNS = Number(process.env.BENCH_SYNC_STARTUP_RUNS ?? 9);
const SLOW_LINK = { mbit: 10, rttMs: 100 };
/** which parts to run: push,slow,rss,pull,startup (all by default) */
const PARTS = (process.env.BENCH_SYNC_PARTS ?? 'push,slow,rss,pull,startup').split(',');


interface PullResult {
  model_mb: number;
  curl_ms: number;
  sync_ms: number;
  sync_pull_phase_ms: number;
  sync_download_ms: number;
  ratio_vs_curl: number;
  ratio_download_vs_curl: number;
  /** the KB process's CPU (user + system) per MB it served, to curl and to sync */
  kb_cpu_ms_per_mb_curl: number;
  kb_cpu_ms_per_mb_sync: number;
  aim: number;
}

/**
 * Pull of a dim x dim model: `sync --pull-only` of a fresh edge (rollout.activate=manual:
 * download, sha256, install) vs `curl -o` of the same blob from the same `kb serve`, interleaved.
 */
async function benchPull(kb: TestKb, dir: string, name: string, dim: number): Promise<PullResult> {
  const model = writeRandomMlp(dir, name, [dim, dim, 10], 7);
  const size = statSync(model).size;
  log(`${name}: publishing a ${mb(size)} MB model`);
  const sha = sha256Hex(readFileSync(model));
  for (const [args, what] of [
    [['task', 'add', model, '--task', 'global', '--fallback'], 'task add'],
    [['publish', '--json'], 'publish'],
  ] as const) {
    const r = kb.cli([...args]);
    if (r.code !== 0) throw new Error(`kb ${what}: ${r.stderr}`);
  }
  rmSync(model);
  const curlPull: number[] = [];
  const syncPull: number[] = [];
  const syncPullPhase: number[] = [];
  const syncDownload: number[] = [];
  const kbCpuCurl: number[] = [];
  const kbCpuSync: number[] = [];
  const kbPid = kb.proc.pid!;
  const out = join(dir, 'curl.bin');
  for (let i = 0; i < RUNS; i++) {
    let cpu0 = cpuSeconds(kbPid);
    const c = await runProc('curl', ['-sS', '-f', '-o', out, '-H', `authorization: Bearer ${kb.deviceToken}`, `${kb.url}/v1/blobs/${sha}`]);
    if (c.code !== 0 || statSync(out).size !== size) throw new Error(`curl pull: ${c.stderr}`);
    curlPull.push(c.ms);
    kbCpuCurl.push(((cpuSeconds(kbPid) - cpu0) * 1000) / (size / 1e6));
    rmSync(out);
    const e = makeEdge(kb);
    editConfig(e.home, (cf) => {
      cf.rollout.activate = 'manual';
    });
    cpu0 = cpuSeconds(kbPid);
    const r = await sedna(e.home, ['sync', '--pull-only', '--json']);
    if (r.code !== 0) throw new Error(`sync pull: exit ${r.code}: ${r.stderr}`);
    kbCpuSync.push(((cpuSeconds(kbPid) - cpu0) * 1000) / (size / 1e6));
    const s = JSON.parse(r.stdout) as { pulled_version: number | null; pull_ms: number; download_ms: number };
    if (!s.pulled_version) throw new Error('sync pulled nothing');
    syncPull.push(r.ms);
    syncPullPhase.push(s.pull_ms);
    syncDownload.push(s.download_ms);
    e.cleanup();
    log(`  run ${i + 1}: curl ${c.ms.toFixed(0)} ms, sync --pull-only ${r.ms.toFixed(0)} ms (pull phase ${s.pull_ms} ms, download ${s.download_ms} ms)`);
  }
  return {
    model_mb: mb(size),
    curl_ms: Math.round(median(curlPull)),
    sync_ms: Math.round(median(syncPull)),
    sync_pull_phase_ms: Math.round(median(syncPullPhase)),
    sync_download_ms: Math.round(median(syncDownload)),
    ratio_vs_curl: +(median(curlPull) / median(syncPull)).toFixed(3),
    // curl's wall time is almost all transfer (~5 ms start-up); download_ms is sync's transfer
    // + sha256 + fsync + placement, without Node start-up, index verification and install
    ratio_download_vs_curl: +(median(curlPull) / median(syncDownload)).toFixed(3),
    // what serving costs the KB (the fleet's bill); sync's includes its index and report requests
    kb_cpu_ms_per_mb_curl: +median(kbCpuCurl).toFixed(2),
    kb_cpu_ms_per_mb_sync: +median(kbCpuSync).toFixed(2),
    aim: 0.8,
  };
}

/**
 * Whole-process wall time of commands that have nothing to do, against `node -e 0` in the same
 * run (interleaved, STARTUP_RUNS each): `sync` of an edge that is current (nothing pending, the
 * KB answers 304), `sync --pull-only`, `status`, `--version`. What cron pays every few minutes.
 */
async function benchStartup(kb: TestKb): Promise<Record<string, unknown>> {
  const e = makeEdge(kb);
  const first = await sedna(e.home, ['sync', '--json']); // the edge takes the KB's current version, if any
  if (first.code !== 0) throw new Error(`sync: exit ${first.code}: ${first.stderr}`);
  const cases: [string, () => Promise<{ ms: number; code: number; stderr: string }>][] = [
    ['node_e0', () => runProc(process.execPath, ['-e', '0'])],
    ['version', () => sedna(e.home, ['--version'])],
    ['status', () => sedna(e.home, ['status'])],
    ['sync_nothing', () => sedna(e.home, ['sync'])],
    ['sync_pull_only_nothing', () => sedna(e.home, ['sync', '--pull-only'])],
  ];
  const times: Record<string, number[]> = Object.fromEntries(cases.map(([k]) => [k, []]));
  for (let i = 0; i < STARTUP_RUNS; i++) {
    for (const [k, f] of cases) {
      const r = await f();
      if (r.code !== 0) throw new Error(`${k}: exit ${r.code}: ${r.stderr}`);
      times[k].push(r.ms);
    }
  }
  e.cleanup();
  const base = median(times.node_e0);
  const out: Record<string, unknown> = { runs: STARTUP_RUNS };
  for (const [k] of cases) out[`${k}_ms`] = Math.round(median(times[k]));
  for (const [k] of cases.slice(1)) out[`${k}_over_node_e0`] = +(median(times[k]) / base).toFixed(2);
  log(`  startup (medians of ${STARTUP_RUNS}): ${cases.map(([k]) => `${k} ${Math.round(median(times[k]))} ms`).join(', ')}`);
  return out;
}

async function main() {
  const work = tempDir('sedna-ll-bench-sync-');
  const results: Record<string, unknown> = {
    runs: RUNS,
    samples: N,
    sample_bytes: SIZE,
    node: process.version,
    cpus: (await import('node:os')).cpus().length,
    loadavg_start: (await import('node:os')).loadavg().map((x) => +x.toFixed(2)),
  };
  const kbs: TestKb[] = [];
  const sink = await startSink();
  try {
    const kb = await startTestKb();
    kbs.push(kb);
    // ---- 1+2. push ----
    if (PARTS.includes('push')) {
    log(`push: building a ${N} x ${SIZE} B outbox`);
    const payloadFile = join(work.dir, 'payload.bin');
    const tpl = buildTemplate(work.dir, N, payloadFile);
    const curlSink: number[] = [];
    const toSink = { frames: [] as number[], json: [] as number[] };
    const toKb = { frames: [] as number[], json: [] as number[] };
    const kbCpu = { frames: [] as number[], json: [] as number[] };
    const wire = { frames: 0, json: 0 };
    const batches = { frames: { gzip: 0, plain: 0 }, json: { gzip: 0, plain: 0 } };
    for (let i = 0; i < RUNS; i++) {
      const c = await runProc('curl', ['-sS', '-o', '/dev/null', '-X', 'POST', '-T', payloadFile, '-H', 'content-type: application/octet-stream', '-H', 'Expect:', `${sink.url}/raw`]);
      if (c.code !== 0) throw new Error(`curl: ${c.stderr}`);
      curlSink.push(c.ms);
      const line: string[] = [`curl->sink ${c.ms.toFixed(0)} ms`];
      for (const framing of ['frames', 'json'] as const) {
        const fl = framing === 'json' ? ['--framing', 'json'] : [];
        const e = edgeWithOutbox(kb, tpl.db, sink.url);
        const r = await sedna(e.home, ['sync', '--push-only', '--json', ...fl]);
        if (r.code !== 0) throw new Error(`sync (${framing}) to sink: exit ${r.code}: ${r.stderr}`);
        const s = JSON.parse(r.stdout) as { acked: number; bytes_up: number; batches_gzip: number; batches_plain: number; push_framing: string };
        if (s.acked !== N || s.push_framing !== framing) throw new Error(`sync to sink acked ${s.acked} of ${N} as ${s.push_framing}`);
        wire[framing] = s.bytes_up;
        batches[framing] = { gzip: s.batches_gzip, plain: s.batches_plain };
        toSink[framing].push(r.ms);
        e.cleanup();
        // end to end: a fresh KB each run, so every run inserts (not upserts) all samples (the
        // template's sample ids belong to the first device that pushed them)
        const kbRun = await startTestKb();
        const e2 = edgeWithOutbox(kbRun, tpl.db);
        const cpu0 = cpuSeconds(kbRun.proc.pid!);
        // uncompressed bodies on both framings: the KB's CPU compares the framings, not gunzip
        const r2 = await sedna(e2.home, ['sync', '--push-only', '--json', '--compress', 'none', ...fl]);
        const cpu = cpuSeconds(kbRun.proc.pid!) - cpu0;
        await kbRun.stop();
        if (r2.code !== 0) throw new Error(`sync (${framing}) to kb: exit ${r2.code}: ${r2.stderr}`);
        toKb[framing].push(r2.ms);
        kbCpu[framing].push((cpu / N) * 1000 * 1000); // ms of KB CPU per 1 000 samples
        e2.cleanup();
        line.push(`${framing}: ->sink ${r.ms.toFixed(0)} ms, ->kb ${r2.ms.toFixed(0)} ms (KB CPU ${cpu.toFixed(2)} s)`);
      }
      log(`  run ${i + 1}: ${line.join(', ')}`);
    }
    const mbps = (ms: number) => +(tpl.payloadBytes / 1e6 / (ms / 1000)).toFixed(1);
    const m = (xs: number[]) => Math.round(median(xs));
    results.push = {
      payload_mb: mb(tpl.payloadBytes),
      loadavg: (await import('node:os')).loadavg().map((x) => +x.toFixed(2)),
      curl_to_sink_ms: m(curlSink),
      curl_mb_s: mbps(median(curlSink)),
      ...Object.fromEntries(
        (['frames', 'json'] as const).map((f) => [
          f,
          {
            sync_to_sink_ms: m(toSink[f]),
            sync_to_kb_ms: m(toKb[f]),
            sync_sink_mb_s: mbps(median(toSink[f])),
            sync_kb_mb_s: mbps(median(toKb[f])),
            ratio_vs_curl_same_sink: +(median(curlSink) / median(toSink[f])).toFixed(3),
            ratio_end_to_end_kb_vs_curl: +(median(curlSink) / median(toKb[f])).toFixed(3),
            kb_cpu_ms_per_1000_samples: +median(kbCpu[f]).toFixed(1),
            body_bytes_up: wire[f],
            wire_ratio: +(wire[f] / tpl.payloadBytes).toFixed(3),
            batches_gzip: batches[f].gzip,
            batches_plain: batches[f].plain,
          },
        ]),
      ),
      frames_vs_json_speedup_end_to_end: +(median(toKb.json) / median(toKb.frames)).toFixed(2),
      kb_cpu_frames_vs_json: +(median(kbCpu.frames) / median(kbCpu.json)).toFixed(3),
      aim: 0.5,
    };
    // the default (--compress auto) picks per batch; on loopback uncompressed wins. One run with
    // --compress gzip shows the bytes a slow link would carry and what gzip costs here.
    const eg = edgeWithOutbox(kb, tpl.db, sink.url);
    const rg = await sedna(eg.home, ['sync', '--push-only', '--json', '--compress', 'gzip']);
    if (rg.code !== 0) throw new Error(`sync --compress gzip to sink: exit ${rg.code}: ${rg.stderr}`);
    const wireGzip = (JSON.parse(rg.stdout) as { bytes_up: number }).bytes_up;
    eg.cleanup();
    log(`  one run with --compress gzip: ${rg.ms.toFixed(0)} ms, ${mb(wireGzip)} MB on the wire`);
    results.wire = {
      payload_bytes: tpl.payloadBytes,
      gzip_body_bytes_up: wireGzip,
      gzip_ratio: +(wireGzip / tpl.payloadBytes).toFixed(3),
      gzip_sync_to_sink_ms: Math.round(rg.ms),
    };
    rmSync(payloadFile, { force: true });
    }

    // ---- 1b + 4b. a slow link: 10 Mbit/s, 100 ms RTT ----
    if (PARTS.includes('slow')) {
    log(`slow link (${SLOW_LINK.mbit} Mbit/s, ${SLOW_LINK.rttMs} ms RTT): push of ${SLOW_N} x ${SIZE} B, pull of a ${SLOW_MODEL_DIM}^2 model`);
    const tplSlow = buildTemplate(work.dir, SLOW_N);
    const kbSlow = await startTestKb();
    kbs.push(kbSlow);
    const link = await startSlowLink(kbSlow.port, SLOW_LINK);
    const cap = link.bytesPerSecond;
    const model = writeRandomMlp(work.dir, 'slow', [SLOW_MODEL_DIM, SLOW_MODEL_DIM, 10], 9);
    const size = statSync(model).size;
    const sha = sha256Hex(readFileSync(model));
    for (const args of [['task', 'add', model, '--task', 'global', '--fallback'], ['publish', '--json']]) {
      const r = kbSlow.cli(args);
      if (r.code !== 0) throw new Error(`kb ${args[0]}: ${r.stderr}`);
    }
    const push = { frames: [] as number[], json: [] as number[] };
    const payloadRate = { frames: [] as number[], json: [] as number[] };
    const pullUse: number[] = [];
    const curlUse: number[] = [];
    try {
      for (let i = 0; i < RUNS; i++) {
        const line: string[] = [];
        for (const framing of ['frames', 'json'] as const) {
          // each run pushes the template's samples again: the KB upserts them (same cost as new ones on the wire)
          const e = edgeWithOutbox(kbSlow, tplSlow.db, link.url);
          const r = await sedna(e.home, ['sync', '--push-only', '--json', ...(framing === 'json' ? ['--framing', 'json'] : [])]);
          if (r.code !== 0) throw new Error(`slow push (${framing}): exit ${r.code}: ${r.stderr}`);
          const st = JSON.parse(r.stdout) as { acked: number; bytes_up: number; push_ms: number; push_framing: string };
          if (st.acked !== SLOW_N || st.push_framing !== framing) throw new Error(`slow push acked ${st.acked} of ${SLOW_N} as ${st.push_framing}`);
          e.cleanup();
          // body bytes per second of the push phase (negotiation, every batch and its ack) vs the link
          push[framing].push(st.bytes_up / (st.push_ms / 1000) / cap);
          payloadRate[framing].push(tplSlow.payloadBytes / (st.push_ms / 1000) / cap);
          line.push(`push ${framing} ${st.push_ms} ms, ${mb(st.bytes_up)} MB up (${((st.bytes_up / (st.push_ms / 1000) / cap) * 100).toFixed(0)} % of the link)`);
        }
        const e = makeEdge(kbSlow, { url: link.url });
        editConfig(e.home, (cf) => {
          cf.rollout.activate = 'manual';
        });
        const r = await sedna(e.home, ['sync', '--pull-only', '--json']);
        if (r.code !== 0) throw new Error(`slow pull: exit ${r.code}: ${r.stderr}`);
        const st = JSON.parse(r.stdout) as { model_bytes_down: number; download_ms: number };
        e.cleanup();
        pullUse.push(st.model_bytes_down / (st.download_ms / 1000) / cap);
        const out = join(work.dir, 'curl-slow.bin');
        const c = await runProc('curl', ['-sS', '-f', '-o', out, '-w', '%{time_starttransfer} %{time_total}', '-H', `authorization: Bearer ${kbSlow.deviceToken}`, `${link.url}/v1/blobs/${sha}`]);
        if (c.code !== 0 || statSync(out).size !== size) throw new Error(`curl slow pull: ${c.stderr}`);
        rmSync(out);
        curlUse.push(size / (c.ms / 1000) / cap);
        line.push(`pull ${st.download_ms} ms (${((pullUse[i]) * 100).toFixed(0)} %), curl ${c.ms.toFixed(0)} ms (${(curlUse[i] * 100).toFixed(0)} %)`);
        log(`  run ${i + 1}: ${line.join(', ')}`);
      }
    } finally {
      await link.close();
    }
    const r3 = (x: number) => +x.toFixed(3);
    results.slow_link = {
      mbit_s: SLOW_LINK.mbit,
      rtt_ms: SLOW_LINK.rttMs,
      push_samples: SLOW_N,
      push_payload_mb: mb(tplSlow.payloadBytes),
      // fraction of the link's capacity the push kept busy (request bodies; gzip when auto picks it)
      push_link_use_frames: r3(median(push.frames)),
      push_link_use_json: r3(median(push.json)),
      // payload bytes delivered per second vs the link (above 1 when gzip shrinks the bodies)
      push_payload_rate_frames: r3(median(payloadRate.frames)),
      push_payload_rate_json: r3(median(payloadRate.json)),
      pull_model_mb: mb(size),
      pull_link_use: r3(median(pullUse)),
      curl_pull_link_use: r3(median(curlUse)),
      aim: 0.9,
    };
    }

    // ---- 3. peak RSS on a big backlog ----
    if (PARTS.includes('rss')) {
    const big = Math.floor((RSS_MB * 1024 * 1024) / SIZE);
    log(`rss: building a ${RSS_MB} MB backlog (${big} samples)`);
    const tplBig = buildTemplate(work.dir, big);
    // pushed to the sink: the KB would take minutes to commit 1 GB, and the edge's memory
    // does not depend on who answers (one batch in flight, one marked, one being prepared)
    const e3 = edgeWithOutbox(kb, tplBig.db, sink.url);
    const r3 = await sedna(e3.home, ['sync', '--push-only', '--json'], ['/usr/bin/time', '-f', 'MAXRSS_KB=%M']);
    if (r3.code !== 0) throw new Error(`big push: exit ${r3.code}: ${r3.stderr}`);
    const rssKb = Number(/MAXRSS_KB=(\d+)/.exec(r3.stderr)?.[1]);
    const s3 = JSON.parse(r3.stdout) as { acked: number };
    results.rss = { backlog_mb: mb(tplBig.payloadBytes), samples: big, acked: s3.acked, peak_rss_mb: +(rssKb / 1024).toFixed(1), push_ms: Math.round(r3.ms), aim_mb: 200 };
    log(`  peak RSS ${(rssKb / 1024).toFixed(1)} MB pushing ${mb(tplBig.payloadBytes)} MB in ${(r3.ms / 1000).toFixed(1)} s`);
    e3.cleanup();
    rmSync(tplBig.db, { force: true });
    }

    // ---- 4. pull of a 50 MB model (and a bigger one) ----
    if (PARTS.includes('pull')) {
      for (const [key, dim] of [['pull', MODEL_DIM], ...(BIG_MODEL_DIM > 0 ? [['pull_big', BIG_MODEL_DIM] as const] : [])] as const) {
        results[key] = await benchPull(kb, work.dir, key, dim);
      }
      const small = results.pull as PullResult;
      const big = results.pull_big as PullResult | undefined;
      if (big) {
        // the bigger model separates what every run pays once (start-up, index, install, exit)
        // from the streaming: marginal MB/s between the two sizes, and the fixed part left
        const mbps = (ms: (r: PullResult) => number) => +((big.model_mb - small.model_mb) / ((ms(big) - ms(small)) / 1000)).toFixed(1);
        const syncMbps = mbps((r) => r.sync_ms);
        const curlMbps = mbps((r) => r.curl_ms);
        results.pull_split = {
          marginal_mb_s: { sync: syncMbps, curl: curlMbps, ratio: +(syncMbps / curlMbps).toFixed(3) },
          fixed_ms: { sync: Math.round(small.sync_ms - (small.model_mb / syncMbps) * 1000), curl: Math.round(small.curl_ms - (small.model_mb / curlMbps) * 1000) },
        };
      }
    }

    // ---- 5. start-up: commands with nothing to do vs `node -e 0` ----
    if (PARTS.includes('startup')) {
      results.startup = await benchStartup(kb);
    }
  } finally {
    sink.server.close();
    for (const k of kbs) await k.stop();
    work.cleanup();
  }
  mkdirSync(join(ROOT, 'bench', 'out'), { recursive: true });
  const file = join(ROOT, 'bench', 'out', 'sync.json');
  writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
  process.stdout.write(JSON.stringify(results, null, 2) + '\n');
  log(`wrote ${file}`);
}

await main();
