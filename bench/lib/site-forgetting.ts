// Per-site forgetting and re-downloads of the sedna-ll loop (bench:lifelong), from the accuracy
// matrix R and what each round's KB served and published:
//   per-site BWT   R[T-1][j] - R[j][j] for every site j < T-1, marked when the site was served by
//                  the fallback's model (or pinned to an earlier one) at some point after it
//                  appeared: those were unprotected by a task model of their own before the
//                  per-site gate. Aim: every site >= -0.005.
//   re-downloads   models the edge downloaded minus new models the KB published: a model
//                  downloaded again although its weights did not change. Aim: 0.
import type { KbStore } from '../../src/kb/store.js';

/** How each task is served after a round: its own model, the fallback's, or a pinned earlier one. */
export type Served = Record<string, 'own' | 'fallback' | 'pinned'>;

export async function servedAfterRound(store: KbStore): Promise<{ served: Served; shas: string[] }> {
  const tasks = await store.listTasks();
  const fb = tasks.find((t) => t.fallback);
  const served: Served = {};
  for (const t of tasks) {
    if (t.fallback) continue;
    served[t.id] = t.extra?.pinned ? 'pinned' : fb && t.model_sha === fb.model_sha ? 'fallback' : 'own';
  }
  return { served, shas: [...new Set(tasks.map((t) => t.model_sha))] };
}

export interface SiteForgetting {
  per_site: { site: string; bwt: number; fallback_served: boolean; served_last: string }[];
  min_bwt: number;
  min_bwt_fallback_served: number | null;
  fallback_served_sites: number;
  aim: number;
  below_aim: string[];
  met: boolean;
}

/** served[i]: how tasks were served after round i; a site absent from it was served by the fallback as unseen. */
export function siteForgetting(R: number[][], sites: string[], served: Served[], aim = -0.005): SiteForgetting {
  const T = R.length;
  const per_site = sites.slice(0, T - 1).map((site, j) => {
    const after = served.slice(j, T).map((s) => s[site] ?? 'fallback');
    return { site, bwt: R[T - 1][j] - R[j][j], fallback_served: after.some((x) => x !== 'own'), served_last: after[after.length - 1] ?? 'fallback' };
  });
  const fbs = per_site.filter((x) => x.fallback_served);
  const below = per_site.filter((x) => x.bwt < aim - 1e-12).map((x) => x.site);
  return {
    per_site,
    min_bwt: Math.min(...per_site.map((x) => x.bwt)),
    min_bwt_fallback_served: fbs.length ? Math.min(...fbs.map((x) => x.bwt)) : null,
    fallback_served_sites: fbs.length,
    aim,
    below_aim: below,
    met: below.length === 0,
  };
}

export interface Redownloads {
  downloaded: number;
  new_models: number;
  redownloaded: number;
  met: boolean;
}

/** shas[i]: the model sha256s the KB's tasks point at after round i; downloaded[i]: models the edge pulled then (rounds >= 1). */
export function redownloads(shas: string[][], downloaded: (number | undefined)[]): Redownloads {
  let down = 0;
  let fresh = 0;
  for (let i = 1; i < shas.length; i++) {
    const before = new Set(shas.slice(0, i).flat());
    fresh += shas[i].filter((s) => !before.has(s)).length;
    down += downloaded[i] ?? 0;
  }
  return { downloaded: down, new_models: fresh, redownloaded: Math.max(0, down - fresh), met: down <= fresh };
}
