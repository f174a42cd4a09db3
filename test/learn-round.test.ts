// One learning round and the lifelong loop through the real CLI on a real KB (kb init, kb samples
// import, kb train, kb eval, kb versions, kb rounds). Synthetic sites: the same Gaussian class
// blobs rotated per site (test/helpers/learn-data.ts), so one global model cannot serve every
// site and a per-site model can.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, sedna, tempDir } from './helpers/cli.js';
import { blobsJsonl, siteBlobs } from './helpers/learn-data.js';

interface Outcome {
  task: string;
  kind: string;
  parent: string | null;
  accepted: boolean | null;
  reason: string;
  before: { accuracy: number } | null;
  after: { accuracy: number } | null;
  model_sha: string | null;
  epochs: number | null;
  train_ms: number | null;
  relation?: { scores: Record<string, number> };
  verdict?: 'accept' | 'keep' | 'reject';
  test?: { n: number; p: number; incumbent: number; candidate: number } | null;
  pinned?: { model_sha: string; from: string; reason: string };
  samples: { train: number; heldout: number; new: number };
}
interface Report {
  ran: boolean;
  round: number;
  version: number | null;
  message: string;
  tasks: Outcome[];
  clusters: { k: number; pool: number; why: string } | null;
  warnings: string[];
}

function kb(dir: string) {
  const env = { SEDNA_LL_KB_DATA: join(dir, 'kb') };
  const run = (args: string[], expect = 0) => {
    const r = sedna(args, { env, timeoutMs: 180_000 });
    assert.equal(r.code, expect, `sedna-ll ${args.join(' ')} -> ${r.code}\n${r.stderr}\n${r.stdout}`);
    return r;
  };
  const json = <T>(args: string[]) => JSON.parse(run([...args, '--json']).stdout) as T;
  const site = (name: string | null, angle: number, n: number, seed: number, extra: { offset?: number; shift?: number; file?: string } = {}) => {
    const f = join(dir, extra.file ?? `${name ?? 'none'}-${seed}.jsonl`);
    const shift = extra.shift ?? (name ? SHIFTS[name] : 0) ?? 0;
    writeFileSync(f, blobsJsonl(siteBlobs({ angle, n, seed, offset: extra.offset, labelShift: shift }), `sample-${name ?? 'none'}-${seed}`, name ? { site: name } : null));
    return f;
  };
  const importSite = (name: string | null, angle: number, n: number, seed: number, extra: { offset?: number; shift?: number } = {}) => {
    const r = run(['kb', 'samples', 'import', site(name, angle, n, seed, extra)]);
    assert.match(r.stdout, new RegExp(`^${n} sample\\(s\\) imported`), r.stdout + r.stderr);
    return r;
  };
  run(['kb', 'init']);
  return { run, json, site, importSite };
}

const byTask = (r: Report) => new Map(r.tasks.map((t) => [t.task, t]));
// sites: covariate shift (rotation) plus concept shift (labels shifted) so that sites conflict;
// D is a slightly rotated A (related: transfer from A pays off)
const ANGLES: Record<string, number> = { A: 0, B: 0.6, C: 1.2, D: 0.15 };
const SHIFTS: Record<string, number> = { A: 0, B: 1, C: 2, D: 0, tiny: 3 };

