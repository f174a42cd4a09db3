// bench:lifelong's new-domain out-of-distribution check: after the last round, images of
// domains the KB never saw (built here from the MNIST test split, none of them a rotation of
// the training domain) are run through the edge next to the known sites' own test digits, all
// WITHOUT the site attribute (with it, "attr" flags any unknown site trivially). Per detector:
// AUROC and TPR at 5 % FPR (positives: new domain, negatives: known sites), and the edge's binary
// flag as an operating point.
//   inverted  1 - x of untransformed test digits (white background, dark strokes)
//   strokes   3-6 random thick line segments on an empty canvas (ink, but no digit)
//   noise     uniform pixel noise
//   permuted  test digits under a fixed random pixel permutation (not one of the sites')
import type { TaskEntry, TaskIndex, UnseenConfig } from '../../src/format/index-manifest.js';
import { mulberry32 } from '../../src/random.js';
import { sqDistance } from '../../src/format/allocate.js';
import { normalisedEntropy, top2 } from '../../src/runtime/filters.js';
import { auroc, tprAtFpr } from './metrics.js';
import { DIM, SIDE, loadMnist, permutation } from './mnist.js';

/** The unseen settings the bench's KB rounds use (kb train --unseen attr,confidence,distance,features --combine any). */
export const BENCH_UNSEEN: Pick<UnseenConfig, 'methods' | 'combine'> = { methods: ['attr', 'confidence', 'distance', 'features'], combine: 'any' };

export const NEW_DOMAIN_AIMS = { auroc: 0.95, tpr_at_5_fpr: 0.8 };

export interface Domain {
  name: string;
  n: number;
  /** rows of DIM values in 0..1 */
  x: Float32Array;
}

/** The four new domains, n images each, seeded. */
export function buildNewDomains(n: number, seed: number): Domain[] {
  const test = loadMnist('test');
  const rand = mulberry32(seed * 7 + 424242);
  const digits = (k: number) => test.pixels.subarray(k * DIM, (k + 1) * DIM);
  const pickDigit = () => Math.floor(rand() * test.n);
  const perm = permutation(DIM, seed * 31 + 999_331); // the scenario's permutations use other seeds
  const make = (name: string, fill: (out: Float32Array) => void): Domain => {
    const x = new Float32Array(n * DIM);
    for (let i = 0; i < n; i++) fill(x.subarray(i * DIM, (i + 1) * DIM));
    return { name, n, x };
  };
  return [
    make('inverted', (out) => {
      const d = digits(pickDigit());
      for (let p = 0; p < DIM; p++) out[p] = 1 - d[p] / 255;
    }),
    make('strokes', (out) => {
      const k = 3 + Math.floor(rand() * 4);
      for (let s = 0; s < k; s++) drawLine(out, rand() * SIDE, rand() * SIDE, rand() * SIDE, rand() * SIDE, 1 + rand() * 1.5);
    }),
    make('noise', (out) => {
      for (let p = 0; p < DIM; p++) out[p] = rand();
    }),
    make('permuted', (out) => {
      const d = digits(pickDigit());
      for (let p = 0; p < DIM; p++) out[p] = d[perm[p]] / 255;
    }),
  ];
}

/** Anti-aliased thick segment: ink = 1 within `w` pixels of the segment, fading over one pixel. */
function drawLine(out: Float32Array, x0: number, y0: number, x1: number, y1: number, w: number): void {
  const dx = x1 - x0;
  const dy = y1 - y0;
  const len2 = dx * dx + dy * dy || 1;
  for (let y = 0; y < SIDE; y++) {
    for (let x = 0; x < SIDE; x++) {
      const t = Math.max(0, Math.min(1, ((x - x0) * dx + (y - y0) * dy) / len2));
      const d = Math.hypot(x - (x0 + t * dx), y - (y0 + t * dy));
      const v = Math.max(0, Math.min(1, w + 0.5 - d));
      if (v > out[y * SIDE + x]) out[y * SIDE + x] = v;
    }
  }
}

/** What the bench reads of one infer line. */
export interface EdgeLine {
  task: string | null;
  scores: number[];
  unseen: boolean;
  unseen_scores?: Record<string, number | boolean>;
}

export interface DetectorRow {
  auroc: number;
  tpr_at_5_fpr: number;
}

export interface NewDomainResult {
  note: string;
  negatives: number;
  positives: Record<string, number>;
  unseen_config: UnseenConfig;
  /** per detector: over all new domains together, and per domain */
  all: Record<string, DetectorRow>;
  per_domain: Record<string, Record<string, DetectorRow>>;
  edge_flag: { tpr: number; fpr: number; per_domain: Record<string, number> };
  aims: typeof NEW_DOMAIN_AIMS;
}

/**
 * Per-sample scores (higher = more unseen) of each detector:
 *   max_softmax  1 - max p of the model the edge ran (Hendrycks & Gimpel 2017)
 *   entropy      normalised entropy of that output
 *   distance     input-space distance to the nearest task centroid over that task's extent (the
 *                edge's allocation rule)
 *   features     the edge's Mahalanobis feature distance over its task's threshold
 *   edge         the index's methods as one number: per method a ratio > 1 exactly when it fires
 *                (confidence t/p, entropy H/t, distance, features), max for "any", min for "all"
 */
