// Paired comparison of two models on the SAME held-out samples, so a decision is about the
// models and not about which samples happened to be held out. McNemar's exact test with the
// mid-p correction on the discordant pairs (b: only the incumbent is right, c: only the
// candidate is right): under "no difference" c ~ Binomial(b + c, 1/2). Exact for any n (no
// chi-square approximation on small sites); the mid-p is less conservative than the plain
// exact test at the same nominal level (Fagerland et al. 2013).

export type Verdict = 'gain' | 'loss' | 'tie';

export interface PairedResult {
  test: 'mcnemar-midp';
  /** samples compared */
  n: number;
  /** accuracy of the incumbent and of the candidate on them */
  incumbent: number;
  candidate: number;
  /** discordant pairs: only the incumbent right / only the candidate right */
  incumbent_only: number;
  candidate_only: number;
  /** two-sided mid-p value */
  p: number;
  alpha: number;
  /** gain / loss: the difference is significant at alpha; tie: it is not */
  verdict: Verdict;
}

/** ln C(n, k) */
function lnChoose(n: number, k: number): number {
  let s = 0;
  for (let i = 1; i <= k; i++) s += Math.log((n - k + i) / i);
  return s;
}

/** Two-sided McNemar mid-p for b and c discordant pairs: 2 (P(X < k) + P(X = k) / 2), k = min(b, c). */
export function mcnemarMidP(b: number, c: number): number {
  const n = b + c;
  if (n === 0) return 1;
  const k = Math.min(b, c);
  const pmf = (i: number) => Math.exp(lnChoose(n, i) - n * Math.LN2);
  let below = 0;
  for (let i = 0; i < k; i++) below += pmf(i);
  return Math.min(1, 2 * (below + pmf(k) / 2));
}

/** Compare per-sample correctness of the incumbent and the candidate (same samples, same order). */
export function pairedCompare(incumbentRight: readonly boolean[], candidateRight: readonly boolean[], alpha: number): PairedResult {
  const n = incumbentRight.length;
  if (candidateRight.length !== n) throw new Error(`pairedCompare: ${n} incumbent results but ${candidateRight.length} candidate results`);
  let a = 0;
  let c2 = 0;
  let b = 0;
  let c = 0;
  for (let i = 0; i < n; i++) {
    if (incumbentRight[i]) a++;
    if (candidateRight[i]) c2++;
    if (incumbentRight[i] && !candidateRight[i]) b++;
    else if (!incumbentRight[i] && candidateRight[i]) c++;
  }
  const p = mcnemarMidP(b, c);
  const verdict: Verdict = p < alpha ? (c > b ? 'gain' : 'loss') : 'tie';
  const r4 = (v: number) => Math.round(v * 1e4) / 1e4;
  return { test: 'mcnemar-midp', n, incumbent: n ? r4(a / n) : 0, candidate: n ? r4(c2 / n) : 0, incumbent_only: b, candidate_only: c, p: Number(p.toPrecision(4)), alpha, verdict };
}

/** One line for reports: "n=200 acc 0.8450 -> 0.8900, McNemar mid-p 0.012 (gain at 0.05)". */
export function describePaired(r: PairedResult): string {
  const sig = r.verdict === 'tie' ? `not significant at ${r.alpha}` : `${r.verdict} at ${r.alpha}`;
  return `n=${r.n} accuracy ${r.incumbent.toFixed(4)} -> ${r.candidate.toFixed(4)}, McNemar mid-p ${r.p} (${sig})`;
}