test('lifelong rounds: new sites become new tasks that beat the fallback, old tasks never change (BWT = 0), eval per version', { timeout: 300_000 }, () => {
  const { dir, cleanup } = tempDir('sedna-ll-learn-');
  try {
    const k = kb(dir);
    // held-out test files per site (never imported), to score every version like the edge would
    const testFiles = Object.fromEntries(Object.entries(ANGLES).map(([s, a], i) => [s, k.site(s, a, 200, 900 + i, { file: `test-${s}.jsonl` })]));
    const R: Record<string, number>[] = []; // R[round][site] = accuracy of the version after that round
    const evalAll = (version: number) => {
      const row: Record<string, number> = {};
      for (const [s, f] of Object.entries(testFiles)) {
        const e = k.json<{ version: number; tasks: { task: string; accuracy: number }[]; overall: { accuracy: number } }>(['kb', 'eval', f, '--kb-version', String(version)]);
        assert.equal(e.version, version);
        row[s] = e.overall.accuracy;
      }
      R.push(row);
      return row;
    };

    // round 1: sites A and B (+ 5 samples of a site too small to be a task)
    k.importSite('A', ANGLES.A, 200, 1);
    k.importSite('B', ANGLES.B, 200, 2);
    k.importSite('tiny', 2.0, 5, 3);
    const r1 = k.json<Report>(['kb', 'train']);
    assert.equal(r1.ran, true);
    assert.equal(r1.version, 1);
    const t1 = byTask(r1);
    assert.deepEqual([...t1.keys()].sort(), ['A', 'B', 'global']);
    assert.equal(t1.has('tiny'), false, 'a group below --min-samples is no task (global serves it)');
    for (const s of ['A', 'B']) {
      const t = t1.get(s)!;
      assert.equal(t.kind, 'new');
      assert.equal(t.accepted, true, t.reason);
      assert.ok(t.after!.accuracy > t.before!.accuracy, `${s}: ${t.reason}`);
    }
    const v1 = evalAll(1);

    // round 2: site C appears; its parent is chosen by scoring the existing models on its data
    k.importSite('C', ANGLES.C, 150, 4);
    const r2 = k.json<Report>(['kb', 'train']);
    const t2 = byTask(r2);
    const c = t2.get('C')!;
    assert.equal(c.kind, 'new');
    assert.equal(c.accepted, true, c.reason);
    assert.ok(c.after!.accuracy > c.before!.accuracy, `C beats the fallback: ${c.reason}`);
    // parent = the best scoring model when it knows something about C (>= twice chance), else none
    const [best, bestScore] = Object.entries(c.relation!.scores).sort((a, b) => b[1] - a[1])[0];
    assert.equal(c.parent, bestScore >= 0.5 ? best : null, `parent of C: ${JSON.stringify(c.relation)}`);
    for (const s of ['A', 'B']) {
      assert.equal(t2.get(s)!.kind, 'unchanged');
      assert.equal(t2.get(s)!.model_sha, t1.get(s)!.model_sha ?? t2.get(s)!.model_sha);
    }
    evalAll(2);

    // round 3: site D, close to A: transfer from A
    k.importSite('D', ANGLES.D, 100, 5);
    const r3 = k.json<Report>(['kb', 'train']);
    const d = byTask(r3).get('D')!;
    assert.equal(d.parent, 'A', JSON.stringify(d.relation));
    assert.equal(d.accepted, true, d.reason);
    const v3 = evalAll(3);

    // models of A and B were never replaced: their sha256 in every version is the round-1 one
    const diff = k.json<{ changed: string[]; added: string[]; tasks: { task: string; change: string }[] }>(['kb', 'versions', 'diff', '1', '3']);
    assert.deepEqual(diff.added.sort(), ['C', 'D']);
    assert.ok(!diff.changed.includes('A') && !diff.changed.includes('B'), JSON.stringify(diff));
    const versions = k.json<{ versions: { version: number; changed: string[] }[] }>(['kb', 'versions']).versions;
    assert.deepEqual(versions.map((v) => v.version), [1, 2, 3]);
    assert.ok(!versions[1].changed.includes('A') && !versions[2].changed.includes('B'));

    // BWT over the old sites: accuracy after the last round minus right after they were learnt
    const bwt = (['A', 'B'] as const).reduce((s, x) => s + (v3[x] - v1[x]), 0) / 2;
    assert.equal(bwt, 0, `BWT ${bwt}: R = ${JSON.stringify(R)}`);
    assert.ok(v3.C > R[0].C + 0.2, `C learnt: ${JSON.stringify(R)}`);
    process.stdout.write(`# accuracy matrix (rows: version 1..3, test sets of sites): ${JSON.stringify(R)}\n`);

    // round 4: more samples of A -> A is updated on its own data, gated on its own (grown) held-out set
    k.importSite('A', ANGLES.A, 100, 6);
    const r4 = k.json<Report>(['kb', 'train']);
    const a4 = byTask(r4).get('A')!;
    assert.equal(a4.kind, 'update');
    assert.notEqual(a4.accepted, null);
    // paired gate: a significant gain replaces the model, a significant loss is rejected, noise keeps it
    assert.equal(a4.test!.n, a4.samples.heldout);
    if (a4.verdict === 'accept') assert.ok(a4.after!.accuracy > a4.before!.accuracy && a4.test!.p < 0.05);
    else if (a4.verdict === 'reject') assert.ok(a4.after!.accuracy < a4.before!.accuracy && a4.test!.p < 0.05);
    else assert.ok(a4.verdict === 'keep' && a4.test!.p >= 0.05 && !a4.accepted, JSON.stringify(a4));
    for (const s of ['B', 'C', 'D']) assert.equal(byTask(r4).get(s)!.kind, 'unchanged');
    const v4 = evalAll(r4.version ?? 3);
    assert.ok(Math.abs(v4.B - v1.B) < 1e-9 && Math.abs(v4.C - v3.C) < 1e-9, 'untouched tasks score exactly the same');
    assert.ok(v4.A >= v1.A - 0.03, `A within noise after its update: ${v1.A} -> ${v4.A}`);

    // history per task and round
    const hist = k.json<{ rounds: { round: number; task: string; kind: string; accepted: boolean }[] }>(['kb', 'rounds']).rounds;
    assert.ok(hist.some((h) => h.round === 2 && h.task === 'C' && h.kind === 'new' && h.accepted));
    assert.ok(hist.some((h) => h.round === 4 && h.task === 'A' && h.kind === 'update'));
    // the table form and CSV eval
    assert.match(k.run(['kb', 'train']).stdout, /no task has new labelled samples; nothing published/);
    const csv = join(dir, 'eval.csv');
    writeFileSync(csv, 'site,label,f0,f1,f2,f3,f4,f5,f6,f7\n' + csvRows('B', ANGLES.B, SHIFTS.B));
    const ev = k.run(['kb', 'eval', csv]).stdout;
    const bRow = /^B\s+40\s+(\S+)/m.exec(ev);
    assert.ok(bRow && Number(bRow[1]) > 0.8, ev);
  } finally {
    cleanup();
  }
});