export function detectorScores(line: EdgeLine, x: Float32Array, index: TaskIndex, byId: Map<string, TaskEntry>): Record<string, number> {
  const task = line.task ? byId.get(line.task) : undefined;
  const p1 = line.scores.length ? top2(line.scores).p1 : 0;
  const H = line.scores.length ? normalisedEntropy(line.scores) : 1;
  // the edge's rule (format/allocate.ts): the NEAREST centroid, and the distance over that
  // task's extent (> 1 exactly when allocation refuses it and "distance" fires)
  let dist = Infinity;
  let best = Infinity;
  for (const t of index.tasks) {
    if (!t.centroid || t.radius === undefined) continue;
    const d = Math.sqrt(sqDistance(x, t.centroid));
    if (d >= best) continue;
    best = d;
    dist = d / (Math.max(t.radius, t.thresholds?.distance ?? 0) || 1e-12);
  }
  const out: Record<string, number> = { max_softmax: 1 - p1, entropy: H };
  if (Number.isFinite(dist)) out.distance = dist;
  const f = line.unseen_scores?.features;
  const ft = task?.thresholds?.features;
  if (typeof f === 'number' && ft) out.features = f / ft;
  const cfg = index.unseen;
  const ratios: number[] = [];
  for (const m of cfg.methods) {
    if (m === 'confidence') {
      const t = task?.thresholds?.confidence ?? cfg.confidence;
      if (t !== undefined) ratios.push(t / Math.max(p1, 1e-12));
    } else if (m === 'entropy') {
      const t = task?.thresholds?.entropy ?? cfg.entropy;
      if (t !== undefined) ratios.push(H / Math.max(t, 1e-12));
    } else if (m === 'distance' && out.distance !== undefined) ratios.push(out.distance);
    else if (m === 'features' && out.features !== undefined) ratios.push(out.features);
  }
  out.edge = ratios.length === 0 ? 0 : cfg.combine === 'all' ? Math.min(...ratios) : Math.max(...ratios);
  return out;
}

/** AUROC and TPR@5%FPR per detector, overall and per domain. */
export function evaluateNewDomain(
  index: TaskIndex,
  negatives: { line: EdgeLine; x: Float32Array }[],
  domains: { name: string; rows: { line: EdgeLine; x: Float32Array }[] }[],
): NewDomainResult {
  const byId = new Map(index.tasks.map((t) => [t.id, t]));
  const neg = negatives.map((r) => detectorScores(r.line, r.x, index, byId));
  const detectors = Object.keys(neg[0] ?? {}).filter((k) => neg.every((s) => s[k] !== undefined));
  const row = (pos: Record<string, number>[]) =>
    Object.fromEntries(
      detectors
        .filter((k) => pos.every((s) => s[k] !== undefined))
        .map((k) => {
          const P = pos.map((s) => s[k]);
          const N = neg.map((s) => s[k]);
          return [k, { auroc: round4(auroc(P, N)), tpr_at_5_fpr: round4(tprAtFpr(P, N, 0.05).tpr) }];
        }),
    );
  const perDomainScores = domains.map((d) => ({ name: d.name, s: d.rows.map((r) => detectorScores(r.line, r.x, index, byId)) }));
  const flagged = (rows: { line: EdgeLine }[]) => rows.filter((r) => r.line.unseen).length / Math.max(1, rows.length);
  const allPos = domains.flatMap((d) => d.rows);
  return {
    note: 'positives: new-domain images (inverted digits, random strokes, uniform noise, permuted digits) built by the bench; negatives: the known sites\' own test digits; all without the site attribute, through the final KB version on the edge',
    negatives: negatives.length,
    positives: Object.fromEntries(domains.map((d) => [d.name, d.rows.length])),
    unseen_config: index.unseen,
    all: row(perDomainScores.flatMap((d) => d.s)),
    per_domain: Object.fromEntries(perDomainScores.map((d) => [d.name, row(d.s)])),
    edge_flag: { tpr: round4(flagged(allPos)), fpr: round4(flagged(negatives)), per_domain: Object.fromEntries(domains.map((d) => [d.name, round4(flagged(d.rows))])) },
    aims: NEW_DOMAIN_AIMS,
  };
}

/** Lines for the terminal, aims alongside. */
export function formatNewDomain(r: NewDomainResult): string {
  const f = (v: number) => v.toFixed(3);
  const lines = Object.entries(r.all).map(([k, v]) => `new-domain OOD ${k.padEnd(12)} AUROC ${f(v.auroc)}  TPR@5%FPR ${f(v.tpr_at_5_fpr)}  (${Object.entries(r.per_domain).map(([d, rows]) => `${d} ${rows[k] ? f(rows[k].auroc) : '-'}`).join(', ')})`);
  const e = r.all.edge;
  const met = e && e.auroc >= r.aims.auroc && e.tpr_at_5_fpr >= r.aims.tpr_at_5_fpr;
  lines.push(`new-domain OOD edge flag: TPR ${f(r.edge_flag.tpr)} at FPR ${f(r.edge_flag.fpr)} (${r.unseen_config.methods.join(',')}, ${r.unseen_config.combine})`);
  lines.push(`new-domain aims (edge combined detector): AUROC >= ${r.aims.auroc}, TPR@5%FPR >= ${r.aims.tpr_at_5_fpr}: ${met ? 'met' : 'NOT met'}`);
  return lines.join('\n') + '\n';
}

const round4 = (v: number) => Math.round(v * 1e4) / 1e4;
