// npm run demo: the whole edge-cloud lifelong-learning loop on real MNIST, through the real CLI.
//
// On loopback, with the embedded defaults: a KB server (`sedna-ll kb serve` child process), one
// edge gateway home, and sites that appear one per round (digits rotated by a new angle, given
// as attribute `site`). Every step is a real `sedna-ll` command; the demo only writes the input
// files, plays the annotator (labels the uploaded samples from the dataset's ground truth) and
// keeps score. At the end: a per-round table, demo/out/report.html, every process stopped.
// Exit 0 when every step succeeded, 1 otherwise (130 on Ctrl-C).
// `--images`: the same loop with PNG files on the edge (one per digit, `infer DIR`), image
// samples uploaded and imported as PNG (`kb samples import DIR --labels`), and the KB choosing
// its convolutional network for them.
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { LABELS, DIM, rotationPlan, applyRotation, loadMnist, permutation, type Samples } from '../bench/lib/mnist.js';
import { renderDemoReport, type RoundRow } from './report.js';
import { writeDigitDir, writeLabelsCsv } from './images.js';

const IMAGES = process.argv.includes('--images');

const ROOT = resolve(import.meta.dirname, '..');
const OUT = join(ROOT, 'demo', 'out');
// The demo runs a snapshot of the build (bin + dist + package.json under .tmp/, where
// node_modules still resolves), so a rebuild of dist/ while it runs cannot break it midway.
const SNAP = join(ROOT, '.tmp', `demo-${process.pid}`);
const BIN = join(SNAP, 'bin', 'sedna-ll');

// ---- the scenario (small enough for <= 3 minutes on 2 cores, big enough to learn real models) ----
const ANGLES = [0, 30, 60, 90, 120]; // site 0 is known at the start; one new site per round
const INITIAL = 1500; // labelled samples of site 0 for the initial KB
const NEW_SITE = 1000; // samples of the new site in its first round's stream
const TRAFFIC = 300; // samples of every already-known site in each round's stream
const TEST = 500; // held-out test samples per site (MNIST test split), never uploaded
const SEED = 7;
const siteOf = (angle: number) => `rot-${String(angle).padStart(3, '0')}`;

const children = new Set<ChildProcess>();
let work = '';
let stopping = false;

function stopAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
}

/** SIGTERM every child, wait up to 5 s for each, then SIGKILL what is left. */
async function stopAllAndWait(): Promise<void> {
  const alive = [...children].filter((c) => c.exitCode === null && c.signalCode === null);
  await Promise.all(
    alive.map(
      (c) =>
        new Promise<void>((res) => {
          const t = setTimeout(() => {
            c.kill('SIGKILL');
            res();
          }, 5000);
          c.once('exit', () => {
            clearTimeout(t);
            res();
          });
          c.kill('SIGTERM');
        }),
    ),
  );
}

function cleanup(): void {
  stopAll();
  if (work && !process.env.SEDNA_LL_DEMO_KEEP) rmSync(work, { recursive: true, force: true });
  rmSync(SNAP, { recursive: true, force: true });
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\ndemo: ${sig}, stopping every process it started\n`);
    cleanup();
    process.exit(130);
  });
}

const t0 = performance.now();
const clock = () => `${((performance.now() - t0) / 1000).toFixed(1).padStart(5)}s`;
const short = (p: string) => (work && p.startsWith(work) ? `$W${p.slice(work.length)}` : p);

class StepError extends Error {}

/** Run one sedna-ll command; fail the demo (StepError) on an unexpected exit code. */
async function sedna(args: string[], o: { env?: NodeJS.ProcessEnv; ok?: number[]; quiet?: boolean } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  if (!o.quiet) process.stdout.write(`${clock()}  $ sedna-ll ${args.map(short).join(' ')}\n`);
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, ...o.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', (c: Buffer) => out.push(c));
  child.stderr!.on('data', (c: Buffer) => err.push(c));
  const code = await new Promise<number>((res, rej) => {
    child.on('error', rej);
    child.on('close', (c, sig) => res(c ?? (sig ? 128 : 1)));
  });
  children.delete(child);
  const r = { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
  if (!(o.ok ?? [0]).includes(code)) {
    throw new StepError(`"sedna-ll ${args.map(short).join(' ')}" exited ${code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ') || r.stdout.trim().slice(-300)}`);
  }
  return r;
}