function csvRows(site: string, angle: number, labelShift: number): string {
  const b = siteBlobs({ angle, n: 40, seed: 77, labelShift });
  const labels = ['a', 'b', 'c', 'd'];
  let s = '';
  for (let i = 0; i < b.n; i++) s += `${site},${labels[b.y[i]]},${Array.from(b.X.subarray(i * 8, i * 8 + 8)).join(',')}\n`;
  return s;
}

// A tiny external trainer: nearest class mean as a linear softmax model (logits_c = 2 mu_c.x - |mu_c|^2),
// or a model that always answers the first label: PLUGIN_MODE=bad for updates, badnew for new tasks.
const PLUGIN = `
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeDenseOnnx } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist', 'onnx', 'writer.js')).href)};
const [dir, out, parent] = process.argv.slice(2);
if (dir !== process.env.SEDNA_LL_TASK_DIR || out !== process.env.SEDNA_LL_OUT_DIR || parent !== process.env.SEDNA_LL_PARENT_MODEL) throw new Error('args and env disagree');
const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8'));
const rows = readFileSync(join(dir, 'train.jsonl'), 'utf8').trim().split('\\n').map((l) => JSON.parse(l));
const k = meta.labels.length, d = meta.dim;
const W = new Float32Array(d * k), b = new Float32Array(k);
const mode = process.env.PLUGIN_MODE;
const bad = (mode === 'bad' && meta.kind !== 'new') || (mode === 'badnew' && meta.kind === 'new');
if (bad) b[0] = 10;
else meta.labels.forEach((lab, c) => {
  const mine = rows.filter((r) => r.label === lab);
  const mu = new Float64Array(d);
  for (const r of mine) r.x.forEach((v, j) => (mu[j] += v / mine.length));
  let sq = 0;
  mu.forEach((v, j) => { W[j * k + c] = 2 * v; sq += v * v; });
  b[c] = mine.length ? -sq : -1e9;
});
writeFileSync(join(out, 'model.onnx'), writeDenseOnnx({ layers: [{ inDim: d, outDim: k, W, b }], softmax: true, inputName: 'x', outputName: 'p' }));
writeFileSync(join(out, 'metrics.json'), JSON.stringify({ arch: 'nearest-mean', train_samples: rows.length, parent_given: parent !== '' }));
`;

