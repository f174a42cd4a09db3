// The HTML reports (demo/out/report.html, bench:lifelong's) rendered in headless Chromium
// (Debian `chromium`): no text of any chart (legends, ticks, titles, heat-map cells) is cut off
// by its SVG's edge or drawn over another text, and the page does not overflow sideways. A
// deliberately broken chart on the same page proves the check sees what it is meant to see.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { barChartSvg, colour, heatmapSvg, htmlPage, lineChartSvg } from '../bench/lib/report.js';
import { renderDemoReport } from '../demo/report.js';
import { tempDir } from './helpers/cli.js';
import { demoReportFixture } from './helpers/demo-report-fixture.js';
import { requireProgram } from './helpers/system-tool.js';

// Runs in the page: every SVG text must lie inside its SVG and not overlap another text of the
// same SVG; the document must not be wider than the window. Writes the findings into the DOM.
const CHECK = `<script>
addEventListener('load', () => {
  const problems = [];
  let texts = 0;
  const inter = (a, b) => Math.max(0, Math.min(a.right, b.right) - Math.max(a.left, b.left)) * Math.max(0, Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top));
  document.querySelectorAll('svg').forEach((svg, si) => {
    const name = svg.getAttribute('data-name') || (svg.querySelector('text.t') || {}).textContent || ('svg ' + si);
    const box = svg.getBoundingClientRect();
    const rects = [];
    svg.querySelectorAll('text').forEach((t) => {
      texts++;
      const r = t.getBoundingClientRect();
      if (r.width === 0) return;
      if (r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5)
        problems.push({ svg: name, text: t.textContent, kind: 'cut', by: Math.round(Math.max(box.left - r.left, r.right - box.right, box.top - r.top, r.bottom - box.bottom)) });
      for (const [o, orr] of rects) if (inter(r, orr) > 2) problems.push({ svg: name, text: t.textContent, kind: 'overlaps', other: o.textContent });
      rects.push([t, r]);
    });
  });
  const doc = document.documentElement;
  if (doc.scrollWidth > innerWidth + 1) problems.push({ svg: 'page', kind: 'page wider than the window', by: doc.scrollWidth - innerWidth });
  const pre = document.createElement('pre');
  pre.id = 'layout-check';
  pre.textContent = JSON.stringify({ texts, problems });
  document.body.appendChild(pre);
});
</script>`;

function layoutCheck(chromium: string, html: string, dir: string, name: string): { texts: number; problems: { svg: string; text?: string; kind: string }[] } {
  const file = join(dir, `${name}.html`);
  writeFileSync(file, html.replace('</body>', `${CHECK}</body>`));
  // a profile of its own (no ~/.config writes, no lock shared with another Chromium); small /dev/shm in containers
  const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', `--user-data-dir=${join(dir, `profile-${name}`)}`, '--hide-scrollbars', '--window-size=1280,1000', '--virtual-time-budget=5000'];
  const r = spawnSync(chromium, [...flags, '--dump-dom', pathToFileURL(file).href], {
    encoding: 'utf8',
    timeout: 120_000,
    maxBuffer: 64 << 20,
  });
  const m = /<pre id="layout-check">([^<]*)<\/pre>/.exec(r.stdout ?? '');
  assert.ok(m, `chromium printed no layout check (exit ${r.status}): ${(r.stderr ?? '').split('\n').slice(-5).join(' | ')}`);
  return JSON.parse(m[1].replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&'));
}

test('the demo report and the chart kinds render in Chromium with no text cut off or overlapping', (t) => {
  const chromium = requireProgram(t, 'chromium', 'chromium');
  if (!chromium) return;
  const tmp = tempDir('sedna-ll-report-');
  t.after(() => tmp.cleanup());

  // the demo's report, as `npm run demo` writes it
  const demo = layoutCheck(chromium, renderDemoReport(demoReportFixture()), tmp.dir, 'demo');
  assert.ok(demo.texts > 60, `only ${demo.texts} SVG texts checked`);
  assert.deepEqual(demo.problems, []);

  // harder cases: long site names, many series (the legend wraps), a 15-site heat map,
  // odd value ranges; plus a broken chart that must be reported
  const names = Array.from({ length: 12 }, (_, j) => `site-${j}-with-a-rather-long-name (before it appeared)`);
  const rounds = Array.from({ length: 15 }, (_, i) => String(i));
  const M = rounds.map((_, i) => rounds.map((_, j) => (j <= i ? 0.9 : 0.3 + 0.01 * j)));
  const sections = [
    { heading: 'lines', html: lineChartSvg(names.map((name, j) => ({ name, colour: colour(j), dashedBefore: j, values: rounds.map((_, i) => 0.2 + 0.05 * j + 0.01 * i) })), { title: 'many long series', xLabels: rounds, xAxis: 'round', yAxis: 'accuracy', dashedLabel: 'dashed: before the site appeared' }) },
    { heading: 'bars', html: barChartSvg(names.slice(0, 5).map((name, j) => ({ name, values: rounds.map((_, i) => 100 * j + 37 * i) })), { title: 'stacked, large counts', xLabels: rounds.map((r) => `round ${r}`), xAxis: 'round', yAxis: 'samples' }) },
    { heading: 'heat', html: heatmapSvg(M, { title: 'R[i][j]: accuracy on site j after round i, fifteen sites', rowLabels: rounds, colLabels: rounds.map((r) => `${Number(r) * 24}°`), marked: (i, j) => i < j, markedLabel: 'before the site was learned', colColours: rounds.map((_, j) => colour(j)) }) },
    { heading: 'tiny heat', html: heatmapSvg([[0.5]], { title: 'a one-cell accuracy matrix with a long title', rowLabels: ['0'], colLabels: ['rot-030-long-site-name'] }) },
    { heading: 'broken', html: '<svg xmlns="http://www.w3.org/2000/svg" data-name="broken" width="120" height="40" viewBox="0 0 120 40"><text x="60" y="20" class="tick">rot-030 (before it appea…</text><text x="2" y="35" class="tick">a</text><text x="4" y="35" class="tick">b</text></svg>' },
  ];
  const hard = layoutCheck(chromium, htmlPage('stress', 'layout stress cases', sections), tmp.dir, 'stress');
  const broken = hard.problems.filter((p) => p.svg === 'broken');
  assert.deepEqual(broken.map((p) => p.kind).sort(), ['cut', 'overlaps'], 'the check reports a cut legend and overlapping texts');
  assert.deepEqual(hard.problems.filter((p) => p.svg !== 'broken'), []);
});
