// npm run bench:binaries — the single-file executables (issue 12): size of each binary and the
// x64 binary's start-up next to `node -e 0` of the very Node it embeds (and of the host's Node,
// for information), medians of interleaved runs, one machine, one run:
//   --version            aim <= 1.3x node -e 0
//   infer of one sample  aim <= 2x   node -e 0   (native cache already unpacked, as on every
//                                                 start after the first)
//   first infer          for information: a fresh native cache (unpacks ~48 MB once)
// and the same two commands through bin/sedna-ll (the npm install) for comparison. The arm64
// binary's size only: timings under qemu-user say nothing about a real arm64 gateway.
// Builds the binaries first if needed (cached). Table on stdout, JSON in bench/out/binaries.json.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ARCHES, NODE_VERSION, ROOT, TARGETS } from '../scripts/binaries/common.js';
import { nodeDist } from '../scripts/binaries/node-dist.js';
import { binaryPath } from '../scripts/binaries/sea.js';
import { buildBinaries } from '../scripts/build-binaries.js';
import { writeIdentityModel } from '../test/helpers/models.js';
import { median } from './lib/metrics.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 15);
const log = (s: string) => process.stderr.write(`bench:binaries: ${s}\n`);

await buildBinaries([...ARCHES]);
const bin = binaryPath(TARGETS.x64);
const node22 = join(nodeDist(TARGETS.x64), 'bin', 'node');
const tmp = mkdtempSync(join(tmpdir(), 'sedna-ll-bench-bin-'));
const env = { ...process.env, HOME: tmp, SEDNA_LL_HOME: join(tmp, 'home'), SEDNA_LL_CACHE_DIR: join(tmp, 'cache'), ORT_DISABLE_TELEMETRY: '1' };

/** wall ms of one run; a failure stops the bench (a timing of an error is no timing) */
function timed(cmd: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env: { ...env, ...extraEnv }, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return ms;
}

try {
  const one = join(tmp, 'one.jsonl');
  writeFileSync(one, '{"id":"a","x":[0.1,0.2,3]}\n');
  const model = writeIdentityModel(tmp, 'ident', 3, { softmax: true });
  for (const args of [['init', '--device-id', 'bench'], ['task', 'add', model, '--task', 'global']]) timed(bin, args);

  // first run on an empty native cache (unpack + verify), a few times
  const first: number[] = [];
  for (let i = 0; i < 3; i++) {
    const c = join(tmp, `cache-first-${i}`);
    first.push(timed(bin, ['infer', one, '--no-log'], { SEDNA_LL_CACHE_DIR: c }));
    rmSync(c, { recursive: true, force: true });
  }

  const cols = { node22: [] as number[], nodeHost: [] as number[], version: [] as number[], infer: [] as number[], npmVersion: [] as number[], npmInfer: [] as number[] };
  for (let i = 0; i < RUNS; i++) {
    // interleaved, so a busy moment on the shared machine hits every column alike
    cols.node22.push(timed(node22, ['-e', '0']));
    cols.nodeHost.push(timed(process.execPath, ['-e', '0']));
    cols.version.push(timed(bin, ['--version']));
    cols.infer.push(timed(bin, ['infer', one, '--no-log']));
    cols.npmVersion.push(timed(process.execPath, [join(ROOT, 'bin', 'sedna-ll'), '--version']));
    cols.npmInfer.push(timed(process.execPath, [join(ROOT, 'bin', 'sedna-ll'), 'infer', one, '--no-log']));
  }
  const m = Object.fromEntries(Object.entries(cols).map(([k, v]) => [k, median(v)])) as Record<keyof typeof cols, number>;
  const sizes = Object.fromEntries(ARCHES.map((a) => [a, statSync(binaryPath(TARGETS[a])).size]));
  const result = {
    node_version: NODE_VERSION,
    runs: RUNS,
    size_bytes: sizes,
    median_ms: { ...m, first_infer: median(first) },
    ratios: { version_vs_node: m.version / m.node22, infer_one_vs_node: m.infer / m.node22 },
    aims: { size_mb: 120, version_vs_node: 1.3, infer_one_vs_node: 2 },
  };
  mkdirSync(join(ROOT, 'bench', 'out'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'out', 'binaries.json'), JSON.stringify(result, null, 2) + '\n');
  const rows: string[][] = [
    ['measure', 'value', 'aim'],
    ...ARCHES.map((a) => [`size sedna-ll-linux-${a}`, `${(sizes[a] / 1e6).toFixed(1)} MB`, '<= 120 MB']),
    [`node ${NODE_VERSION} -e 0 (baseline)`, `${m.node22.toFixed(1)} ms`, ''],
    [`host node ${process.version} -e 0`, `${m.nodeHost.toFixed(1)} ms`, ''],
    ['binary --version', `${m.version.toFixed(1)} ms  ${result.ratios.version_vs_node.toFixed(2)}x`, '<= 1.3x'],
    ['binary infer, 1 sample', `${m.infer.toFixed(1)} ms  ${result.ratios.infer_one_vs_node.toFixed(2)}x`, '<= 2x'],
    ['binary first infer (unpacks natives)', `${median(first).toFixed(1)} ms`, ''],
    ['npm install: --version', `${m.npmVersion.toFixed(1)} ms`, ''],
    ['npm install: infer, 1 sample', `${m.npmInfer.toFixed(1)} ms`, ''],
  ];
  const w = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) process.stdout.write(r.map((x, c) => x.padEnd(w[c])).join('  ') + '\n');
  log(`medians of ${RUNS} interleaved runs; JSON in bench/out/binaries.json`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