test('--trainer-cmd plug-in: its models are gated like built-in ones; a worse update is rejected with numbers and nothing is published', { timeout: 120_000 }, () => {
  const { dir, cleanup } = tempDir('sedna-ll-learn-');
  try {
    const k = kb(dir);
    const plugin = join(dir, 'plugin.mjs');
    writeFileSync(plugin, PLUGIN);
    k.importSite('A', ANGLES.A, 120, 1);
    k.importSite('B', ANGLES.B, 120, 2);
    const r1 = k.json<Report>(['kb', 'train', '--trainer-cmd', `node ${plugin}`]);
    const t1 = byTask(r1);
    assert.equal(r1.version, 1);
    assert.equal(t1.get('A')!.accepted, true, t1.get('A')!.reason);
    assert.ok(t1.get('A')!.after!.accuracy > 0.85);
    const tasks = k.json<{ tasks: { id: string; arch?: string; outputs: { name: string }[] }[] }>(['kb', 'tasks']).tasks;
    assert.equal(tasks.find((t) => t.id === 'A')!.arch, 'nearest-mean');
    assert.equal(tasks.find((t) => t.id === 'A')!.outputs[0].name, 'p');

    // new samples of A; the plug-in now produces a constant model for updates: rejected
    k.importSite('A', ANGLES.A, 60, 3);
    const r = sedna(['kb', 'train', '--trainer-cmd', `node ${plugin}`, '--json'], { env: { SEDNA_LL_KB_DATA: join(dir, 'kb'), PLUGIN_MODE: 'bad' } });
    assert.equal(r.code, 0, r.stderr);
    const r2 = JSON.parse(r.stdout) as Report;
    const a = byTask(r2).get('A')!;
    assert.equal(a.kind, 'update');
    assert.equal(a.accepted, false);
    assert.ok(a.after!.accuracy < a.before!.accuracy, a.reason);
    assert.match(a.reason, /significant loss against the current model: n=\d+ accuracy 1\.0000 -> 0\.\d{4}, McNemar mid-p \S+ \(loss at 0\.05\)/);
    assert.equal(a.verdict, 'reject');
    assert.equal(r2.version, null);
    assert.match(r2.message, /no candidate passed the gate/);
    assert.deepEqual(k.json<{ versions: unknown[] }>(['kb', 'versions']).versions.length, 1);
    const hist = k.json<{ rounds: { round: number; task: string; accepted: boolean; before: number; after: number }[] }>(['kb', 'rounds']).rounds;
    const rej = hist.find((h) => h.round === 2 && h.task === 'A')!;
    assert.equal(rej.accepted, false);
    assert.ok(rej.before > rej.after);

    // a failing plug-in: exit 1, one line naming the task
    const f = sedna(['kb', 'train', '--trainer-cmd', 'exit 3'], { env: { SEDNA_LL_KB_DATA: join(dir, 'kb') } });
    k.importSite('A', ANGLES.A, 20, 4);
    const f2 = sedna(['kb', 'train', '--trainer-cmd', 'exit 3'], { env: { SEDNA_LL_KB_DATA: join(dir, 'kb') } });
    assert.equal(f.code, 0, 'nothing new: the plug-in is not even run');
    assert.equal(f2.code, 1);
    assert.match(f2.stderr, /--trainer-cmd failed for task \S+ \(exit 3\)/);
  } finally {
    cleanup();
  }
});

