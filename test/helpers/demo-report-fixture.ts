// Realistic input for demo/report.ts (the shape demo/run.ts collects): 5 sites appearing one per
// round, a rejected gate decision, long site names, the edge's end state with epoch-ms times.
import type { DemoReportData, RoundRow } from '../../demo/report.js';

export function demoReportFixture(opts: { sites?: string[] } = {}): DemoReportData {
  const sites = opts.sites ?? ['rot-000', 'rot-030', 'rot-060', 'rot-090', 'rot-120'];
  const rows: RoundRow[] = sites.map((site, r) => {
    const acc: Record<string, number> = {};
    sites.forEach((s, j) => (acc[s] = j <= r ? 0.9 - 0.02 * j + 0.005 * r : 0.85 - 0.17 * (j - r)));
    return {
      round: r,
      new_site: site,
      inferred: r === 0 ? 0 : 1000 + 300 * r,
      uploaded: r === 0 ? 0 : 1092 - 40 * r,
      uploaded_unseen: r === 0 ? 0 : 700 - 30 * r,
      uploaded_hard: r === 0 ? 0 : 390,
      stream_acc_new_site: r === 0 ? null : 0.62,
      labelled: r === 0 ? 1500 : 1000,
      published: r + 1,
      active: `v${r + 1}${r === sites.length - 1 ? ' (trial)' : ''}`,
      tasks: ['global', ...sites.slice(0, r + 1)],
      acc,
      train_s: 4.2 + r,
      kb_tasks: [
        { task: site, kind: 'new', accepted: true, verdict: 'accept', p: 0.0012, before: null, after: 0.93 },
        ...(r >= 2 ? [{ task: sites[r - 1], kind: 'update', accepted: r !== 3, verdict: r === 3 ? 'reject' : r === 4 ? 'keep' : 'accept', p: r === 4 ? 0.41 : 0.003, before: 0.91, after: r === 3 ? 0.88 : 0.92 }] : []),
      ],
    };
  });
  const t = Date.UTC(2026, 10, 30, 12, 0, 0);
  return {
    rows,
    sites,
    angles: sites.map((_, j) => 30 * j),
    test_per_site: 500,
    kb_url: 'http://127.0.0.1:41234',
    status: {
      device_id: 'gateway-1',
      active_version: String(sites.length),
      previous_version: String(sites.length - 1),
      tasks: [{ id: 'global' }, ...sites.map((id) => ({ id }))],
      outbox: { pending: 0, uploaded: 4210, labels_pending: 0 },
      evictions: { count: 12 },
      last_sync: { time: t, result: 0 },
    },
    versions: sites.map((_, j) => ({ id: String(j + 1), origin: 'kb', state: j === sites.length - 1 ? 'trial' : j === sites.length - 2 ? 'previous' : 'retired', installed_at: t - (sites.length - j) * 60_000, activated_at: t - (sites.length - j) * 60_000 + 500, reason: null })),
    generated_at: new Date(t).toISOString(),
  };
}
