// demo/out/report.html: what `npm run demo` shows at the end, rendered from the rounds it ran
// (demo/run.ts collects them; test/report-render.test.ts renders it in headless Chromium).
// Each site keeps one colour in every chart (its column in the heat map, its line).
import { barChartSvg, colour, factsHtml, heatmapSvg, htmlPage, isoTime, lineChartSvg, tableHtml, type ReportSection, type Series } from '../bench/lib/report.js';

export interface RoundRow {
  round: number;
  new_site: string | null;
  inferred: number;
  uploaded: number;
  uploaded_unseen: number;
  uploaded_hard: number;
  stream_acc_new_site: number | null;
  labelled: number;
  published: number | null;
  active: string | null;
  tasks: string[];
  /** accuracy on every site's test set after the round */
  acc: Record<string, number>;
  train_s: number;
  /** verdict (kb train --json): accept (significant gain), keep (within noise, the incumbent
   *  stays), reject (significant loss), pinned (a site stays on the model that served it); p: the paired test's */
  kb_tasks: { task: string; kind: string; accepted: boolean | null; verdict?: string; p?: number | null; before: number | null; after: number | null }[];
}

export interface DemoReportData {
  rows: RoundRow[];
  /** in order of appearance: site j appears in round j */
  sites: string[];
  angles: number[];
  test_per_site: number;
  kb_url: string;
  /** `status --json` and `model ls --json` of the edge at the end */
  status: Record<string, unknown>;
  versions: unknown;
  generated_at: string;
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
/** The first of these keys the object has (the status record names fields in snake_case; older builds mixed in camelCase). */
const pick = (o: Obj, ...keys: string[]): unknown => keys.map((k) => o[k]).find((v) => v !== undefined) ?? null;
const cell = (v: unknown): string | number | null => (v === null || v === undefined ? null : typeof v === 'number' || typeof v === 'string' ? v : JSON.stringify(v));

/** The edge at the end as two small tables: the device and its outbox, then its versions. */
function endStateHtml(d: DemoReportData): string {
  const st = d.status;
  const outbox = obj(st.outbox);
  const ev = obj(pick(st, 'evictions') ?? outbox.evicted);
  const last = obj(st.last_sync);
  const tasks = ((st.tasks as { id: string }[] | undefined) ?? []).map((t) => t.id);
  const facts: [string, string | number | null][] = [
    ['device', cell(pick(st, 'device', 'device_id'))],
    ['KB', d.kb_url],
    ['active version', cell(pick(st, 'active_version', 'active'))],
    ['previous version', cell(pick(st, 'previous_version', 'previous'))],
    ['tasks served', tasks.join(', ') || null],
    ['outbox pending', cell(outbox.pending)],
    ['outbox uploaded', cell(outbox.uploaded)],
    ['labels pending', cell(pick(outbox, 'labels_pending', 'labelsPending') ?? st.labels_pending)],
    ['evicted by the quota', cell(pick(ev, 'count'))],
    ['last sync', Object.keys(last).length ? `${isoTime(pick(last, 'time', 'at'))}, exit ${cell(pick(last, 'result', 'exit')) ?? '?'}` : 'never'],
  ];
  const versions = (Array.isArray(d.versions) ? d.versions : Array.isArray(obj(d.versions).versions) ? (obj(d.versions).versions as unknown[]) : []).map(obj);
  return (
    factsHtml(facts) +
    (versions.length
      ? tableHtml(
          ['version', 'origin', 'state', 'installed', 'activated', 'note'],
          versions.map((v) => [cell(v.id), cell(v.origin), cell(v.state), isoTime(v.installed_at), isoTime(v.activated_at), cell(v.reason) ?? '']),
        )
      : '')
  );
}

export function renderDemoReport(d: DemoReportData): string {
  const { rows, sites } = d;
  const roundLabels = rows.map((r) => String(r.round));
  const siteColour = (j: number) => colour(j);
  const R = rows.map((r) => sites.map((s) => r.acc[s] ?? NaN));
  const decisions = rows.flatMap((r) => r.kb_tasks.filter((t) => t.kind !== 'unchanged').map((t) => ({ round: r.round, ...t })));
  const sections: ReportSection[] = [
    {
      heading: 'Per-round results',
      note: `Each round a new site appears (digits rotated by a new angle). The edge (sedna-ll infer) logs hard and unseen samples, sedna-ll sync uploads them, the annotator labels them (kb label import), the KB learns (kb train) and publishes a signed version, and the next sync activates it on the edge. Accuracy: ${d.test_per_site} held-out test digits per site, after the round.`,
      html: tableHtml(
        ['round', 'new site', 'inferred', 'uploaded', 'unseen', 'hard', 'labelled', 'published', 'active on edge', 'edge tasks', 'kb train s', ...sites],
        rows.map((r) => [r.round, r.new_site, r.inferred, r.uploaded, r.uploaded_unseen, r.uploaded_hard, r.labelled, r.published === null ? '–' : `v${r.published}`, r.active, r.tasks.join(' '), r.train_s.toFixed(1), ...sites.map((s) => r.acc[s])]),
      ),
    },
    {
      heading: 'Accuracy matrix: site × round',
      note: 'Test accuracy on each site (column) after each round (row). Hatched cells: the site had not appeared yet, so the edge served it with the fallback model it had then.',
      html: heatmapSvg(R, {
        title: 'test accuracy per site after each round',
        rowLabels: roundLabels,
        colLabels: sites,
        rowAxis: 'after round',
        colAxis: 'site',
        marked: (i, j) => i < j,
        markedLabel: 'before the site appeared',
        colColours: sites.map((_, j) => siteColour(j)),
      }),
    },
    {
      heading: 'Accuracy per site over rounds',
      html: lineChartSvg(
        sites.map((s, j): Series => ({ name: s, colour: siteColour(j), dashedBefore: j, values: rows.map((r) => r.acc[s] ?? null) })),
        { title: 'test accuracy per site after each round', xLabels: roundLabels, xAxis: 'round', yAxis: 'accuracy', dashedLabel: 'dashed, hollow: before the site appeared' },
      ),
    },
    {
      heading: 'Uploads per round',
      html:
        barChartSvg(
          [
            { name: 'unseen', values: rows.map((r) => r.uploaded_unseen) },
            { name: 'hard only', values: rows.map((r) => r.uploaded - r.uploaded_unseen) },
          ],
          { title: 'samples uploaded to the KB per round', xLabels: roundLabels, xAxis: 'round', yAxis: 'samples' },
        ) + `<p>${uploadedOf(rows)} of ${inferredOf(rows)} inferred samples uploaded (samples_transfer_ratio ${(uploadedOf(rows) / Math.max(1, inferredOf(rows))).toFixed(3)}).</p>`,
    },
    {
      heading: "What the KB decided each round (eval gate on each task's own held-out set)",
      note: 'Highlighted rows: the gate rejected the candidate model (significantly worse on held-out data); the task keeps its previous model. "kept": the candidate was within noise of the model in place, which stays.',
      html: tableHtml(
        ['round', 'task', 'kind', 'decision', 'held-out acc before', 'after', 'p'],
        decisions.map((t) => [t.round, t.task, t.kind, decisionText(t), t.before, t.after, t.p ?? null]),
        3,
        (i) => (isRejected(decisions[i]) ? 'bad' : undefined),
      ),
    },
    { heading: 'Edge state at the end', html: endStateHtml(d) },
  ];
  return htmlPage('sedna-ll demo: lifelong learning across edge sites', `Real MNIST, sites rotated by ${d.angles.join('°, ')}°. Generated ${isoTime(d.generated_at)} by npm run demo.`, sections);
}

const DECISION_TEXT: Record<string, string> = { accept: 'accepted', keep: 'kept (within noise)', reject: 'REJECTED', pinned: 'pinned' };
/** What the gate did; builds without verdicts only say accepted or not. */
const decisionText = (t: RoundRow['kb_tasks'][number]): string =>
  t.verdict ? (DECISION_TEXT[t.verdict] ?? t.verdict) : t.accepted === null ? '–' : t.accepted ? 'accepted' : 'REJECTED';
const isRejected = (t: RoundRow['kb_tasks'][number]): boolean => (t.verdict ? t.verdict === 'reject' : t.accepted === false);

const uploadedOf = (rows: RoundRow[]) => rows.reduce((a, x) => a + x.uploaded, 0);
const inferredOf = (rows: RoundRow[]) => rows.reduce((a, x) => a + x.inferred, 0);