test('samples without attributes cluster into the right number of new tasks; later ones join them by centroid radius', { timeout: 120_000 }, () => {
  const { dir, cleanup } = tempDir('sedna-ll-learn-');
  try {
    const k = kb(dir);
    // as the edge uploads unseen samples: no attributes and no labels yet (a known site A too)
    k.importSite('A', 0, 60, 9);
    const files = [k.site(null, 0, 120, 1, { offset: 12 }), k.site(null, Math.PI / 2, 120, 2, { offset: -12, shift: 1 })];
    const labels: string[] = [];
    for (const f of files) {
      const unlabelled = join(dir, `unlabelled-${labels.length}.jsonl`);
      const rows = readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; label: string });
      writeFileSync(unlabelled, rows.map(({ label, ...rest }) => JSON.stringify(rest)).join('\n') + '\n');
      labels.push(...rows.map((r) => JSON.stringify({ id: r.id, label: r.label })));
      k.run(['kb', 'samples', 'import', unlabelled]);
    }
    const r0 = k.json<Report>(['kb', 'train', '--arch', 'softmax']);
    assert.equal(r0.clusters?.k, 2, `the unlabelled samples form two groups: ${JSON.stringify(r0.clusters)}`);
    assert.match(r0.clusters!.why, /^k=2: the best silhouette \(0\.\d+\) of k=2\.\.\d, >= 0\.5$/);
    assert.equal(r0.tasks.filter((t) => t.task.startsWith('cluster-')).length, 0, 'no labels yet: no model for them');
    // the annotator labels them; the next round turns each group into a task
    const labelFile = join(dir, 'labels.jsonl');
    writeFileSync(labelFile, labels.join('\n') + '\n');
    k.run(['kb', 'label', 'import', labelFile]);
    const r1 = k.json<Report>(['kb', 'train', '--arch', 'softmax']);
    assert.equal(r1.clusters?.k, 2, JSON.stringify(r1.clusters));
    const clusters = r1.tasks.filter((t) => t.task.startsWith('cluster-'));
    assert.equal(clusters.length, 2, JSON.stringify(r1.tasks.map((t) => t.task)));
    assert.ok(clusters.every((t) => t.kind === 'new' && t.accepted), JSON.stringify(clusters));
    const tasks = k.json<{ tasks: { id: string; centroid: number[] | null; radius: number | null; thresholds: { confidence: number } | null }[] }>(['kb', 'tasks']).tasks;
    for (const t of tasks.filter((x) => x.id.startsWith('cluster-'))) {
      assert.equal(t.centroid?.length, 8);
      assert.ok((t.radius ?? 0) > 0 && t.thresholds!.confidence > 0);
    }
    // more samples like the first group: no new cluster, they join an existing one
    k.importSite(null, 0, 40, 3, { offset: 12 });
    const r2 = k.json<Report>(['kb', 'train', '--arch', 'softmax']);
    assert.equal(r2.tasks.filter((t) => t.kind === 'new').length, 0, JSON.stringify(r2.tasks.map((t) => [t.task, t.kind])));
    assert.equal(r2.clusters, null);
  } finally {
    cleanup();
  }
});