/** `sedna-ll kb serve --port 0` as a child; resolves with its URL once it listens. */
async function startKb(data: string): Promise<{ url: string; child: ChildProcess }> {
  process.stdout.write(`${clock()}  $ sedna-ll kb serve --data ${short(data)} --port 0 &\n`);
  const child = spawn(process.execPath, [BIN, 'kb', 'serve', '--data', data, '--host', '127.0.0.1', '--port', '0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let errText = '';
  child.stderr!.on('data', (c: Buffer) => (errText += c.toString()));
  const url = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new StepError(`kb serve did not report "listening" within 120 s: ${errText.trim()}`)), 120_000);
    createInterface({ input: child.stdout! }).on('line', (l) => {
      const m = /"listening":"([^"]+)"/.exec(l);
      if (m) {
        clearTimeout(timer);
        res(m[1]);
      }
    });
    child.on('exit', (c) => {
      clearTimeout(timer);
      rej(new StepError(`kb serve exited ${c} before listening: ${errText.trim()}`));
    });
  });
  child.on('exit', (c, sig) => {
    if (!stopping && sig !== 'SIGTERM') process.stderr.write(`demo: kb serve exited unexpectedly (${c ?? sig}): ${errText.trim()}\n`);
  });
  return { url, child };
}

// ---- data: real MNIST digits, rotated per site ----
const train = loadMnist('train');
const test = loadMnist('test');
const trainOrder = permutation(train.n, SEED);
let trainNext = 0;
const testOrder = permutation(test.n, SEED + 1);

/** `n` fresh training digits rotated by `angle` (each digit is used once in the whole demo). */
function draw(angle: number, n: number): Samples {
  const plan = rotationPlan(angle);
  const x = new Float32Array(n * DIM);
  const y = new Uint8Array(n);
  for (let k = 0; k < n; k++) {
    const i = trainOrder[trainNext++];
    applyRotation(train.pixels.subarray(i * DIM, (i + 1) * DIM), plan, x.subarray(k * DIM, (k + 1) * DIM), 1 / 255);
    y[k] = train.labels[i];
  }
  return { n, x, y };
}

/** The test set of a site: the same TEST test-split digits for every site, rotated. */
function testSet(angle: number): Samples {
  const plan = rotationPlan(angle);
  const x = new Float32Array(TEST * DIM);
  const y = new Uint8Array(TEST);
  for (let k = 0; k < TEST; k++) {
    const i = testOrder[k];
    applyRotation(test.pixels.subarray(i * DIM, (i + 1) * DIM), plan, x.subarray(k * DIM, (k + 1) * DIM), 1 / 255);
    y[k] = test.labels[i];
  }
  return { n: TEST, x, y };
}

const vec = (s: Samples, i: number) => Array.from(s.x.subarray(i * DIM, (i + 1) * DIM), (v) => Math.round(v * 1000) / 1000);

interface Rec {
  id: string;
  site: string;
  y: number;
  x: number[];
}

function writeJsonl(file: string, recs: Rec[], withLabel: boolean): void {
  const lines = recs.map((r) => JSON.stringify(withLabel ? { id: r.id, x: r.x, label: LABELS[r.y], attrs: { site: r.site } } : { id: r.id, x: r.x, attrs: { site: r.site } }));
  writeFileSync(file, lines.join('\n') + '\n');
}

function shuffle<T>(a: T[], seed: number): T[] {
  const p = permutation(a.length, seed);
  return Array.from(p, (i) => a[i]);
}