test('kb train --when/--window from cron: not due -> exit 0 and a message, nothing trained; bad expressions are usage errors', { timeout: 120_000 }, () => {
  const { dir, cleanup } = tempDir('sedna-ll-learn-');
  try {
    const k = kb(dir);
    assert.match(k.run(['kb', 'train']).stdout, /nothing to train/);
    k.importSite('A', 0, 30, 1);
    const notDue = k.run(['kb', 'train', '--when', 'labelled_new >= 1000']);
    assert.match(notDue.stdout, /not due \(labelled_new 30 >= 1000: no\); nothing to do/);
    const now = new Date();
    const hh = (h: number) => String((now.getHours() + h) % 24).padStart(2, '0');
    assert.match(k.run(['kb', 'train', '--window', `${hh(2)}:00-${hh(3)}:00`]).stdout, /outside the window/);
    assert.equal(k.json<{ versions: unknown[] }>(['kb', 'versions']).versions.length, 0);
    k.run(['kb', 'train', '--when', 'labeled_new > 1'], 2);
    k.run(['kb', 'train', '--when', 'labelled_new >> 1'], 2);
    k.run(['kb', 'train', '--window', '9-17'], 2);
    k.run(['kb', 'train', '--metric', 'f2'], 2);
    // due (Sedna alias, and, window that wraps around now)
    const due = k.json<Report>(['kb', 'train', '--when', 'labelled_new ge 30 and samples_total gt 0', '--window', `${hh(23)}:00-${hh(2)}:00`]);
    assert.equal(due.ran, true);
    assert.equal(due.version, 1);
    // counters were reset by the round
    assert.match(k.run(['kb', 'train', '--when', 'labelled_new >= 1']).stdout, /labelled_new 0 >= 1: no/);
    // one round at a time: a live lock holder -> exit 6; a dead one (killed run) is taken over
    const lock = join(dir, 'kb', 'tmp', 'train.lock');
    writeFileSync(lock, String(process.pid));
    assert.match(k.run(['kb', 'train'], 6).stderr, /another kb train is running \(pid \d+/);
    writeFileSync(lock, '2147483646');
    assert.match(k.run(['kb', 'train']).stdout, /nothing published/);
    assert.equal(existsSync(lock), false);
  } finally {
    cleanup();
  }
});

test('a round is deterministic: same data and seed -> the same model bytes, whatever the number of worker threads', { timeout: 120_000 }, () => {
  const dirs = [tempDir('sedna-ll-learn-'), tempDir('sedna-ll-learn-')];
  try {
    const shas = dirs.map(({ dir }, i) => {
      const k = kb(dir);
      k.importSite('A', ANGLES.A, 100, 1);
      k.importSite('B', ANGLES.B, 100, 2);
      k.importSite('C', ANGLES.C, 100, 3);
      const r = k.json<Report>(['kb', 'train', '--threads', String(i + 1), '--hidden', '32']);
      return Object.fromEntries(r.tasks.map((t) => [t.task, t.model_sha]));
    });
    assert.equal(Object.keys(shas[0]).length, 4);
    assert.ok(Object.values(shas[0]).filter(Boolean).length >= 3, JSON.stringify(shas[0]));
    assert.deepEqual(shas[0], shas[1]);
  } finally {
    for (const d of dirs) d.cleanup();
  }
});

test('a new task that does not beat the fallback is still a task, served by the fallback model; a later, worse fallback does not replace it', { timeout: 120_000 }, () => {
  const { dir, cleanup } = tempDir('sedna-ll-learn-');
  try {
    const k = kb(dir);
    const plugin = join(dir, 'plugin.mjs');
    writeFileSync(plugin, PLUGIN);
    const env = (mode: string) => ({ SEDNA_LL_KB_DATA: join(dir, 'kb'), PLUGIN_MODE: mode });
    const train = (mode: string) => {
      const r = sedna(['kb', 'train', '--trainer-cmd', `node ${plugin}`, '--json'], { env: env(mode) });
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as Report;
    };
    k.importSite('A', ANGLES.A, 150, 1);
    const r1 = train('badnew');
    const a1 = byTask(r1).get('A')!;
    const g1 = byTask(r1).get('global')!;
    assert.equal(a1.accepted, false);
    assert.match(a1.reason, /served by the fallback model/);
    assert.equal(r1.version, 1);
    type T = { id: string; model_sha: string; parent: string | null; attrs: Record<string, string> };
    const v1 = k.json<{ tasks: T[] }>(['kb', 'tasks']).tasks;
    const A1 = v1.find((t) => t.id === 'A')!;
    assert.equal(A1.model_sha, g1.model_sha, 'A points at the fallback model: nothing extra to download');
    assert.deepEqual(A1.attrs, { site: 'A' });
    assert.equal(A1.parent, 'global');
    const testA = k.site('A', ANGLES.A, 200, 901, { file: 'test-A.jsonl' });
    const acc = (v: number) => k.json<{ overall: { accuracy: number } }>(['kb', 'eval', testA, '--kb-version', String(v)]).overall.accuracy;
    const before = acc(1);

    // site B conflicts with A (labels shifted) and outnumbers it: the fallback refitted to both
    // (built-in trainer) is significantly better overall but significantly worse on A, so A is
    // pinned to the earlier fallback model
    k.importSite('B', ANGLES.B, 600, 2);
    const r2 = k.json<Report>(['kb', 'train', '--hidden', '16']);
    const t2 = byTask(r2);
    assert.equal(t2.get('global')!.accepted, true, t2.get('global')!.reason);
    // B: its own model only on a significant gain over the new fallback (fitted mostly to B)
    assert.ok(t2.get('B')!.verdict === 'accept' || t2.get('B')!.verdict === 'keep', t2.get('B')!.reason);
    assert.match(t2.get('A')!.reason, /pinned to the model that served it before \(A\): the new fallback is significantly worse here \(n=30 accuracy/);
    assert.equal(t2.get('A')!.pinned?.model_sha, A1.model_sha);
    const A2 = k.json<{ tasks: T[] }>(['kb', 'tasks']).tasks.find((t) => t.id === 'A')!;
    assert.equal(A2.model_sha, A1.model_sha);
    assert.notEqual(A2.model_sha, t2.get('global')!.model_sha);
    assert.ok(acc(r2.version!) >= before, `A after the fallback changed: ${before} -> ${acc(r2.version!)}`);
  } finally {
    cleanup();
  }
});

test('a site without a task of its own, served by the fallback, keeps its accuracy when the fallback is retrained on a conflicting site (pinned, reported)', { timeout: 180_000 }, () => {
  const { dir, cleanup } = tempDir('sedna-ll-learn-');
  try {
    const k = kb(dir);
    // --min-samples 1000: no site becomes a task; the fallback serves every one of them
    const train = () => k.json<Report & { tasks: Outcome[] }>(['kb', 'train', '--min-samples', '1000', '--hidden', '16']);
    k.importSite('A', ANGLES.A, 150, 1);
    const r1 = train();
    assert.deepEqual(r1.tasks.map((t) => t.task), ['global']);
    const g1 = r1.tasks[0].model_sha!;
    const testA = k.site('A', ANGLES.A, 200, 901, { file: 'test-A.jsonl' });
    const acc = (v: number) => k.json<{ overall: { accuracy: number }; tasks: { task: string }[] }>(['kb', 'eval', testA, '--kb-version', String(v)]);
    const before = acc(1);
    assert.deepEqual(before.tasks.map((t) => t.task), ['global']);

    // B conflicts with A (labels shifted) and outnumbers it: the retrained fallback is
    // significantly better overall and significantly worse on A's held-out samples
    k.importSite('B', ANGLES.B, 600, 2);
    const r2 = train();
    const t2 = byTask(r2);
    assert.equal(t2.get('global')!.verdict, 'accept', t2.get('global')!.reason);
    const a = t2.get('A')!;
    assert.ok(a, `A reported: ${JSON.stringify(r2.tasks.map((t) => t.task))}`);
    assert.equal(a.pinned?.model_sha, g1, a.reason);
    assert.equal(a.pinned?.from, 'global');
    assert.ok(a.test!.p < 0.05 && a.test!.candidate < a.test!.incumbent && a.test!.n === 30, JSON.stringify(a.test));
    assert.notEqual(r2.version, null);
    const after = acc(r2.version!);
    assert.deepEqual(after.tasks.map((t) => t.task), ['A'], 'A now has an entry of its own (the old fallback model)');
    assert.equal(after.overall.accuracy, before.overall.accuracy, 'A keeps exactly its accuracy');
    const tasks = k.json<{ tasks: { id: string; model_sha: string; attrs: Record<string, string> }[] }>(['kb', 'tasks']).tasks;
    assert.deepEqual(tasks.find((t) => t.id === 'A')!.attrs, { site: 'A' });
    assert.equal(tasks.find((t) => t.id === 'A')!.model_sha, g1);
    // kb rounds says which site was pinned and why
    const hist = k.json<{ rounds: { round: number; task: string; kind: string; verdict: string; reason: string }[] }>(['kb', 'rounds']).rounds;
    const pin = hist.find((h) => h.round === 2 && h.task === 'A')!;
    assert.equal(pin.kind, 'pin');
    assert.match(pin.reason, /significantly worse here \(n=30 accuracy/);
    assert.match(k.run(['kb', 'rounds']).stdout, /^2\s+A\s+pin\s+global\s.*pinned/m);
  } finally {
    cleanup();
  }
});

test('a rerun on the same data (other sample ids, as edges make them) gives the same decisions', { timeout: 240_000 }, () => {
  const runs = [tempDir('sedna-ll-learn-'), tempDir('sedna-ll-learn-')];
  try {
    const decisions = runs.map(({ dir }, i) => {
      const k = kb(dir);
      const imp = (name: string, n: number, seed: number) => {
        const f = join(dir, `${name}-${seed}.jsonl`);
        // ids differ between the runs (time-based on an edge); content and order do not
        writeFileSync(f, blobsJsonl(siteBlobs({ angle: ANGLES[name], n, seed, labelShift: SHIFTS[name] }), `run${i}-${Date.now()}-${name}-${seed}`, { site: name }));
        k.run(['kb', 'samples', 'import', f]);
      };
      const rounds: unknown[] = [];
      const round = () => {
        const r = k.json<Report>(['kb', 'train', '--hidden', '16']);
        rounds.push(r.tasks.map((t) => [t.task, t.kind, t.verdict ?? null, t.test?.n ?? null, t.test?.p ?? null, t.model_sha, t.pinned?.model_sha ?? null]));
      };
      imp('A', 120, 1);
      imp('B', 120, 2);
      round();
      imp('C', 80, 3);
      imp('A', 60, 4);
      round();
      imp('D', 60, 5);
      imp('B', 60, 6);
      round();
      return rounds;
    });
    assert.deepEqual(decisions[1], decisions[0]);
    process.stdout.write(`# decisions per round: ${JSON.stringify(decisions[0])}\n`);
  } finally {
    for (const r of runs) r.cleanup();
  }
});

test('samples that carry an attribute other than the task keys: kb train warns and names the option; k=1 says why', { timeout: 120_000 }, () => {
  const { dir, cleanup } = tempDir('sedna-ll-learn-');
  try {
    const k = kb(dir);
    const f = join(dir, 'loc.jsonl');
    writeFileSync(f, blobsJsonl(siteBlobs({ angle: 0, n: 40, seed: 1 }), 'sample-loc', { location: 'north' }));
    k.run(['kb', 'samples', 'import', f]);
    const r = k.run(['kb', 'train', '--json']);
    const rep = JSON.parse(r.stdout) as Report;
    assert.equal(rep.warnings.length, 1, JSON.stringify(rep.warnings));
    assert.match(rep.warnings[0], /^40 sample\(s\) carry attribute "location" but not the task key\(s\) site: .*kb train --attr-keys site,location$/);
    assert.match(r.stderr, /kb train: warning: 40 sample\(s\) carry attribute "location"/);
    // one blob cloud: no k separates it; the report says why it stays one group
    assert.equal(rep.clusters?.k, 1);
    assert.match(rep.clusters!.why, /^k=1: the best silhouette \(k=\d: 0\.\d+\) is under 0\.5/);
  } finally {
    cleanup();
  }
});