interface InferLine {
  id: string;
  task: string;
  label: string | null;
  hard: boolean;
  unseen: boolean;
  logged: boolean;
  sample_id?: string;
}

const parseLines = <T>(s: string): T[] =>
  s
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as T);

async function main(): Promise<number> {
  mkdirSync(OUT, { recursive: true });
  cpSync(join(ROOT, 'dist'), join(SNAP, 'dist'), { recursive: true });
  cpSync(join(ROOT, 'bin'), join(SNAP, 'bin'), { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(SNAP, 'package.json'));
  work = mkdtempSync(join(tmpdir(), 'sedna-ll-demo-'));
  const kbData = join(work, 'kb');
  const home = join(work, 'edge');
  const tokenFile = join(work, 'edge.token');
  const keyFile = join(work, 'kb.pub');
  process.stdout.write(`sedna-ll demo: edge-cloud lifelong learning on real MNIST${IMAGES ? ', as PNG files on the edge' : ''} (work dir $W = ${work})\n`);
  process.stdout.write(`sites appear one per round, digits rotated by ${ANGLES.join('°, ')}°; attribute "site"\n\n`);

  const sites = ANGLES.map(siteOf);
  const tests = ANGLES.map(testSet);
  const testFile = join(work, 'test.jsonl');
  const testRecs: Rec[] = [];
  tests.forEach((t, s) => {
    for (let i = 0; i < t.n; i++) testRecs.push({ id: `test-${sites[s]}-${i}`, site: sites[s], y: t.y[i], x: vec(t, i) });
  });
  writeJsonl(testFile, testRecs, false);

  // --images: each site's test digits as a directory of PNGs, inferred with the site attribute
  const testDirs = IMAGES ? tests.map((t, s) => ({ dir: join(work, 'test-png', sites[s]), names: writeDigitDir(join(work, 'test-png', sites[s]), t, 'test') })) : [];
  const evaluateImages = async (): Promise<Record<string, number>> => {
    const acc: Record<string, number> = {};
    for (let s = 0; s < sites.length; s++) {
      const r = await sedna(['infer', testDirs[s].dir, '--home', home, '--no-log', '--strict', '--attrs', `site=${sites[s]}`], { quiet: true });
      const lines = parseLines<InferLine>(r.stdout);
      const truth = new Map(testDirs[s].names.map((n, i) => [n, LABELS[tests[s].y[i]]]));
      if (lines.length !== truth.size) throw new StepError(`infer on ${sites[s]}'s test images printed ${lines.length} lines for ${truth.size} files`);
      acc[sites[s]] = lines.filter((l) => l.label === truth.get(l.id)).length / TEST;
    }
    return acc;
  };
  /** per-site test accuracy of the edge's active version (`infer --no-log`: nothing is uploaded) */
  const evaluate = async (): Promise<Record<string, number>> => {
    if (IMAGES) return evaluateImages();
    const r = await sedna(['infer', testFile, '--home', home, '--no-log', '--strict'], { quiet: true });
    const lines = parseLines<InferLine>(r.stdout);
    if (lines.length !== testRecs.length) throw new StepError(`infer on the test set printed ${lines.length} lines for ${testRecs.length} samples`);
    const ok: Record<string, number> = {};
    lines.forEach((l, i) => {
      const rec = testRecs[i];
      if (l.id !== rec.id) throw new StepError(`infer output out of order at line ${i + 1}: ${l.id} != ${rec.id}`);
      if (l.label === LABELS[rec.y]) ok[rec.site] = (ok[rec.site] ?? 0) + 1;
    });
    return Object.fromEntries(sites.map((s) => [s, (ok[s] ?? 0) / TEST]));
  };
  const status = async () => JSON.parse((await sedna(['status', '--home', home, '--json'], { quiet: true })).stdout) as Record<string, unknown>;
  /** "v2 (trial)": the edge's active version and its rollout state, from `status --json` */
  const activeOf = (st: Record<string, unknown>): string | null => {
    const a = st.active_version as string | null | undefined;
    if (a === undefined || a === null) return null;
    const v = (st.versions as { id: string; state: string }[] | undefined)?.find((x) => x.id === a);
    return `v${a}${v && v.state !== 'active' ? ` (${v.state})` : ''}`;
  };
  const tasksOf = (st: Record<string, unknown>): string[] => ((st.tasks as { id: string }[] | undefined) ?? []).map((t) => t.id);
  const kbTrain = async () => {
    const r = await sedna(['kb', 'train', '--data', kbData, '--seed', String(SEED), '--json']);
    const rep = JSON.parse(r.stdout) as { version: number | null; message: string; duration_ms: number; tasks: { task: string; kind: string; accepted: boolean | null; verdict?: string; pinned?: { from: string }; test?: { p: number } | null; before: { accuracy: number } | null; after: { accuracy: number } | null }[] };
    process.stdout.write(`          ${rep.message}\n`);
    for (const t of rep.tasks.filter((x) => x.kind !== 'unchanged')) {
      process.stdout.write(`            ${t.task.padEnd(8)} ${t.kind.padEnd(6)} ${t.pinned ? 'pinned  ' : t.accepted ? 'accepted' : t.verdict === 'keep' ? 'kept    ' : 'rejected'}  held-out acc ${t.before ? t.before.accuracy.toFixed(3) : '  -  '} -> ${t.after ? t.after.accuracy.toFixed(3) : '-'}${t.test ? ` (p ${t.test.p})` : ''}${t.pinned ? ` (stays on ${t.pinned.from}'s model)` : ''}\n`);
    }
    return { version: rep.version, s: rep.duration_ms / 1000, tasks: rep.tasks.map((t) => ({ task: t.task, kind: t.kind, accepted: t.accepted, verdict: t.pinned ? 'pinned' : t.verdict, p: t.test?.p ?? null, before: t.before?.accuracy ?? null, after: t.after?.accuracy ?? null })) };
  };
  const sync = async () => {
    const r = await sedna(['sync', '--home', home, '--json']);
    const s = JSON.parse(r.stdout) as { acked: number; pulled_version: number | null; activated: boolean };
    process.stdout.write(`          pushed ${s.acked} sample(s); pulled ${s.pulled_version === null ? 'nothing new' : `version ${s.pulled_version}${s.activated ? ' (activated)' : ''}`}\n`);
    return s;
  };

  // ---- cloud and edge set-up ----
  // the admin token it prints is not needed: every kb command here works on the data dir
  await sedna(['kb', 'init', '--data', kbData, '--json']);
  const kb = await startKb(kbData);
  process.stdout.write(`          KB listening on ${kb.url}\n`);
  await sedna(['kb', 'device', 'add', 'gateway-1', '--data', kbData, '--token-out', tokenFile, '--key-out', keyFile]);
  await sedna(['init', '--home', home, '--device-id', 'gateway-1', '--kb-url', kb.url, '--token-file', tokenFile, '--kb-key', keyFile]);

  // ---- round 0: initial KB from site 0's labelled data ----
  process.stdout.write(`\n== round 0: initial knowledge base from ${INITIAL} labelled samples of ${sites[0]} ==\n`);
  const initial = draw(ANGLES[0], INITIAL);
  if (IMAGES) {
    const dir = join(work, 'initial-png');
    writeLabelsCsv(join(work, 'initial-labels.csv'), writeDigitDir(dir, initial, 'init'), initial, sites[0]);
    await sedna(['kb', 'samples', 'import', dir, '--labels', join(work, 'initial-labels.csv'), '--data', kbData, '--json']);
  } else {
    const initFile = join(work, 'initial.jsonl');
    writeJsonl(
      initFile,
      Array.from({ length: initial.n }, (_, i) => ({ id: `init-${i}`, site: sites[0], y: initial.y[i], x: vec(initial, i) })),
      true,
    );
    await sedna(['kb', 'samples', 'import', initFile, '--data', kbData, '--json']);
  }
  const tr0 = await kbTrain();
  await sync();
  const rows: RoundRow[] = [];
  const st0 = await status();
  rows.push({ round: 0, new_site: sites[0], inferred: 0, uploaded: 0, uploaded_unseen: 0, uploaded_hard: 0, stream_acc_new_site: null, labelled: initial.n, published: tr0.version, active: activeOf(st0), tasks: tasksOf(st0), acc: await evaluate(), train_s: tr0.s, kb_tasks: tr0.tasks });

  // ---- rounds 1..: a new site appears ----
  for (let r = 1; r < ANGLES.length; r++) {
    const site = sites[r];
    process.stdout.write(`\n== round ${r}: new site ${site} (digits rotated ${ANGLES[r]}°) joins ${sites.slice(0, r).join(', ')} ==\n`);
    const recs: Rec[] = [];
    const fresh = draw(ANGLES[r], NEW_SITE);
    for (let i = 0; i < fresh.n; i++) recs.push({ id: `r${r}-${site}-${i}`, site, y: fresh.y[i], x: vec(fresh, i) });
    for (let s = 0; s < r; s++) {
      const t = draw(ANGLES[s], TRAFFIC);
      for (let i = 0; i < t.n; i++) recs.push({ id: `r${r}-${sites[s]}-${i}`, site: sites[s], y: t.y[i], x: vec(t, i) });
    }
    const stream = IMAGES ? recs : shuffle(recs, SEED * 100 + r);
    let lines: InferLine[];
    if (IMAGES) {
      // one directory of PNGs per site (the site attribute is per run); file name = record id
      lines = [];
      for (const st of sites.slice(0, r + 1)) {
        const part = stream.filter((x) => x.site === st);
        const dir = join(work, `stream-${r}`, st);
        const digits: Samples = { n: part.length, x: Float32Array.from(part.flatMap((x) => x.x)), y: Uint8Array.from(part.map((x) => x.y)) };
        const names = writeDigitDir(dir, digits, `r${r}`);
        const inf = await sedna(['infer', dir, '--home', home, '--seed', String(SEED + r), '--attrs', `site=${st}`]);
        const byName = new Map(names.map((n, i) => [n, part[i].id]));
        lines.push(...parseLines<InferLine>(inf.stdout).map((l) => ({ ...l, id: byName.get(l.id) ?? l.id })));
      }
      const order = new Map(stream.map((x, i) => [x.id, i]));
      lines.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
    } else {
      const streamFile = join(work, `stream-${r}.jsonl`);
      writeJsonl(streamFile, stream, false);
      // the edge infers offline; hard and unseen samples land in the outbox
      const inf = await sedna(['infer', streamFile, '--home', home, '--seed', String(SEED + r)]);
      lines = parseLines<InferLine>(inf.stdout);
    }
    if (lines.length !== stream.length) throw new StepError(`infer printed ${lines.length} lines for ${stream.length} samples`);
    const truthBySample = new Map<string, string>();
    let unseen = 0;
    let hard = 0;
    let newOk = 0;
    lines.forEach((l, i) => {
      if (l.id !== stream[i].id) throw new StepError(`infer output out of order at line ${i + 1}`);
      if (stream[i].site === site && l.label === LABELS[stream[i].y]) newOk++;
      if (!l.logged) return;
      truthBySample.set(l.sample_id!, LABELS[stream[i].y]);
      if (l.unseen) unseen++;
      if (l.hard) hard++;
    });
    process.stdout.write(`          ${lines.length} inferred, ${truthBySample.size} logged to the outbox (${unseen} unseen, ${hard} hard); accuracy on the new site before learning it: ${(newOk / NEW_SITE).toFixed(3)}\n`);
    await sync();
    // the annotator: label what the KB received (ids from `kb samples ls`), by the dataset's labels
    const ls = (JSON.parse((await sedna(['kb', 'samples', 'ls', '--data', kbData, '--unlabelled', '--limit', '0', '--json'])).stdout) as { samples: { id: string }[] }).samples;
    const labelRows = ls.filter((s) => truthBySample.has(s.id)).map((s) => `${s.id},${truthBySample.get(s.id)}`);
    const labelFile = join(work, `labels-${r}.csv`);
    writeFileSync(labelFile, ['id,label', ...labelRows].join('\n') + '\n');
    process.stdout.write(`          annotator labels ${labelRows.length} uploaded sample(s)\n`);
    await sedna(['kb', 'label', 'import', labelFile, '--data', kbData, '--json']);
    const tr = await kbTrain();
    await sync();
    const st = await status();
    const acc = await evaluate();
    rows.push({
      round: r,
      new_site: site,
      inferred: lines.length,
      uploaded: truthBySample.size,
      uploaded_unseen: unseen,
      uploaded_hard: hard,
      stream_acc_new_site: newOk / NEW_SITE,
      labelled: labelRows.length,
      published: tr.version,
      active: activeOf(st),
      tasks: tasksOf(st),
      acc,
      train_s: tr.s,
      kb_tasks: tr.tasks,
    });
  }

  // ---- the table ----
  const final = await status();
  const versions = (JSON.parse((await sedna(['model', 'ls', '--home', home, '--json'], { quiet: true, ok: [0, 1, 2] })).stdout || 'null') as { versions: unknown } | null)?.versions ?? null;
  process.stdout.write(`\n== per-round results (test accuracy per site after the round; ${TEST} held-out digits per site) ==\n`);
  const head = ['round', 'new site', 'inferred', 'uploaded', 'labelled', 'published', 'edge active', 'tasks', ...sites];
  const table = rows.map((x) => [String(x.round), x.new_site ?? '-', String(x.inferred), String(x.uploaded), String(x.labelled), x.published === null ? '-' : `v${x.published}`, x.active ?? '-', String(x.tasks.length), ...sites.map((s, j) => (j <= x.round ? '' : '(') + x.acc[s].toFixed(3) + (j <= x.round ? '' : ')'))]);
  const w = head.map((h, i) => Math.max(h.length, ...table.map((t) => t[i].length)));
  for (const t of [head, ...table]) process.stdout.write(t.map((c, i) => c.padStart(w[i])).join('  ') + '\n');
  process.stdout.write(`(accuracy in parentheses: the site has not appeared yet; the edge serves it with the fallback "global" model;\n` + ` "trial": the version was just activated and is on trial until it has served its first inferences, see "sedna-ll model ls")\n`);
  const totalInferred = rows.reduce((a, x) => a + x.inferred, 0);
  const totalUploaded = rows.reduce((a, x) => a + x.uploaded, 0);
  process.stdout.write(`uploaded ${totalUploaded} of ${totalInferred} inferred samples (samples_transfer_ratio ${(totalUploaded / Math.max(1, totalInferred)).toFixed(3)})\n`);

  const report = join(OUT, 'report.html');
  writeFileSync(report, renderDemoReport({ rows, sites, angles: ANGLES, test_per_site: TEST, kb_url: kb.url, status: final, versions, generated_at: new Date().toISOString() }));
  process.stdout.write(`report: ${report}\n`);
  return 0;
}

let code = 1;
try {
  code = await main();
} catch (e) {
  process.stderr.write(`demo: FAILED: ${(e as Error).message}\n`);
  if (!(e instanceof StepError) && (e as Error).stack) process.stderr.write(`${(e as Error).stack}\n`);
  code = 1;
} finally {
  stopping = true;
  await stopAllAndWait();
  cleanup();
}
process.stdout.write(`demo ${code === 0 ? 'finished' : 'failed'} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
process.exit(code);
